"""How a gateway is shown: the seed's health, version, metrics, config and status shapes.

Pure functions of a loaded row (plus, for the config, its desired configuration); nothing here
writes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import yaml
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.configs import assignments
from flowgate.configs.base import base_config_yaml, config_hash
from flowgate.core.db import utcnow
from flowgate.core.settings import Settings
from flowgate.gateways.health import compute_health
from flowgate.gateways.models import Gateway, GatewayStatus
from flowgate.gateways.schemas import (
    AgentOut,
    ConfigOut,
    ConfigStatusOut,
    EffectiveConfigOut,
    GatewayHealthSummary,
    GatewayOut,
    HealthOut,
    MetricsOut,
    OwnTelemetryOut,
    StatusOut,
    VersionOut,
)

OPAMP_TRANSPORTS = frozenset({"opamp-ws", "opamp-http"})


def health_out(settings: Settings, gateway: Gateway, now: datetime) -> HealthOut:
    health = compute_health(
        gateway.status,
        gateway.last_seen,
        now,
        settings.health_healthy_seconds,
        settings.health_warning_seconds,
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
    service_version = _attributes(gateway).get("service.version")
    reported = str(service_version) if service_version else None
    return VersionOut(
        agent_version=meta.get("version") or reported,
        otel_version=meta.get("otel_version") or reported,
        capabilities=list(meta.get("capabilities") or []),
    )


def _own_metrics(gateway: Gateway) -> tuple[dict[str, Any], datetime, bool] | None:
    """The stored own-telemetry numbers, when they were written, and whether they are newer
    than the REST heartbeat's metrics (then they are the seed's metrics)."""
    meta = gateway.extra_metadata or {}
    own = meta.get("own_metrics")
    own_at = _parse_dt(meta.get("own_metrics_updated_at"))
    if not isinstance(own, dict) or own_at is None:
        return None
    heartbeat_at = _parse_dt(meta.get("metrics_updated_at"))
    return own, own_at, heartbeat_at is None or own_at >= heartbeat_at


def metrics_out(gateway: Gateway) -> MetricsOut:
    """The seed's metrics: from the REST heartbeat or the Collector's own telemetry, whichever
    arrived last."""
    own = _own_metrics(gateway)
    if own is not None and own[2]:
        numbers, at, _ = own
        return MetricsOut(
            logs_processed=numbers.get("logs_processed"),
            errors=numbers.get("errors"),
            latency_ms=numbers.get("latency_ms"),
            last_updated=at,
        )
    meta = gateway.extra_metadata or {}
    metrics = meta.get("metrics") or {}
    return MetricsOut(
        logs_processed=metrics.get("logs_processed"),
        errors=metrics.get("errors"),
        latency_ms=metrics.get("latency_ms"),
        last_updated=_parse_dt(meta.get("metrics_updated_at")),
    )


_OWN_FIELDS = tuple(
    k for k in OwnTelemetryOut.model_fields if k not in ("in_metrics", "last_updated")
)


def own_telemetry_out(gateway: Gateway) -> OwnTelemetryOut | None:
    own = _own_metrics(gateway)
    if own is None:
        return None
    numbers, at, in_metrics = own
    fields = {k: numbers.get(k) for k in _OWN_FIELDS}
    return OwnTelemetryOut(in_metrics=in_metrics, last_updated=at, **fields)


def _parse_dt(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _effective(gateway: Gateway) -> EffectiveConfigOut | None:
    state = gateway.opamp_state or {}
    files = state.get("effective_config") or {}
    if not files:
        return None
    name = "" if "" in files else sorted(files)[0]
    return EffectiveConfigOut(
        config_yaml=files[name].get("body", ""),
        content_type=files[name].get("content_type") or None,
        updated_at=_parse_dt((state.get("updated_at") or {}).get("effective_config")),
    )


def _config_status(gateway: Gateway) -> ConfigStatusOut | None:
    rcs = (gateway.opamp_state or {}).get("remote_config_status")
    if rcs:
        return ConfigStatusOut(
            status=str(rcs.get("status", "UNSET")).lower(),
            error_message=rcs.get("error_message") or None,
            config_hash=rcs.get("last_remote_config_hash") or None,
        )
    reported = (gateway.extra_metadata or {}).get("config_status")
    if reported:
        return ConfigStatusOut(
            status=reported.get("status", "unset"),
            error_message=reported.get("error_message"),
            config_version=reported.get("config_version"),
            config_hash=reported.get("config_hash"),
        )
    return None


async def config_out(session: AsyncSession, gateway: Gateway) -> ConfigOut:
    desired = await assignments.desired(session, gateway.id)
    status = _config_status(gateway)
    effective = _effective(gateway)
    common: dict[str, Any] = {
        "applied_config_version": gateway.current_config_version,
        "remote_config_status": status,
        "effective": effective,
    }
    if desired is not None:
        applied = (
            status is not None
            and status.status == "applied"
            and status.config_hash == desired.config_hash
        )
        return ConfigOut(
            config_yaml=desired.config_yaml,
            config_version=desired.version,
            deployment_id=desired.deployment_id,
            config_id=desired.config_id,
            config_name=desired.config_name,
            last_updated=desired.assigned_at,
            source="remote" if desired.version is not None else "base",
            config_hash=desired.config_hash,
            drift=applied and effective is not None and _differs(effective, desired.config_yaml),
            **common,
        )
    base = base_config_yaml()
    return ConfigOut(
        config_yaml=base,
        config_version=None,
        deployment_id=None,
        last_updated=None,
        source="base",
        config_hash=config_hash(base),
        **common,
    )


def _differs(effective: EffectiveConfigOut, desired_yaml: str) -> bool:
    """Compare as YAML documents (formatting and key order do not count)."""
    try:
        return bool(yaml.safe_load(effective.config_yaml) != yaml.safe_load(desired_yaml))
    except (yaml.YAMLError, RecursionError, ValueError):
        return effective.config_yaml.strip() != desired_yaml.strip()


def is_connected(gateway: Gateway) -> bool:
    """A native agent is connected while it is active: a WebSocket that closes, or an HTTP
    agent that stops polling, turns it inactive (true on every replica, from the database)."""
    return gateway.transport in OPAMP_TRANSPORTS and gateway.status == GatewayStatus.active


def takes_pushes(gateway: Gateway) -> bool:
    """The gateway holds a live WebSocket (on some replica) and accepts remote configuration,
    so a new configuration is pushed to it as soon as it is committed."""
    capabilities = (gateway.extra_metadata or {}).get("capabilities") or []
    return (
        is_connected(gateway)
        and gateway.transport == "opamp-ws"
        and "AcceptsRemoteConfig" in capabilities
    )


def agent_out(gateway: Gateway) -> AgentOut | None:
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
        connected=is_connected(gateway),
    )


async def status_out(session: AsyncSession, settings: Settings, gateway: Gateway) -> StatusOut:
    return StatusOut(
        gateway_id=gateway.id,
        instance_id=gateway.instance_id,
        name=gateway.name,
        status=gateway.status,
        health=health_out(settings, gateway, utcnow()),
        version=version_out(gateway),
        config=await config_out(session, gateway),
        metrics=metrics_out(gateway),
        agent=agent_out(gateway),
        own_telemetry=own_telemetry_out(gateway),
    )


def gateway_out(settings: Settings, gateway: Gateway, now: datetime) -> GatewayOut:
    health = health_out(settings, gateway, now)
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
