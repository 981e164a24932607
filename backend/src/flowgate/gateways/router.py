"""The seed's gateway API: registration (registration token) and management (people)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import Header, Query, Response, status

from flowgate.auth.principal import OperatorAccess, ViewerAccess
from flowgate.core.db import utcnow
from flowgate.core.deps import SessionDep, SettingsDep, UowDep
from flowgate.core.errors import InvalidRegistrationToken
from flowgate.core.routing import api_router
from flowgate.core.security import bearer_token
from flowgate.gateways import (
    history,
    queries,
    registration,
    repository,
    selectors,
    service,
    views,
)
from flowgate.gateways.deps import SummaryCacheDep
from flowgate.gateways.health import HEALTH_STATES
from flowgate.gateways.models import GatewayStatus
from flowgate.gateways.schemas import (
    ConfigOut,
    FleetHealthHistory,
    GatewayCount,
    GatewayOut,
    GatewayPage,
    GatewayRegister,
    GatewayRegistrationResponse,
    GatewayUpdate,
    HealthHistoryPage,
    HealthOut,
    MetricsOut,
    StatusOut,
    VersionOut,
)
from flowgate.tokens import service as tokens

router = api_router(prefix="/api/v1/gateways", tags=["gateways"])
fleet_router = api_router(prefix="/api/v1/fleet", tags=["fleet"])

HealthFilter = Annotated[
    str | None, Query(pattern="^(" + "|".join(HEALTH_STATES) + ")$", description="health state")
]
SelectorParam = Annotated[
    str | None,
    Query(
        max_length=selectors.MAX_LENGTH,
        description="Kubernetes-style label selector, e.g. `env=prod,region!=eu,tier`: "
        "`k=v` (`k==v`), `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`; comma = AND. "
        "A syntax error is a 422 naming the position.",
        examples=["env=prod,region notin (eu-west),!canary"],
    ),
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
    uow: UowDep,
    settings: SettingsDep,
    authorization: Annotated[str | None, Header()] = None,
) -> GatewayRegistrationResponse:
    """Register a gateway with ``Authorization: Bearer <registration token>``."""
    plain = bearer_token(authorization)
    if plain is None:
        raise InvalidRegistrationToken()
    token = await tokens.find_usable(uow.session, plain)
    request = registration.EnrolRequest(
        instance_id=body.instance_id,
        name=body.name,
        transport="rest",
        hostname=body.hostname,
        ip_address=body.ip_address,
        labels=body.labels,
        metadata=body.metadata.model_dump(exclude_none=True),
    )
    enrolment = await registration.enrol(uow, settings, token, request)
    if not enrolment.created:
        response.status_code = status.HTTP_200_OK
    g = enrolment.gateway
    return GatewayRegistrationResponse(
        id=g.id,
        name=g.name,
        instance_id=g.instance_id,
        org_id=g.org_id,
        status=g.status,
        opamp_token=enrolment.opamp_token,
        opamp_endpoint=settings.opamp_endpoint,
        created_at=g.created_at,
    )


@router.get("", operation_id="list_gateways")
async def list_gateways(
    access: ViewerAccess,
    session: SessionDep,
    settings: SettingsDep,
    summaries: SummaryCacheDep,
    status_filter: Annotated[GatewayStatus | None, Query(alias="status")] = None,
    health: HealthFilter = None,
    name: Annotated[
        str | None,
        Query(max_length=255, pattern=r"^[^\x00]*$", description="substring of the name"),
    ] = None,
    selector: SelectorParam = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> GatewayPage:
    """One page of the organisation's gateways matching every filter given; ``summary``
    counts the whole fleet (filters do not apply to it)."""
    filters = repository.ListFilter(
        status=status_filter,
        health=health,
        name=name,
        selector=selectors.parse(selector) if selector else None,
    )
    items, next_cursor = await queries.list_gateways(
        session, settings, access.org_id, filters, limit=limit, cursor=cursor
    )
    summary = await queries.fleet_summary(session, settings, summaries, access.org_id)
    return GatewayPage(items=items, next_cursor=next_cursor, summary=summary)


@router.get("/count", operation_id="count_gateways")
async def count_gateways(
    access: ViewerAccess, session: SessionDep, selector: SelectorParam = None
) -> GatewayCount:
    """How many of the organisation's gateways the selector matches (all of them without
    one), from the same index the list uses."""
    parsed = selectors.parse(selector or "")
    return GatewayCount(count=await repository.count_matching(session, access.org_id, parsed))


@router.get("/{gateway_id}", operation_id="get_gateway")
async def get_gateway(
    gateway_id: uuid.UUID, access: ViewerAccess, session: SessionDep, settings: SettingsDep
) -> GatewayOut:
    gateway = await repository.get(session, access.org_id, gateway_id)
    return views.gateway_out(settings, gateway, utcnow())


@router.get("/{gateway_id}/health", operation_id="get_gateway_health")
async def get_gateway_health(
    gateway_id: uuid.UUID, access: ViewerAccess, session: SessionDep, settings: SettingsDep
) -> HealthOut:
    gateway = await repository.get(session, access.org_id, gateway_id)
    return views.health_out(settings, gateway, utcnow())


@router.get("/{gateway_id}/health/history", operation_id="get_gateway_health_history")
async def get_gateway_health_history(
    gateway_id: uuid.UUID,
    access: ViewerAccess,
    session: SessionDep,
    since: Annotated[
        datetime | None,
        Query(description="ISO 8601 date-time; transitions at or after it (UTC if no offset)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> HealthHistoryPage:
    """The gateway's health transitions, oldest first, keyset-paged (``next_cursor``); kept
    for ``FLOWGATE_HEALTH_HISTORY_DAYS``."""
    return await history.gateway_history(
        session, access.org_id, gateway_id, since=since, limit=limit, cursor=cursor
    )


@router.get("/{gateway_id}/version", operation_id="get_gateway_version")
async def get_gateway_version(
    gateway_id: uuid.UUID, access: ViewerAccess, session: SessionDep
) -> VersionOut:
    gateway = await repository.get(session, access.org_id, gateway_id)
    return views.version_out(gateway)


@router.get("/{gateway_id}/config", operation_id="get_gateway_config")
async def get_gateway_config(
    gateway_id: uuid.UUID, access: ViewerAccess, session: SessionDep
) -> ConfigOut:
    gateway = await repository.get(session, access.org_id, gateway_id)
    return await views.config_out(session, gateway)


@router.get("/{gateway_id}/metrics", operation_id="get_gateway_metrics")
async def get_gateway_metrics(
    gateway_id: uuid.UUID, access: ViewerAccess, session: SessionDep
) -> MetricsOut:
    gateway = await repository.get(session, access.org_id, gateway_id)
    return views.metrics_out(gateway)


@router.get("/{gateway_id}/status", operation_id="get_gateway_status")
async def get_gateway_status(
    gateway_id: uuid.UUID, access: ViewerAccess, session: SessionDep, settings: SettingsDep
) -> StatusOut:
    gateway = await repository.get(session, access.org_id, gateway_id)
    return await views.status_out(session, settings, gateway)


@router.patch("/{gateway_id}", operation_id="update_gateway")
async def update_gateway(
    gateway_id: uuid.UUID,
    body: GatewayUpdate,
    access: OperatorAccess,
    uow: UowDep,
    settings: SettingsDep,
) -> GatewayOut:
    gateway = await repository.get(uow.session, access.org_id, gateway_id)
    await service.update(uow, gateway, body)
    return views.gateway_out(settings, gateway, utcnow())


@router.post("/{gateway_id}/deactivate", operation_id="deactivate_gateway")
async def deactivate_gateway(
    gateway_id: uuid.UUID, access: OperatorAccess, uow: UowDep, settings: SettingsDep
) -> GatewayOut:
    """Mark the gateway inactive and revoke its OpAMP token. Every replica closes its live
    connection and drops its cached credential as soon as this commits."""
    gateway = await repository.get(uow.session, access.org_id, gateway_id)
    await service.deactivate(uow, gateway)
    return views.gateway_out(settings, gateway, utcnow())


@router.delete(
    "/{gateway_id}", operation_id="delete_gateway", status_code=status.HTTP_204_NO_CONTENT
)
async def delete_gateway(gateway_id: uuid.UUID, access: OperatorAccess, uow: UowDep) -> None:
    gateway = await repository.get(uow.session, access.org_id, gateway_id)
    await service.delete(uow, gateway)


@fleet_router.get("/health-history", operation_id="get_fleet_health_history")
async def get_fleet_health_history(
    access: ViewerAccess,
    session: SessionDep,
    settings: SettingsDep,
    since: Annotated[
        datetime | None,
        Query(description="ISO 8601 date-time (UTC if no offset); default 24 hours ago"),
    ] = None,
    step: Annotated[
        str | None,
        Query(max_length=16, description="bucket width: seconds, or 30s, 5m, 1h, 1d; default 1h"),
    ] = None,
) -> FleetHealthHistory:
    """How many of the organisation's gateways were healthy, warning, unhealthy and offline
    at the end of each bucket from ``since`` to now (at most 1000 buckets), reconstructed
    from the health transitions."""
    return await history.fleet_history(session, settings, access.org_id, since=since, step=step)
