"""The seed's gateway API: registration (registration token) and management (people)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response, status

from flowgate.auth.principal import OperatorAccess, ViewerAccess
from flowgate.core.db import utcnow
from flowgate.core.deps import SessionDep
from flowgate.core.errors import InvalidRegistrationToken
from flowgate.core.runtime import RuntimeDep
from flowgate.core.security import bearer_token
from flowgate.gateways import service
from flowgate.gateways.health import HEALTH_STATES
from flowgate.gateways.models import GatewayStatus
from flowgate.gateways.schemas import (
    ConfigOut,
    GatewayOut,
    GatewayPage,
    GatewayRegister,
    GatewayRegistrationResponse,
    GatewayUpdate,
    HealthOut,
    MetricsOut,
    RemoteConfigOut,
    RemoteConfigPush,
    StatusOut,
    VersionOut,
)
from flowgate.tokens import service as tokens

router = APIRouter(prefix="/api/v1/gateways", tags=["gateways"])

HealthFilter = Annotated[
    str | None, Query(pattern="^(" + "|".join(HEALTH_STATES) + ")$", description="health state")
]


@router.post(
    "",
    operation_id="register_gateway",
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "Re-registration of a known instance_id"}},
)
async def register_gateway(
    body: GatewayRegister,
    response: Response,
    session: SessionDep,
    runtime: RuntimeDep,
    authorization: Annotated[str | None, Header()] = None,
) -> GatewayRegistrationResponse:
    """Register a gateway with ``Authorization: Bearer <registration token>``."""
    plain = bearer_token(authorization)
    if plain is None:
        raise InvalidRegistrationToken()
    token = await tokens.find_usable(session, plain)
    reg = await service.register(session, runtime, token, body)
    await service.commit_credentials(session, runtime, reg.gateway.id)
    service.invalidate_summary(runtime, reg.gateway.org_id)
    if not reg.created:
        response.status_code = status.HTTP_200_OK
    g = reg.gateway
    return GatewayRegistrationResponse(
        id=g.id,
        name=g.name,
        instance_id=g.instance_id,
        org_id=g.org_id,
        status=g.status,
        opamp_token=reg.opamp_token,
        opamp_endpoint=runtime.settings.opamp_endpoint,
        created_at=g.created_at,
    )


@router.get("", operation_id="list_gateways")
async def list_gateways(
    access: ViewerAccess,
    session: SessionDep,
    runtime: RuntimeDep,
    status_filter: Annotated[GatewayStatus | None, Query(alias="status")] = None,
    health: HealthFilter = None,
    name: Annotated[
        str | None,
        Query(max_length=255, pattern=r"^[^\x00]*$", description="substring of the name"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> GatewayPage:
    items, next_cursor = await service.list_gateways(
        session,
        runtime,
        access.org_id,
        status=status_filter,
        health=health,
        name=name,
        limit=limit,
        cursor=cursor,
    )
    summary = await service.fleet_summary(session, runtime, access.org_id)
    return GatewayPage(items=items, next_cursor=next_cursor, summary=summary)


@router.get("/{gateway_id}", operation_id="get_gateway")
async def get_gateway(
    gateway_id: uuid.UUID, access: ViewerAccess, session: SessionDep, runtime: RuntimeDep
) -> GatewayOut:
    gateway = await service.get_gateway(session, runtime, access.org_id, gateway_id)
    return service.gateway_out(runtime, gateway, utcnow())


@router.get("/{gateway_id}/health", operation_id="get_gateway_health")
async def get_gateway_health(
    gateway_id: uuid.UUID, access: ViewerAccess, session: SessionDep, runtime: RuntimeDep
) -> HealthOut:
    gateway = await service.get_gateway(session, runtime, access.org_id, gateway_id)
    return service.health_out(runtime, gateway, utcnow())


@router.get("/{gateway_id}/version", operation_id="get_gateway_version")
async def get_gateway_version(
    gateway_id: uuid.UUID, access: ViewerAccess, session: SessionDep, runtime: RuntimeDep
) -> VersionOut:
    gateway = await service.get_gateway(session, runtime, access.org_id, gateway_id)
    return service.version_out(gateway)


@router.get("/{gateway_id}/config", operation_id="get_gateway_config")
async def get_gateway_config(
    gateway_id: uuid.UUID, access: ViewerAccess, session: SessionDep, runtime: RuntimeDep
) -> ConfigOut:
    gateway = await service.get_gateway(session, runtime, access.org_id, gateway_id)
    return await service.config_out(session, gateway)


@router.get("/{gateway_id}/metrics", operation_id="get_gateway_metrics")
async def get_gateway_metrics(
    gateway_id: uuid.UUID, access: ViewerAccess, session: SessionDep, runtime: RuntimeDep
) -> MetricsOut:
    gateway = await service.get_gateway(session, runtime, access.org_id, gateway_id)
    return service.metrics_out(gateway)


@router.get("/{gateway_id}/status", operation_id="get_gateway_status")
async def get_gateway_status(
    gateway_id: uuid.UUID, access: ViewerAccess, session: SessionDep, runtime: RuntimeDep
) -> StatusOut:
    gateway = await service.get_gateway(session, runtime, access.org_id, gateway_id)
    return await service.status_out(session, runtime, gateway)


@router.patch("/{gateway_id}", operation_id="update_gateway")
async def update_gateway(
    gateway_id: uuid.UUID,
    body: GatewayUpdate,
    access: OperatorAccess,
    session: SessionDep,
    runtime: RuntimeDep,
) -> GatewayOut:
    gateway = await service.get_gateway(session, runtime, access.org_id, gateway_id)
    if body.name is not None:
        gateway.name = body.name
    if body.labels is not None:
        gateway.labels = body.labels
    await session.flush()
    return service.gateway_out(runtime, gateway, utcnow())


@router.post("/{gateway_id}/deactivate", operation_id="deactivate_gateway")
async def deactivate_gateway(
    gateway_id: uuid.UUID, access: OperatorAccess, session: SessionDep, runtime: RuntimeDep
) -> GatewayOut:
    gateway = await service.get_gateway(session, runtime, access.org_id, gateway_id)
    await service.deactivate(session, runtime, gateway)
    await service.commit_credentials(session, runtime, gateway.id)
    await runtime.hub.disconnect(gateway.id)
    return service.gateway_out(runtime, gateway, utcnow())


@router.delete(
    "/{gateway_id}", operation_id="delete_gateway", status_code=status.HTTP_204_NO_CONTENT
)
async def delete_gateway(
    gateway_id: uuid.UUID, access: OperatorAccess, session: SessionDep, runtime: RuntimeDep
) -> None:
    gateway = await service.get_gateway(session, runtime, access.org_id, gateway_id)
    await service.delete(session, runtime, gateway)
    await service.commit_credentials(session, runtime, gateway_id)
    await runtime.hub.disconnect(gateway_id)


@router.put("/{gateway_id}/remote-config", operation_id="push_gateway_config")
async def push_gateway_config(
    gateway_id: uuid.UUID,
    body: RemoteConfigPush,
    access: OperatorAccess,
    session: SessionDep,
    runtime: RuntimeDep,
) -> RemoteConfigOut:
    """Store a new config version for the gateway and deliver it now: over a live OpAMP
    WebSocket immediately, to OpAMP HTTP agents on their next poll, and to REST gateways via
    ``GET /api/v1/opamp/config/{instance_id}``."""
    gateway = await service.get_gateway(session, runtime, access.org_id, gateway_id)
    record = await service.push_config(
        session, runtime, gateway, body.config_yaml, access.principal.actor_id, body.content_type
    )
    await session.commit()  # the agent must find the new config when it asks for it
    pushed = await runtime.hub.config_changed(gateway.id)
    return RemoteConfigOut(
        gateway_id=gateway.id,
        config_version=record.version,
        config_hash=record.config_hash,
        created_at=record.created_at,
        delivery="pushed" if pushed else "queued",
    )
