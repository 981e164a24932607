"""The seed's REST agent endpoints, authenticated with the gateway's OpAMP token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, Header

from flowgate.core.deps import SessionDep, UowDep
from flowgate.core.routing import api_router
from flowgate.core.security import bearer_token
from flowgate.gateways import repository, service, views
from flowgate.gateways.deps import IdentitiesDep, PresenceDep, ReportsDep
from flowgate.gateways.schemas import ConfigOut, HeartbeatRequest, HeartbeatResponse

router = api_router(prefix="/api/v1/opamp", tags=["agent"])

AuthHeader = Annotated[str | None, Header(include_in_schema=False)]


@router.post("/heartbeat/{instance_id}", operation_id="gateway_heartbeat")
async def gateway_heartbeat(
    instance_id: str,
    uow: UowDep,
    identities: IdentitiesDep,
    presence: PresenceDep,
    reports: ReportsDep,
    body: Annotated[HeartbeatRequest | None, Body()] = None,
    authorization: AuthHeader = None,
) -> HeartbeatResponse:
    ident = await identities.authenticate(uow.session, bearer_token(authorization))
    service.check_instance(ident, instance_id)
    if service.heartbeat(presence, reports, ident, body):
        uow.after_commit(lambda: service.write_transition(presence))
    return HeartbeatResponse(gateway_id=ident.gateway_id)


@router.get("/config/{instance_id}", operation_id="gateway_config")
async def gateway_config(
    instance_id: str,
    session: SessionDep,
    identities: IdentitiesDep,
    authorization: AuthHeader = None,
) -> ConfigOut:
    ident = await identities.authenticate(session, bearer_token(authorization))
    service.check_instance(ident, instance_id)
    gateway = await repository.get(session, ident.org_id, ident.gateway_id)
    return await views.config_out(session, gateway)
