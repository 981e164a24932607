"""The seed's REST agent endpoints, authenticated with the gateway's OpAMP token."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, Header

from flowgate import telemetry
from flowgate.core.deps import SessionDep, UowDep
from flowgate.core.errors import InstanceMismatch, NotAuthenticated
from flowgate.core.routing import api_router
from flowgate.core.security import bearer_token
from flowgate.gateways import repository, service, views
from flowgate.gateways.deps import IdentitiesDep, PresenceDep, ReportsDep
from flowgate.gateways.schemas import ConfigOut, HeartbeatRequest, HeartbeatResponse

# Agents reporting in (thousands a second) change no one's settings: not audited.
router = api_router(prefix="/api/v1/opamp", tags=["agent"], audit=False)

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
    telemetry.HEARTBEATS.inc()
    try:
        ident = await identities.authenticate(uow.session, bearer_token(authorization))
        service.check_instance(ident, instance_id)
    except InstanceMismatch:
        telemetry.HEARTBEATS_REFUSED.inc("instance_mismatch")
        raise
    except NotAuthenticated:  # unknown, expired or revoked (deactivated gateway) token
        telemetry.HEARTBEATS_REFUSED.inc("invalid_token")
        raise
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
