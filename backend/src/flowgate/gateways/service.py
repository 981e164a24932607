"""Gateways: registration, heartbeats, configuration, health and the fleet list."""

from __future__ import annotations

import base64
import binascii
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import and_, case, func, or_, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.configs.base import base_config_yaml, check_collector_yaml, config_hash
from flowgate.core import jsonsafe
from flowgate.core.db import utcnow
from flowgate.core.errors import (
    Conflict,
    DomainError,
    GatewayNotFound,
    InstanceMismatch,
    UnstorableValue,
)
from flowgate.core.runtime import Runtime
from flowgate.core.security import digest, opamp_token
from flowgate.core.settings import Settings
from flowgate.gateways.health import (
    HEALTHY,
    OFFLINE,
    UNHEALTHY,
    WARNING,
    compute_health,
)
from flowgate.gateways.identity import GatewayIdentity
from flowgate.gateways.models import Gateway, GatewayRemoteConfig, GatewayStatus
from flowgate.gateways.schemas import (
    AgentOut,
    ConfigOut,
    ConfigStatusOut,
    EffectiveConfigOut,
    FleetSummary,
    GatewayHealthSummary,
    GatewayOut,
    GatewayRegister,
    HealthOut,
    HeartbeatRequest,
    MetricsOut,
    StatusOut,
    VersionOut,
)
from flowgate.tokens import service as tokens
from flowgate.tokens.models import RegistrationToken

log = logging.getLogger(__name__)

OFFLINE_STATUSES = (GatewayStatus.inactive, GatewayStatus.error)


# -- registration ---------------------------------------------------------------------------


@dataclass
class Registration:
    gateway: Gateway
    opamp_token: str
    created: bool


async def register(
    session: AsyncSession,
    runtime: Runtime,
    token: RegistrationToken,
    body: GatewayRegister,
    transport: str = "rest",
) -> Registration:
    """Create the gateway (or re-enrol an existing ``instance_id``) and issue its OpAMP token.

    Re-registering with the token that registered the gateway is idempotent and costs no use;
    another valid token of the same organisation consumes one use and re-enrols it.
    """
    gateway = await session.scalar(
        select(Gateway).where(
            Gateway.org_id == token.org_id, Gateway.instance_id == body.instance_id
        )
    )
    created = gateway is None
    if gateway is None or gateway.registration_token_id != token.id:
        await tokens.consume(session, token)
    metadata = body.metadata.model_dump(exclude_none=True)
    if gateway is None:
        gateway = Gateway(
            org_id=token.org_id,
            instance_id=body.instance_id,
            name=body.name,
            status=GatewayStatus.registered,
            transport=transport,
        )
        session.add(gateway)
    gateway.name = body.name
    gateway.hostname = body.hostname or gateway.hostname
    gateway.ip_address = body.ip_address or gateway.ip_address
    if body.labels:
        gateway.labels = body.labels
    merged = {**(gateway.extra_metadata or {}), **metadata}
    # Each registration adds its keys to what earlier ones stored: bound the sum, not only
    # this request's part.
    problem = jsonsafe.problem(merged, "metadata", jsonsafe.GATEWAY_METADATA)
    if problem:
        raise UnstorableValue(f"{problem} (with what earlier registrations stored)")
    gateway.extra_metadata = merged
    gateway.registration_token_id = token.id
    if gateway.status in OFFLINE_STATUSES:
        gateway.status = GatewayStatus.registered
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("A registration for this instance_id is in progress; retry") from None
    jwt_token = issue_opamp_token(gateway, runtime.settings)
    await session.flush()
    runtime.presence.forget(gateway.id)
    log.info(
        "gateway registered" if created else "gateway re-registered",
        extra={
            "gateway_id": str(gateway.id),
            "org_id": str(gateway.org_id),
            "instance_id": gateway.instance_id,
            "token_id": str(token.id),
        },
    )
    return Registration(gateway=gateway, opamp_token=jwt_token, created=created)


# -- REST agent endpoints ---------------------------------------------------------------------


def issue_opamp_token(gateway: Gateway, settings: Settings) -> str:
    """A new OpAMP JWT for the gateway; only its digest is kept, so any earlier token of the
    gateway stops working once this is committed (see :func:`commit_credentials`)."""
    token = opamp_token(
        gateway.id, gateway.org_id, settings.opamp_token_ttl_days, settings.signing_key
    )
    gateway.opamp_token = digest(token)
    return token


async def commit_credentials(
    session: AsyncSession, runtime: Runtime, gateway_id: uuid.UUID
) -> None:
    """Commit a change to a gateway's OpAMP credential, then drop the cached one.

    In this order on purpose: dropping the cache first would let a heartbeat arriving before
    the commit cache the old token again, keeping a revoked token alive for the cache's TTL.
    """
    await session.commit()
    runtime.identities.invalidate(gateway_id)


def check_instance(ident: GatewayIdentity, instance_id: str) -> None:
    if ident.instance_id != instance_id:
        log.warning(
            "opamp request for another instance",
            extra={"gateway_id": str(ident.gateway_id)},
        )
        raise InstanceMismatch()


def heartbeat(runtime: Runtime, ident: GatewayIdentity, body: HeartbeatRequest | None) -> None:
    """Record a REST heartbeat in memory; the presence flusher writes it."""
    now = utcnow()
    if runtime.presence.known_status(ident.gateway_id) is None:
        runtime.presence.observe_status(ident.gateway_id, ident.status)
    metadata: dict[str, Any] = {}
    values: dict[str, Any] = {"last_seen": now, "status": GatewayStatus.active}
    if body is not None:
        if body.version is not None:
            metadata["version"] = body.version
        if body.otel_version is not None:
            metadata["otel_version"] = body.otel_version
        if body.metrics is not None:
            metadata["metrics"] = body.metrics.model_dump(exclude_none=True)
            metadata["metrics_updated_at"] = now.isoformat()
        if body.config_version is not None:
            values["current_config_version"] = body.config_version
        if body.config_status is not None:
            metadata["config_status"] = {
                **body.config_status.model_dump(),
                "reported_at": now.isoformat(),
            }
    runtime.presence.record(ident.gateway_id, metadata=metadata, **values)


async def desired_config(
    session: AsyncSession, gateway_id: uuid.UUID
) -> GatewayRemoteConfig | None:
    return await session.scalar(
        select(GatewayRemoteConfig)
        .where(GatewayRemoteConfig.gateway_id == gateway_id)
        .order_by(GatewayRemoteConfig.version.desc())
        .limit(1)
    )


# -- reading ----------------------------------------------------------------------------------


async def get_gateway(
    session: AsyncSession, runtime: Runtime, org_id: uuid.UUID, gateway_id: uuid.UUID
) -> Gateway:
    buffered = runtime.presence.view()
    gateway = await session.scalar(
        select(Gateway).where(Gateway.id == gateway_id, Gateway.org_id == org_id)
    )
    if gateway is None:
        raise GatewayNotFound()
    return buffered.apply_to(gateway)


def health_out(runtime: Runtime, gateway: Gateway, now: datetime) -> HealthOut:
    s = runtime.settings
    health = compute_health(
        gateway.status, gateway.last_seen, now, s.health_healthy_seconds, s.health_warning_seconds
    )
    uptime = None
    if gateway.status == GatewayStatus.active and gateway.active_since is not None:
        uptime = max(0, int((now - gateway.active_since).total_seconds()))
    age = health.seconds_since_last_seen
    return HealthOut(
        status=health.status,
        last_seen=gateway.last_seen,
        seconds_since_last_seen=int(age) if age is not None else None,
        uptime_seconds=uptime,
        health_score=health.score,
    )


def _attributes(gateway: Gateway) -> dict[str, Any]:
    state = gateway.opamp_state or {}
    return {
        **(state.get("non_identifying_attributes") or {}),
        **(state.get("identifying_attributes") or {}),
    }


def version_out(gateway: Gateway) -> VersionOut:
    meta = gateway.extra_metadata or {}
    attrs = _attributes(gateway)
    service_version = attrs.get("service.version")
    return VersionOut(
        agent_version=meta.get("version") or (str(service_version) if service_version else None),
        otel_version=meta.get("otel_version")
        or (str(service_version) if service_version else None),
        capabilities=list(meta.get("capabilities") or []),
    )


def metrics_out(gateway: Gateway) -> MetricsOut:
    meta = gateway.extra_metadata or {}
    metrics = meta.get("metrics") or {}
    updated = meta.get("metrics_updated_at")
    return MetricsOut(
        logs_processed=metrics.get("logs_processed"),
        errors=metrics.get("errors"),
        latency_ms=metrics.get("latency_ms"),
        last_updated=datetime.fromisoformat(updated) if updated else None,
    )


async def config_out(session: AsyncSession, gateway: Gateway) -> ConfigOut:
    desired = await desired_config(session, gateway.id)
    state = gateway.opamp_state or {}
    effective = None
    files = state.get("effective_config") or {}
    if files:
        name = "" if "" in files else sorted(files)[0]
        effective = EffectiveConfigOut(
            config_yaml=files[name].get("body", ""),
            content_type=files[name].get("content_type") or None,
            updated_at=_parse_dt((state.get("updated_at") or {}).get("effective_config")),
        )
    status = None
    rcs = state.get("remote_config_status")
    if rcs:
        status = ConfigStatusOut(
            status=str(rcs.get("status", "UNSET")).lower(),
            error_message=rcs.get("error_message") or None,
            config_hash=rcs.get("last_remote_config_hash") or None,
        )
    elif (gateway.extra_metadata or {}).get("config_status"):
        reported = gateway.extra_metadata["config_status"]
        status = ConfigStatusOut(
            status=reported.get("status", "unset"),
            error_message=reported.get("error_message"),
            config_version=reported.get("config_version"),
        )
    if desired is not None:
        return ConfigOut(
            config_yaml=desired.config_yaml,
            config_version=desired.version,
            deployment_id=desired.id,
            last_updated=desired.created_at,
            source="remote",
            config_hash=desired.config_hash,
            applied_config_version=gateway.current_config_version,
            remote_config_status=status,
            effective=effective,
        )
    base = base_config_yaml()
    return ConfigOut(
        config_yaml=base,
        config_version=None,
        deployment_id=None,
        last_updated=None,
        source="base",
        config_hash=config_hash(base),
        applied_config_version=gateway.current_config_version,
        remote_config_status=status,
        effective=effective,
    )


def _parse_dt(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def agent_out(runtime: Runtime, gateway: Gateway) -> AgentOut | None:
    state = gateway.opamp_state
    if not state:
        return None
    return AgentOut(
        instance_uid=gateway.opamp_instance_uid,
        transport=gateway.transport,
        identifying_attributes=state.get("identifying_attributes") or {},
        non_identifying_attributes=state.get("non_identifying_attributes") or {},
        component_health=state.get("health"),
        available_components=state.get("available_components"),
        custom_capabilities=state.get("custom_capabilities") or [],
        connected=runtime.hub.is_connected(gateway.id),
    )


async def status_out(session: AsyncSession, runtime: Runtime, gateway: Gateway) -> StatusOut:
    now = utcnow()
    return StatusOut(
        gateway_id=gateway.id,
        instance_id=gateway.instance_id,
        name=gateway.name,
        status=gateway.status,
        health=health_out(runtime, gateway, now),
        version=version_out(gateway),
        config=await config_out(session, gateway),
        metrics=metrics_out(gateway),
        agent=agent_out(runtime, gateway),
    )


def gateway_out(runtime: Runtime, gateway: Gateway, now: datetime) -> GatewayOut:
    health = health_out(runtime, gateway, now)
    return GatewayOut(
        id=gateway.id,
        instance_id=gateway.instance_id,
        org_id=gateway.org_id,
        name=gateway.name,
        status=gateway.status,
        health=GatewayHealthSummary(status=health.status, health_score=health.health_score),
        last_seen=gateway.last_seen,
        hostname=gateway.hostname,
        ip_address=gateway.ip_address,
        labels=gateway.labels or {},
        transport=gateway.transport,
        agent_version=version_out(gateway).agent_version,
        current_config_version=gateway.current_config_version,
        opamp_instance_uid=gateway.opamp_instance_uid,
        created_at=gateway.created_at,
    )


# -- listing ----------------------------------------------------------------------------------


def _health_condition(state: str, now: datetime, runtime: Runtime) -> Any:
    """SQL for one health state, mirroring :func:`compute_health` exactly."""
    healthy_after = now - timedelta(seconds=runtime.settings.health_healthy_seconds)
    warning_after = now - timedelta(seconds=runtime.settings.health_warning_seconds)
    online = Gateway.status.not_in(OFFLINE_STATUSES)
    is_healthy = and_(Gateway.status == GatewayStatus.active, Gateway.last_seen >= healthy_after)
    if state == OFFLINE:
        return Gateway.status.in_(OFFLINE_STATUSES)
    if state == HEALTHY:
        return is_healthy
    if state == WARNING:
        return and_(online, Gateway.last_seen >= warning_after, ~is_healthy)
    return and_(online, or_(Gateway.last_seen.is_(None), Gateway.last_seen < warning_after))


def encode_cursor(name: str, gateway_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([name, str(gateway_id)])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, gid = orjson.loads(raw)
        if "\x00" in str(name):  # never a stored name, and PostgreSQL cannot compare it
            raise ValueError(name)
        return str(name), uuid.UUID(str(gid))
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise DomainError("Invalid cursor") from None


async def list_gateways(
    session: AsyncSession,
    runtime: Runtime,
    org_id: uuid.UUID,
    *,
    status: GatewayStatus | None,
    health: str | None,
    name: str | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[GatewayOut], str | None]:
    """One keyset page ordered by (name, id); stays O(page) however large the fleet."""
    now = utcnow()
    query = select(Gateway).where(Gateway.org_id == org_id)
    if status is not None:
        query = query.where(Gateway.status == status)
    if health is not None:
        query = query.where(_health_condition(health, now, runtime))
    if name:
        escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Gateway.name.ilike(f"%{escaped}%", escape="\\"))
    if cursor:
        after_name, after_id = decode_cursor(cursor)
        query = query.where(tuple_(Gateway.name, Gateway.id) > tuple_(after_name, after_id))
    buffered = runtime.presence.view()
    rows = list(await session.scalars(query.order_by(Gateway.name, Gateway.id).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    items = [gateway_out(runtime, buffered.apply_to(g), now) for g in rows]
    next_cursor = encode_cursor(rows[-1].name, rows[-1].id) if more and rows else None
    return items, next_cursor


_summary_cache: dict[tuple[int, uuid.UUID], tuple[float, FleetSummary]] = {}


async def fleet_summary(session: AsyncSession, runtime: Runtime, org_id: uuid.UUID) -> FleetSummary:
    """Counts by status and health in one grouped query, cached for a moment per org."""
    key = (id(runtime), org_id)
    cached = _summary_cache.get(key)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    now = utcnow()
    health_expr = case(
        *((_health_condition(state, now, runtime), state) for state in (OFFLINE, HEALTHY, WARNING)),
        else_=UNHEALTHY,
    ).label("health")
    rows = await session.execute(
        select(Gateway.status, health_expr, func.count())
        .where(Gateway.org_id == org_id)
        .group_by(Gateway.status, health_expr)
    )
    by_status = {s.value: 0 for s in GatewayStatus}
    by_health = {h: 0 for h in (HEALTHY, WARNING, UNHEALTHY, OFFLINE)}
    total = 0
    for status, health, count in rows.all():
        by_status[GatewayStatus(status).value] += count
        by_health[health] += count
        total += count
    summary = FleetSummary(total=total, by_status=by_status, by_health=by_health)
    _summary_cache[key] = (time.monotonic() + runtime.settings.summary_cache_seconds, summary)
    return summary


def invalidate_summary(runtime: Runtime, org_id: uuid.UUID) -> None:
    _summary_cache.pop((id(runtime), org_id), None)


# -- management -------------------------------------------------------------------------------


async def deactivate(session: AsyncSession, runtime: Runtime, gateway: Gateway) -> None:
    """Mark inactive and revoke the OpAMP token; a registration token can re-enrol it."""
    gateway.status = GatewayStatus.inactive
    gateway.opamp_token = None
    # Buffered as well, not just forgotten: a heartbeat flush already in flight would otherwise
    # write "active" over this change after it commits; the newer buffered value follows it.
    runtime.presence.record(gateway.id, status=GatewayStatus.inactive, urgent=True)
    invalidate_summary(runtime, gateway.org_id)
    log.info("gateway deactivated", extra={"gateway_id": str(gateway.id)})


async def delete(session: AsyncSession, runtime: Runtime, gateway: Gateway) -> None:
    await session.delete(gateway)
    runtime.presence.forget(gateway.id)
    invalidate_summary(runtime, gateway.org_id)
    log.info("gateway deleted", extra={"gateway_id": str(gateway.id)})


async def push_config(
    session: AsyncSession,
    runtime: Runtime,
    gateway: Gateway,
    config_yaml: str,
    created_by: uuid.UUID | None,
    content_type: str = "text/yaml",
) -> GatewayRemoteConfig:
    """Store a new numbered config as the gateway's desired one. The caller commits, then
    calls :meth:`Hub.config_changed` so live connections get it at once."""
    try:
        if content_type == "application/json":
            if not isinstance(orjson.loads(config_yaml), dict):
                raise ValueError("an application/json config must be a JSON object")
        else:
            check_collector_yaml(config_yaml)
    except orjson.JSONDecodeError:
        raise DomainError("config_yaml is not valid JSON") from None
    except ValueError as exc:
        raise DomainError(str(exc)) from None
    last = await session.scalar(
        select(func.max(GatewayRemoteConfig.version)).where(
            GatewayRemoteConfig.gateway_id == gateway.id
        )
    )
    record = GatewayRemoteConfig(
        gateway_id=gateway.id,
        org_id=gateway.org_id,
        version=(last or 0) + 1,
        config_yaml=config_yaml,
        content_type=content_type,
        config_hash=config_hash(config_yaml, content_type),
        created_by=created_by,
    )
    session.add(record)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("Another configuration was pushed at the same time; retry") from None
    log.info(
        "remote config stored",
        extra={"gateway_id": str(gateway.id), "config_version": record.version},
    )
    return record
