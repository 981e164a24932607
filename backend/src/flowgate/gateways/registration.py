"""Enrolment: the one way a gateway comes to exist or gets a new credential.

Both the seed's REST registration (``POST /api/v1/gateways``) and native OpAMP enrolment (an
agent presenting a registration token) call :func:`enrol`, so they share the lookup, the
conflict handling, the rule for counting a token use and the reset of an offline gateway.

Rules:
- The gateway is found by ``instance_id`` in the token's organisation (an OpAMP caller may pass
  the gateway it already found by ``instance_uid``); otherwise it is created.
- Re-enrolling with the token that enrolled the gateway is idempotent and costs no use; any
  other token of the organisation counts one use. The use is counted last, just before the
  commit, because counting locks the token's row and a fleet enrolling with one token queues on
  that lock.
- An offline gateway (inactive, error) goes back to ``registered``.
- ``labels`` merged over ``metadata.labels`` (top-level wins) become the gateway's agent-reported
  labels; a registration with neither keeps the ones reported before. Labels people set with
  PATCH still win (:mod:`flowgate.gateways.labels`).
- A new OpAMP token is issued; only its digest is stored, so the previous token stops working
  when the unit of work commits, and every replica is told (:class:`GatewayTokenSuperseded`).
- Two enrolments racing to create one ``instance_id`` end with one gateway: the loser gets
  :class:`EnrolmentConflict` (409 on REST; a retry-later answer on OpAMP), and its retry finds
  the winner's gateway.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError, OperationalError

from flowgate.audit import log as audit
from flowgate.core import jsonsafe
from flowgate.core.db import utcnow
from flowgate.core.errors import Conflict, UnstorableValue
from flowgate.core.events import GatewayHealthChanged, GatewayRegistered, GatewayTokenSuperseded
from flowgate.core.security import digest, opamp_token
from flowgate.core.settings import Settings
from flowgate.core.uow import UnitOfWork
from flowgate.gateways import labels as label_rules
from flowgate.gateways import repository
from flowgate.gateways.health import OFFLINE_STATUSES
from flowgate.gateways.models import Gateway, GatewayStatus
from flowgate.tokens import service as tokens
from flowgate.tokens.models import RegistrationToken

log = logging.getLogger(__name__)


class EnrolmentConflict(Conflict):
    detail = "A registration for this instance_id is in progress; retry"


@dataclass(frozen=True)
class EnrolRequest:
    """What the gateway says about itself when it enrols."""

    instance_id: str
    name: str
    transport: str
    hostname: str | None = None
    ip_address: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    #: Stored in ``extra_metadata``, except ``labels`` (merged under ``labels`` above).
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Enrolment:
    gateway: Gateway
    opamp_token: str
    created: bool


def issue_opamp_token(gateway: Gateway, settings: Settings) -> str:
    """A new OpAMP JWT for the gateway; only its digest is kept."""
    token = opamp_token(
        gateway.id, gateway.org_id, settings.opamp_token_ttl_days, settings.signing_key
    )
    gateway.opamp_token = digest(token)
    return token


async def enrol(
    uow: UnitOfWork,
    settings: Settings,
    token: RegistrationToken,
    request: EnrolRequest,
    gateway: Gateway | None = None,
) -> Enrolment:
    session = uow.session
    if gateway is None:
        gateway = await repository.by_instance_id(session, token.org_id, request.instance_id)
    created = gateway is None
    consume = gateway is None or gateway.registration_token_id != token.id
    if gateway is None:
        gateway = Gateway(
            org_id=token.org_id,
            instance_id=request.instance_id,
            name=request.name,
            status=GatewayStatus.registered,
            transport=request.transport,
            extra_metadata={},
            labels={},
        )
        session.add(gateway)
    gateway.name = request.name
    gateway.hostname = request.hostname or gateway.hostname
    gateway.ip_address = request.ip_address or gateway.ip_address
    agent_labels = label_rules.registration_labels(request.labels, request.metadata)
    metadata = {k: v for k, v in request.metadata.items() if k != "labels"}
    if metadata:
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
        if agent_labels:  # a registration without labels keeps those reported before
            await repository.set_agent_labels(session, gateway, agent_labels)
        plain = issue_opamp_token(gateway, settings)
        await session.flush()
        if consume:
            await tokens.consume(session, token)
    except IntegrityError:
        raise EnrolmentConflict() from None
    except OperationalError as exc:
        # SQLite: another enrolment committed since this transaction's snapshot was taken.
        if "locked" not in str(exc.orig):
            raise
        raise EnrolmentConflict() from None
    audit.enrolment(
        uow,
        token_id=token.id,
        token_name=token.name,
        org_id=gateway.org_id,
        gateway_id=gateway.id,
        transport=request.transport,
        created=created,
    )
    if not created:
        # A re-registration may bring an offline gateway back (status registered).
        now = utcnow()
        rule = repository.HealthRule(
            now, settings.health_healthy_seconds, settings.health_warning_seconds
        )
        await repository.refresh_health(session, [gateway.id], rule, "registered")
        changes = await repository.health_changes_at(session, now, [gateway.id])
        if changes:
            uow.publish(GatewayHealthChanged(changes=tuple(changes)))
        uow.publish(GatewayTokenSuperseded(gateway_id=gateway.id, org_id=gateway.org_id))
    uow.publish(GatewayRegistered(gateway_id=gateway.id, org_id=gateway.org_id, created=created))
    log.info(
        "gateway registered" if created else "gateway re-registered",
        extra={
            "gateway_id": str(gateway.id),
            "org_id": str(gateway.org_id),
            "instance_id": gateway.instance_id,
            "token_id": str(token.id),
            "transport": request.transport,
        },
    )
    return Enrolment(gateway=gateway, opamp_token=plain, created=created)
