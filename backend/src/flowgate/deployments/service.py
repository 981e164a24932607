"""Deployments: the only writer of what each gateway should run (its assignment).

A deployment names a template version and a set of gateways (explicit ids, a label selector,
or all of the organisation's), and a strategy: all at once, or staged in batches that advance
only while the gateways of the current batch apply the version (see :mod:`configs.rollout`).

Guarantees:
- A gateway has exactly one assignment; creating a deployment, sending a batch and rolling
  back take the organisation's rollout lock, so two deployments racing for the same gateways
  serialise: the later one supersedes the earlier one for the gateways they share, and the
  per-gateway rollout states always agree with the assignments.
- A deployment to N gateways is one transaction and one bus event (:class:`ConfigChanged` with
  the N ids), delivered to every replica once.
- A gateway that is offline when its batch is sent keeps the assignment: it gets the version
  when it comes back (its target stays ``sent`` and counts against the batch timeout).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Uuid,
    case,
    false,
    func,
    insert,
    literal,
    null,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate import telemetry
from flowgate.configs import assignments, validation
from flowgate.configs.assignments import chunks
from flowgate.configs.models import (
    ACTIVE_DEPLOYMENT_STATES,
    Assignment,
    ConfigTemplate,
    ConfigVersion,
    Deployment,
    DeploymentState,
    DeploymentTarget,
    TargetState,
)
from flowgate.core import bulk
from flowgate.core.db import UTCDateTime, utcnow
from flowgate.core.errors import ConfigRejected, Conflict, DomainError, GatewayNotFound, NotFound
from flowgate.core.events import ConfigChanged, DeploymentProgressed
from flowgate.core.uow import UnitOfWork
from flowgate.deployments import plan
from flowgate.deployments.locking import lock_org
from flowgate.deployments.schemas import DeploymentCreate, Staged
from flowgate.gateways import repository, selectors

log = logging.getLogger(__name__)

CHUNK = 1000
COUNT_KEYS = ("total", *(s.value for s in TargetState))


class DeploymentNotFound(NotFound):
    detail = "Deployment not found"


@dataclass(frozen=True)
class Plan:
    """What to deploy where, resolved and checked (see :func:`create`)."""

    org_id: uuid.UUID
    version: ConfigVersion | None
    template: ConfigTemplate | None
    targets: Sequence[tuple[uuid.UUID, uuid.UUID | None]]  # (gateway, version it gets)
    batches: list[list[uuid.UUID]]
    target_spec: dict[str, Any]
    strategy: dict[str, Any]
    auto_rollback: bool
    message: str | None = None
    rollback_of: uuid.UUID | None = None


class TemplateNotFound(NotFound):
    detail = "Configuration not found"


async def prepare(session: AsyncSession, org_id: uuid.UUID, body: DeploymentCreate) -> Plan:
    """Resolve and check a deployment request: the version exists, the targets exist in the
    organisation, and the version uses only components each target reported having (a native
    agent that reported its available components). Raises a 4xx domain error otherwise."""
    template = await session.scalar(
        select(ConfigTemplate).where(
            ConfigTemplate.id == body.config_id, ConfigTemplate.org_id == org_id
        )
    )
    if template is None:
        raise TemplateNotFound()
    query = select(ConfigVersion).where(ConfigVersion.template_id == template.id)
    if body.version is not None:
        query = query.where(ConfigVersion.version == body.version)
    version = await session.scalar(query.order_by(ConfigVersion.version.desc()).limit(1))
    if version is None:
        if body.version is None:
            raise Conflict("The configuration has no versions yet; add one first")
        raise NotFound(f"Version {body.version} of this configuration not found")
    spec = body.target
    selector = selectors.parse(spec.selector) if spec.selector is not None else None
    found = await repository.deployment_targets(
        session, org_id, ids=spec.gateway_ids, selector=selector
    )
    if spec.gateway_ids is not None:
        missing = set(spec.gateway_ids) - {t.gateway_id for t in found}
        if missing:
            raise GatewayNotFound(f"Gateway not found: {sorted(map(str, missing))[0]}")
    if not found:
        raise DomainError("No gateway matches the target")
    check_components(version, found)
    ordered = [t.gateway_id for t in found]
    strategy = body.strategy
    if isinstance(strategy, Staged):
        canary: list[uuid.UUID] = []
        if strategy.canary_selector:
            canary_sel = selectors.parse(strategy.canary_selector)
            chosen = await repository.matching_ids(session, org_id, canary_sel)
            canary = [gid for gid in ordered if gid in chosen]
        try:
            batches = plan.plan(ordered, strategy.batches, canary)
        except plan.PlanError as exc:
            raise DomainError(str(exc)) from None
    else:
        batches = [ordered]
    return Plan(
        org_id=org_id,
        version=version,
        template=template,
        targets=[(gid, version.id) for gid in ordered],
        batches=batches,
        target_spec=spec.as_json(),
        strategy=strategy.model_dump(),
        auto_rollback=body.auto_rollback,
        message=body.message,
    )


def check_components(version: ConfigVersion, targets: Sequence[repository.TargetRow]) -> None:
    """Refuse a version that uses a component some target gateway reported not having."""
    if version.content_type != "text/yaml":
        return
    checked: dict[str, list[validation.ConfigError]] = {}
    result = validation.validate(version.config_yaml)
    for target in targets:
        available = validation.components_from_agent_state(target.available_components)
        if available is None:
            continue
        key = str((target.available_components or {}).get("hash") or target.gateway_id)
        if key not in checked:
            checked[key] = validation.unavailable_components(result.components, available)
        missing = checked[key]
        if missing:
            errors = [
                {
                    "line": e.line,
                    "column": e.column,
                    "message": f"gateway {target.name!r} ({target.gateway_id}): {e.message}",
                }
                for e in missing
            ]
            raise ConfigRejected(
                errors, f"Gateway {target.name!r} lacks a component this version uses"
            )


async def create(
    uow: UnitOfWork, p: Plan, created_by: uuid.UUID | None, *, send_first: bool = True
) -> Deployment:
    """Store the deployment and its targets, supersede older rollouts of those gateways, and
    send the first batch, in the caller's unit of work (one transaction).

    With ``send_first`` False (the CLI, which holds no agent connections) the deployment is
    left ``pending`` and the rollout driver of a running server sends the first batch.
    """
    session = uow.session
    await lock_org(session, p.org_id)
    deployment = Deployment(
        org_id=p.org_id,
        config_id=p.template.id if p.template else None,
        config_version_id=p.version.id if p.version else None,
        version=p.version.version if p.version else None,
        target=p.target_spec,
        strategy=p.strategy,
        auto_rollback=p.auto_rollback,
        state=DeploymentState.rolling_out if send_first else DeploymentState.pending,
        batch_count=len(p.batches),
        rollback_of=p.rollback_of,
        message=p.message,
        created_by=created_by,
    )
    session.add(deployment)
    await session.flush()
    uow.after_commit(telemetry.DEPLOYMENTS_CREATED.inc)
    batch_of = {gid: index for index, batch in enumerate(p.batches) for gid in batch}
    await supersede(session, deployment.id, [gid for gid, _ in p.targets])
    first = [(gid, vid) for gid, vid in p.targets if batch_of[gid] == 0] if send_first else []
    now = utcnow()
    # The first batch is written as sent, with what each gateway had before, in the same
    # INSERT (not an INSERT and an UPDATE per gateway).
    await _insert_targets(session, deployment, p.targets, batch_of, send_first, now)
    if send_first:
        await _assign_sent(uow, deployment, first, 0, now)
    log.info(
        "deployment created",
        extra={
            "deployment_id": str(deployment.id),
            "org_id": str(p.org_id),
            "gateways": len(p.targets),
            "batches": len(p.batches),
            "rollback_of": str(p.rollback_of) if p.rollback_of else None,
        },
    )
    return deployment


async def _insert_targets(
    session: AsyncSession,
    deployment: Deployment,
    targets: Sequence[tuple[uuid.UUID, uuid.UUID | None]],
    batch_of: dict[uuid.UUID, int],
    send_first: bool,
    now: datetime,
) -> None:
    """One target row per gateway; those of batch 0 (when sent now) as ``sent`` with the
    assignment they had before, the others ``pending``."""
    if bulk.is_postgres(session):
        t = bulk.unnest(
            "t",
            gateway_id=("uuid", [gid for gid, _ in targets]),
            version_id=("uuid", [vid for _, vid in targets]),
            batch=("int", [batch_of[gid] for gid, _ in targets]),
        )
        sending = t.c.batch == 0 if send_first else false()
        source = select(
            literal(deployment.id, Uuid()),
            t.c.gateway_id,
            literal(deployment.org_id, Uuid()),
            t.c.batch,
            t.c.version_id,
            case((sending, Assignment.gateway_id.is_not(None)), else_=false()),
            case((sending, Assignment.config_version_id), else_=null()),
            case((sending, TargetState.sent.value), else_=TargetState.pending.value),
            literal(now, UTCDateTime()),
        ).select_from(t.outerjoin(Assignment, Assignment.gateway_id == t.c.gateway_id))
        columns = [
            "deployment_id",
            "gateway_id",
            "org_id",
            "batch",
            "to_version_id",
            "had_assignment",
            "previous_version_id",
            "state",
            "updated_at",
        ]
        await session.execute(insert(DeploymentTarget).from_select(columns, source))
        return
    first = [gid for gid, _ in targets if send_first and batch_of[gid] == 0]
    previous = await assignments.current(session, first)
    sent_now = set(first)
    rows = [
        {
            "deployment_id": deployment.id,
            "gateway_id": gid,
            "org_id": deployment.org_id,
            "batch": batch_of[gid],
            "to_version_id": version_id,
            "had_assignment": gid in previous,
            "previous_version_id": previous[gid].config_version_id if gid in previous else None,
            "state": TargetState.sent if gid in sent_now else TargetState.pending,
            "error_message": None,
            "updated_at": now,
        }
        for gid, version_id in targets
    ]
    for start in range(0, len(rows), CHUNK):
        await session.execute(insert(DeploymentTarget), rows[start : start + CHUNK])


async def supersede(
    session: AsyncSession, deployment_id: uuid.UUID, gateway_ids: Sequence[uuid.UUID]
) -> None:
    """Older deployments stop waiting for these gateways: the newer one owns them now."""
    if bulk.is_postgres(session):
        t = bulk.unnest("t", gateway_id=("uuid", gateway_ids))
        groups: list[Any] = [select(t.c.gateway_id)]
    else:
        groups = list(chunks(gateway_ids))
    for ids in groups:
        await session.execute(
            update(DeploymentTarget)
            .where(
                DeploymentTarget.gateway_id.in_(ids),
                DeploymentTarget.deployment_id != deployment_id,
                DeploymentTarget.state.in_(
                    (TargetState.pending, TargetState.sent, TargetState.applying)
                ),
            )
            .values(state=TargetState.superseded, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )


async def send_batch(uow: UnitOfWork, deployment: Deployment, batch: int) -> int:
    """Assign the deployment's version to the gateways of ``batch`` still pending in it;
    their live agents get it once the unit of work commits. Returns how many were sent."""
    now = utcnow()
    previous = select(Assignment.config_version_id).where(
        Assignment.gateway_id == DeploymentTarget.gateway_id
    )
    # One statement marks the batch sent and records what each gateway had before.
    rows = (
        await uow.session.execute(
            update(DeploymentTarget)
            .where(
                DeploymentTarget.deployment_id == deployment.id,
                DeploymentTarget.batch == batch,
                DeploymentTarget.state == TargetState.pending,
            )
            .values(
                state=TargetState.sent,
                had_assignment=previous.exists(),
                previous_version_id=previous.scalar_subquery(),
                updated_at=now,
            )
            .returning(DeploymentTarget.gateway_id, DeploymentTarget.to_version_id)
            .execution_options(synchronize_session=False)
        )
    ).all()
    targets = [(gid, vid) for gid, vid in rows]
    await _assign_sent(uow, deployment, targets, batch, now)
    return len(targets)


async def _assign_sent(
    uow: UnitOfWork,
    deployment: Deployment,
    targets: Sequence[tuple[uuid.UUID, uuid.UUID | None]],
    batch: int,
    now: datetime,
) -> None:
    """Assign what ``targets`` get, mark ``batch`` as the one sent now, and tell the live
    agents once the unit of work commits (one event for the whole batch)."""
    session = uow.session
    await assignments.assign(session, deployment.org_id, deployment.id, targets, now)
    deployment.current_batch = batch
    deployment.batch_started_at = now
    deployment.updated_at = now
    await session.flush()
    gateway_ids = [gid for gid, _ in targets]
    if gateway_ids:
        uow.publish(ConfigChanged(org_id=deployment.org_id, gateway_ids=tuple(gateway_ids)))
    uow.publish(DeploymentProgressed(deployment_id=deployment.id, org_id=deployment.org_id))


async def get(session: AsyncSession, org_id: uuid.UUID, deployment_id: uuid.UUID) -> Deployment:
    deployment = await session.scalar(
        select(Deployment).where(Deployment.id == deployment_id, Deployment.org_id == org_id)
    )
    if deployment is None:
        raise DeploymentNotFound()
    return deployment


async def counts(
    session: AsyncSession, deployment_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, dict[str, int]]:
    """Per deployment: how many targets are in each state, and the total."""
    out = {did: dict.fromkeys(COUNT_KEYS, 0) for did in deployment_ids}
    for chunk in chunks(deployment_ids):
        rows = await session.execute(
            select(DeploymentTarget.deployment_id, DeploymentTarget.state, func.count())
            .where(DeploymentTarget.deployment_id.in_(chunk))
            .group_by(DeploymentTarget.deployment_id, DeploymentTarget.state)
        )
        for did, state, n in rows.all():
            out[did][TargetState(state).value] += n
            out[did]["total"] += n
    return out


async def batch_counts(
    session: AsyncSession, deployment_id: uuid.UUID
) -> dict[int, dict[TargetState, int]]:
    rows = await session.execute(
        select(DeploymentTarget.batch, DeploymentTarget.state, func.count())
        .where(DeploymentTarget.deployment_id == deployment_id)
        .group_by(DeploymentTarget.batch, DeploymentTarget.state)
    )
    out: dict[int, dict[TargetState, int]] = {}
    for batch, state, n in rows.all():
        out.setdefault(int(batch), {})[TargetState(state)] = int(n)
    return out


#: States a deployment ends in (counted in ``flowgate_deployments_finished_total``).
FINISHED = frozenset(
    {
        DeploymentState.completed,
        DeploymentState.failed,
        DeploymentState.cancelled,
        DeploymentState.rolled_back,
    }
)


async def set_state(
    uow: UnitOfWork,
    deployment: Deployment,
    state: DeploymentState,
    reason: str | None = None,
) -> None:
    deployment.state = state
    deployment.updated_at = utcnow()
    if reason is not None:
        deployment.reason = reason
    await uow.session.flush()
    uow.publish(DeploymentProgressed(deployment_id=deployment.id, org_id=deployment.org_id))
    if state in FINISHED:
        uow.after_commit(lambda: telemetry.DEPLOYMENTS_FINISHED.inc(state.value))
    log.info(
        "deployment state changed",
        extra={"deployment_id": str(deployment.id), "state": state.value, "reason": reason},
    )


async def pause(uow: UnitOfWork, deployment: Deployment) -> None:
    if deployment.state != DeploymentState.rolling_out:
        raise Conflict(f"Only a rolling-out deployment can be paused (it is {deployment.state})")
    await set_state(uow, deployment, DeploymentState.paused)


async def resume(uow: UnitOfWork, deployment: Deployment) -> None:
    if deployment.state != DeploymentState.paused:
        raise Conflict(f"Only a paused deployment can be resumed (it is {deployment.state})")
    # The batch timeout restarts: time spent paused is not the gateways' fault.
    deployment.batch_started_at = utcnow()
    await set_state(uow, deployment, DeploymentState.rolling_out)


async def cancel(uow: UnitOfWork, deployment: Deployment) -> None:
    """Stop sending batches. Gateways already sent the version keep it (roll back to undo)."""
    if deployment.state not in (*ACTIVE_DEPLOYMENT_STATES, DeploymentState.paused):
        raise Conflict(f"The deployment has already ended ({deployment.state})")
    await set_state(uow, deployment, DeploymentState.cancelled, "cancelled by a user")


async def rollback(
    uow: UnitOfWork, deployment: Deployment, reason: str, created_by: uuid.UUID | None
) -> Deployment:
    """Put every gateway this deployment reached, and still owns, back on what it ran before.

    The rollback is a deployment of its own (``rollback_of``), all at once; the original
    becomes ``rolled_back``. Gateways that a newer deployment has taken over are left alone.
    """
    session = uow.session
    await lock_org(session, deployment.org_id)
    if deployment.state == DeploymentState.rolled_back:
        raise Conflict("The deployment has already been rolled back")
    if deployment.rollback_of is not None:
        raise Conflict("A rollback cannot be rolled back; deploy the version you want instead")
    owned = (
        await session.execute(
            select(
                DeploymentTarget.gateway_id,
                DeploymentTarget.had_assignment,
                DeploymentTarget.previous_version_id,
            )
            .join(Assignment, Assignment.gateway_id == DeploymentTarget.gateway_id)
            .where(
                DeploymentTarget.deployment_id == deployment.id,
                DeploymentTarget.state.in_(
                    (
                        TargetState.sent,
                        TargetState.applying,
                        TargetState.applied,
                        TargetState.failed,
                    )
                ),
                Assignment.deployment_id == deployment.id,
            )
            .order_by(DeploymentTarget.gateway_id)
        )
    ).all()
    if deployment.state in (*ACTIVE_DEPLOYMENT_STATES, DeploymentState.paused):
        deployment.reason = reason
    await set_state(uow, deployment, DeploymentState.rolled_back, reason)
    forget = [gid for gid, had, _ in owned if not had]
    back = [(gid, prev) for gid, had, prev in owned if had]
    if forget:
        # It had no configuration from FlowGate before: REST gateways fall back to the base
        # configuration and native agents are offered it (an explicit "base" assignment).
        back.extend((gid, None) for gid in forget)
    p = Plan(
        org_id=deployment.org_id,
        version=None,
        template=None,
        targets=back,
        batches=[[gid for gid, _ in back]] if back else [],
        target_spec={"gateway_ids": [str(gid) for gid, _ in back]},
        strategy={"type": "all-at-once"},
        auto_rollback=False,
        message=f"rollback of {deployment.id}: {reason}",
        rollback_of=deployment.id,
    )
    return await create(uow, p, created_by)


__all__ = [
    "DeploymentNotFound",
    "Plan",
    "batch_counts",
    "cancel",
    "counts",
    "create",
    "get",
    "pause",
    "resume",
    "rollback",
    "send_batch",
    "set_state",
    "supersede",
]
