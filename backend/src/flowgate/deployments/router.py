"""The deployments API: deploy a template version to gateways, follow it, steer it."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated, TypeVarTuple

import orjson
from fastapi import Query, status
from sqlalchemy import Select, select, tuple_

from flowgate.auth.principal import OperatorAccess, ViewerAccess
from flowgate.configs.models import (
    ConfigTemplate,
    Deployment,
    DeploymentState,
    DeploymentTarget,
    TargetState,
)
from flowgate.core.deps import SessionDep, UowDep
from flowgate.core.errors import DomainError
from flowgate.core.routing import api_router
from flowgate.deployments import direct
from flowgate.deployments import service as deployments
from flowgate.deployments.schemas import (
    DeploymentCounts,
    DeploymentCreate,
    DeploymentOut,
    DeploymentPage,
    DeploymentTargetOut,
    DeploymentTargetPage,
    GatewayDeploymentOut,
    GatewayDeploymentPage,
)
from flowgate.gateways import repository, views
from flowgate.gateways.models import Gateway
from flowgate.gateways.schemas import RemoteConfigOut, RemoteConfigPush

router = api_router(prefix="/api/v1/deployments", tags=["deployments"])


def _encode(parts: list[str]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(parts)).decode().rstrip("=")


def _decode(cursor: str, n: int) -> list[str]:
    try:
        parts = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(parts, list) or len(parts) != n:
            raise ValueError(cursor)
        return [str(p) for p in parts]
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise DomainError("Invalid cursor") from None


Row = TypeVarTuple("Row")


def _newest_first(query: Select[*Row], cursor: str | None, limit: int) -> Select[*Row]:
    """Deployments newest first, after ``cursor`` (the last row of the previous page), one row
    more than ``limit`` so the caller knows whether a next page exists."""
    if cursor:
        created, did = _decode(cursor, 2)
        try:
            key = (datetime.fromisoformat(created), uuid.UUID(did))
        except ValueError:
            raise DomainError("Invalid cursor") from None
        query = query.where(tuple_(Deployment.created_at, Deployment.id) < key)
    return query.order_by(Deployment.created_at.desc(), Deployment.id.desc()).limit(limit + 1)


async def render(session: SessionDep, items: list[Deployment]) -> list[DeploymentOut]:
    counts = await deployments.counts(session, [d.id for d in items])
    template_ids = {d.config_id for d in items if d.config_id}
    names: dict[uuid.UUID, str] = {}
    if template_ids:
        rows = await session.execute(
            select(ConfigTemplate.id, ConfigTemplate.name).where(
                ConfigTemplate.id.in_(template_ids)
            )
        )
        names = dict(rows.all())
    return [
        DeploymentOut(
            id=d.id,
            org_id=d.org_id,
            config_id=d.config_id,
            config_name=names.get(d.config_id) if d.config_id else None,
            version=d.version,
            target=d.target,
            strategy=d.strategy,
            auto_rollback=d.auto_rollback,
            state=d.state.value,
            reason=d.reason,
            current_batch=d.current_batch + 1,
            batch_count=d.batch_count,
            rollback_of=d.rollback_of,
            message=d.message,
            created_by=d.created_by,
            created_at=d.created_at,
            updated_at=d.updated_at,
            counts=DeploymentCounts(**counts[d.id]),
        )
        for d in items
    ]


@router.post("", operation_id="create_deployment", status_code=status.HTTP_201_CREATED)
async def create_deployment(
    body: DeploymentCreate, access: OperatorAccess, uow: UowDep
) -> DeploymentOut:
    """Deploy a template version to gateways (explicit ids, a label selector or all), all at
    once or staged. The version is checked against the components each target reported."""
    plan = await deployments.prepare(uow.session, access.org_id, body)
    deployment = await deployments.create(uow, plan, access.principal.actor_id)
    return (await render(uow.session, [deployment]))[0]


@router.get("", operation_id="list_deployments")
async def list_deployments(
    access: ViewerAccess,
    session: SessionDep,
    config_id: uuid.UUID | None = None,
    state: DeploymentState | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> DeploymentPage:
    """Newest first."""
    query = select(Deployment).where(Deployment.org_id == access.org_id)
    if config_id is not None:
        query = query.where(Deployment.config_id == config_id)
    if state is not None:
        query = query.where(Deployment.state == state)
    rows = list(await session.scalars(_newest_first(query, cursor, limit)))
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = (
        _encode([rows[-1].created_at.isoformat(), str(rows[-1].id)]) if more and rows else None
    )
    return DeploymentPage(items=await render(session, rows), next_cursor=next_cursor)


@router.get("/{deployment_id}", operation_id="get_deployment")
async def get_deployment(
    deployment_id: uuid.UUID, access: ViewerAccess, session: SessionDep
) -> DeploymentOut:
    deployment = await deployments.get(session, access.org_id, deployment_id)
    return (await render(session, [deployment]))[0]


@router.get("/{deployment_id}/gateways", operation_id="list_deployment_gateways")
async def list_deployment_gateways(
    deployment_id: uuid.UUID,
    access: ViewerAccess,
    session: SessionDep,
    state: TargetState | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> DeploymentTargetPage:
    """The deployment's gateways in batch order, with each one's rollout state."""
    deployment = await deployments.get(session, access.org_id, deployment_id)
    query = (
        select(DeploymentTarget, Gateway.name)
        .join(Gateway, Gateway.id == DeploymentTarget.gateway_id)
        .where(DeploymentTarget.deployment_id == deployment.id)
    )
    if state is not None:
        query = query.where(DeploymentTarget.state == state)
    if cursor:
        batch, gid = _decode(cursor, 2)
        try:
            key = (int(batch), uuid.UUID(gid))
        except ValueError:
            raise DomainError("Invalid cursor") from None
        query = query.where(tuple_(DeploymentTarget.batch, DeploymentTarget.gateway_id) > key)
    rows = (
        await session.execute(
            query.order_by(DeploymentTarget.batch, DeploymentTarget.gateway_id).limit(limit + 1)
        )
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        DeploymentTargetOut(
            gateway_id=t.gateway_id,
            name=name,
            batch=t.batch + 1,
            state=t.state.value,
            error_message=t.error_message,
            updated_at=t.updated_at,
        )
        for t, name in rows
    ]
    last = rows[-1][0] if rows else None
    next_cursor = _encode([str(last.batch), str(last.gateway_id)]) if more and last else None
    return DeploymentTargetPage(items=items, next_cursor=next_cursor)


@router.post("/{deployment_id}/pause", operation_id="pause_deployment")
async def pause_deployment(
    deployment_id: uuid.UUID, access: OperatorAccess, uow: UowDep
) -> DeploymentOut:
    """Stop sending further batches; gateways already sent the version keep it."""
    deployment = await deployments.get(uow.session, access.org_id, deployment_id)
    await deployments.pause(uow, deployment)
    return (await render(uow.session, [deployment]))[0]


@router.post("/{deployment_id}/resume", operation_id="resume_deployment")
async def resume_deployment(
    deployment_id: uuid.UUID, access: OperatorAccess, uow: UowDep
) -> DeploymentOut:
    deployment = await deployments.get(uow.session, access.org_id, deployment_id)
    await deployments.resume(uow, deployment)
    return (await render(uow.session, [deployment]))[0]


@router.post("/{deployment_id}/cancel", operation_id="cancel_deployment")
async def cancel_deployment(
    deployment_id: uuid.UUID, access: OperatorAccess, uow: UowDep
) -> DeploymentOut:
    """End the rollout without sending more batches (roll back to undo what was sent)."""
    deployment = await deployments.get(uow.session, access.org_id, deployment_id)
    await deployments.cancel(uow, deployment)
    return (await render(uow.session, [deployment]))[0]


@router.post(
    "/{deployment_id}/rollback",
    operation_id="rollback_deployment",
    status_code=status.HTTP_201_CREATED,
)
async def rollback_deployment(
    deployment_id: uuid.UUID, access: OperatorAccess, uow: UowDep
) -> DeploymentOut:
    """Put every gateway the deployment reached (and still owns) back on what it ran before.
    Answers the rollback, itself a deployment (``rollback_of``)."""
    deployment = await deployments.get(uow.session, access.org_id, deployment_id)
    rollback = await deployments.rollback(
        uow, deployment, "rolled back by a user", access.principal.actor_id
    )
    return (await render(uow.session, [rollback]))[0]


gateway_router = api_router(prefix="/api/v1/gateways", tags=["gateways"])


@gateway_router.get("/{gateway_id}/deployments", operation_id="list_gateway_deployments")
async def list_gateway_deployments(
    gateway_id: uuid.UUID,
    access: ViewerAccess,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 20,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> GatewayDeploymentPage:
    """The deployments that touched this gateway, newest first, each with the gateway's own
    rollout state and the agent's error message."""
    gateway = await repository.get(session, access.org_id, gateway_id)
    query = (
        select(Deployment, DeploymentTarget)
        .join(DeploymentTarget, DeploymentTarget.deployment_id == Deployment.id)
        .where(DeploymentTarget.gateway_id == gateway.id, Deployment.org_id == access.org_id)
    )
    rows = (await session.execute(_newest_first(query, cursor, limit))).all()
    more = len(rows) > limit
    rows = rows[:limit]
    rendered = await render(session, [d for d, _ in rows])
    items = [
        GatewayDeploymentOut(
            deployment=out,
            batch=t.batch + 1,
            state=t.state.value,
            error_message=t.error_message,
            updated_at=t.updated_at,
        )
        for out, (_, t) in zip(rendered, rows, strict=True)
    ]
    last = rows[-1][0] if rows else None
    next_cursor = _encode([last.created_at.isoformat(), str(last.id)]) if more and last else None
    return GatewayDeploymentPage(items=items, next_cursor=next_cursor)


@gateway_router.put("/{gateway_id}/remote-config", operation_id="push_gateway_config")
async def push_gateway_config(
    gateway_id: uuid.UUID,
    body: RemoteConfigPush,
    access: OperatorAccess,
    uow: UowDep,
) -> RemoteConfigOut:
    """The one-gateway shortcut: store the body as the next version of the gateway's own
    template (``gateway:<instance_id>``) and deploy it to this gateway at once. It is delivered
    over the gateway's live OpAMP WebSocket (on whichever replica holds it) as soon as this call
    commits, to OpAMP HTTP agents on their next poll, and to REST gateways via
    ``GET /api/v1/opamp/config/{instance_id}``; the deployment is in the history like any other.
    """
    gateway = await repository.get(uow.session, access.org_id, gateway_id)
    pushed = await direct.push(
        uow, gateway, body.config_yaml, body.content_type, access.principal.actor_id
    )
    return RemoteConfigOut(
        gateway_id=gateway.id,
        config_version=pushed.version.version,
        config_hash=pushed.version.config_hash,
        created_at=pushed.version.created_at,
        config_id=pushed.version.template_id,
        deployment_id=pushed.deployment.id,
        delivery="pushed" if views.takes_pushes(gateway) else "queued",
    )
