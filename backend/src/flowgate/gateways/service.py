"""Managing gateways (rename, labels, deactivate, delete) and recording REST heartbeats.

Services change rows through the unit of work and queue what must follow the commit; they
never commit. A deactivation or deletion publishes :class:`GatewayRevoked`, on which every
replica drops the cached credential, forgets buffered heartbeats and closes the live socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from flowgate.configs.models import TargetState
from flowgate.configs.reports import Report, RolloutReports
from flowgate.core.db import utcnow
from flowgate.core.errors import InstanceMismatch
from flowgate.core.events import GatewayChanged, GatewayHealthChanged, GatewayRevoked
from flowgate.core.uow import UnitOfWork
from flowgate.gateways import repository
from flowgate.gateways.identity import GatewayIdentity
from flowgate.gateways.models import Gateway, GatewayStatus
from flowgate.gateways.presence import Presence
from flowgate.gateways.schemas import GatewayUpdate, HeartbeatRequest

log = logging.getLogger(__name__)

#: How long a status-changing heartbeat waits for its write before it is answered anyway.
TRANSITION_WRITE_SECONDS = 2.0


def check_instance(ident: GatewayIdentity, instance_id: str) -> None:
    if ident.instance_id != instance_id:
        log.warning(
            "opamp request for another instance",
            extra={"gateway_id": str(ident.gateway_id)},
        )
        raise InstanceMismatch()


def heartbeat(
    presence: Presence,
    reports: RolloutReports,
    ident: GatewayIdentity,
    body: HeartbeatRequest | None,
) -> bool:
    """Record a REST heartbeat in memory; the presence flusher writes it in a batch.

    Returns whether the heartbeat changes the gateway's status (its first one, or the first
    after it was offline): the caller then has it written before answering
    (:func:`write_transition`), so whoever sees the answer — the gateway's script, a person
    following the quick start — finds the gateway active and healthy at once. Transitions are
    rare (once per gateway start), so this costs nothing at steady state.
    """
    assert ident.token_digest is not None  # authenticated identities always have one
    now = utcnow()
    if presence.known_status(ident.gateway_id) is None:
        presence.observe_status(ident.gateway_id, ident.status)
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
    if body is not None:
        _report_rollout(reports, ident, body)
    return presence.record(ident.gateway_id, ident.token_digest, metadata=metadata, **values)


async def write_transition(presence: Presence) -> None:
    """Flush presence now, waiting at most ``TRANSITION_WRITE_SECONDS``. Run it after the
    request's unit of work has committed (so the request holds no pooled connection while it
    waits). With the database away the heartbeat is still accepted at once; the shielded flush
    goes on, and the periodic one retries whatever it could not write."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(presence.flush()), TRANSITION_WRITE_SECONDS)


def _report_rollout(
    reports: RolloutReports, ident: GatewayIdentity, body: HeartbeatRequest
) -> None:
    """What the gateway says it runs moves its rollout: ``config_status`` when it sends one
    (naming the configuration by its ``config_hash``, else by its version number), else a
    ``config_version`` means that version is applied. A version number alone is ambiguous
    (each template counts from 1), which is why gateway/heartbeat.sh sends the hash."""
    if body.config_status is not None:
        status = body.config_status
        version = status.config_version
        if version is None:
            version = body.config_version
        reports.record(
            Report(
                ident.gateway_id,
                TargetState(status.status),
                config_hash=status.config_hash,
                version=None if status.config_hash is not None else version,
                error_message=status.error_message,
            )
        )
    elif body.config_version is not None:
        reports.record(Report(ident.gateway_id, TargetState.applied, version=body.config_version))


async def update(uow: UnitOfWork, gateway: Gateway, body: GatewayUpdate) -> None:
    """Rename and/or relabel. ``labels`` replaces the labels people set: afterwards the
    gateway's labels are exactly the body's, and agent-reported labels never override them
    (see :mod:`flowgate.gateways.labels`)."""
    if body.labels is not None:
        await repository.set_manual_labels(uow.session, gateway, body.labels)
    if body.name is not None:
        gateway.name = body.name
    await uow.session.flush()
    uow.publish(GatewayChanged(gateway_id=gateway.id, org_id=gateway.org_id))


async def deactivate(uow: UnitOfWork, gateway: Gateway) -> None:
    """Mark inactive and revoke the OpAMP token; a registration token can re-enrol it."""
    gateway.status = GatewayStatus.inactive
    gateway.opamp_token = None
    await uow.session.flush()
    now = utcnow()
    await repository.set_offline(uow.session, [gateway.id], now, "deactivated")
    changes = await repository.health_changes_at(uow.session, now, [gateway.id])
    if changes:
        uow.publish(GatewayHealthChanged(changes=tuple(changes)))
    uow.publish(GatewayRevoked(gateway_id=gateway.id, org_id=gateway.org_id, reason="deactivated"))
    log.info("gateway deactivated", extra={"gateway_id": str(gateway.id)})


async def delete(uow: UnitOfWork, gateway: Gateway) -> None:
    await uow.session.delete(gateway)
    await uow.session.flush()
    uow.publish(GatewayRevoked(gateway_id=gateway.id, org_id=gateway.org_id, reason="deleted"))
    log.info("gateway deleted", extra={"gateway_id": str(gateway.id)})
