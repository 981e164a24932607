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
  that lock. A fleet of new agents enrolling at once is enrolled in batches
  (:func:`enrol_new`, driven by :mod:`flowgate.opamp.enroller`): one lock of the token's row
  and one count of k uses per batch, exact under concurrency.
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
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.audit import log as audit
from flowgate.core import jsonsafe
from flowgate.core.db import utcnow
from flowgate.core.errors import (
    Conflict,
    DomainError,
    InvalidRegistrationToken,
    UnstorableValue,
)
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
    #: Hex OpAMP instance_uid a batch enrolment links in the gateway's INSERT (:func:`enrol_new`;
    #: :func:`enrol`'s OpAMP caller links it afterwards).
    opamp_instance_uid: str | None = None


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
    if _reported_metadata(request):
        gateway.extra_metadata = _stored_metadata(request, gateway.extra_metadata or {})
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
        if not _lost_race(exc):
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
    _announce(uow, token, gateway, request.transport, created)
    return Enrolment(gateway=gateway, opamp_token=plain, created=created)


#: What :func:`enrol_new` answers for one request of the batch: its enrolment; None when the
#: gateway exists (or the request carries labels): the caller enrols it with :func:`enrol`;
#: or the domain error that request gets.
BatchResult = Enrolment | DomainError | None


async def enrol_new(
    uow: UnitOfWork,
    settings: Settings,
    token: RegistrationToken,
    requests: Sequence[EnrolRequest],
    addresses: Sequence[str | None],
) -> list[BatchResult]:
    """Enrol many new gateways with one token at once: the rules of :func:`enrol` for a gateway
    that does not exist yet, in a fixed number of statements for the whole batch (lookup,
    lock the token's uses, one INSERT, one use count, the audit rows), so an enrolment storm
    takes the token's row lock once per batch instead of once per agent.

    Uses are counted set-wise and exactly: with j of the k uses wanted left, the first j
    requests are enrolled and the rest get the token-used-up error :func:`enrol` gives. A
    request whose ``instance_id`` or ``opamp_instance_uid`` another request of the batch (or a
    concurrent enrolment, e.g. on another replica) takes gets :class:`EnrolmentConflict` and
    costs no use; its retry re-registers the winner's gateway. ``addresses`` are the agents'
    client addresses, for their audit rows. Raises :class:`EnrolmentConflict` for the whole
    batch when SQLite reports that another writer committed first.
    """
    results: list[BatchResult] = [None] * len(requests)
    candidates = await _candidates(uow.session, token, requests, results)
    if not candidates:
        return results
    session = uow.session
    try:
        granted = await tokens.reserve(session, token, len(candidates))
        for index in candidates[granted:]:
            results[index] = InvalidRegistrationToken()
        if granted < len(candidates):
            log.warning(
                "registration rejected: token used up",
                extra={"token_id": str(token.id), "refused": len(candidates) - granted},
            )
        made = [_new_gateway(token, requests[i], settings) for i in candidates[:granted]]
        inserted = await _insert_ignoring_conflicts(session, [gateway for gateway, _ in made])
        if inserted:
            await tokens.consume(session, token, len(inserted))
    except IntegrityError:  # not a unique key (those are skipped): e.g. the org went away
        raise EnrolmentConflict() from None
    except OperationalError as exc:
        if not _lost_race(exc):
            raise
        raise EnrolmentConflict() from None
    enrolled: list[audit.Enrolled] = []
    for index, (gateway, plain) in zip(candidates[:granted], made, strict=True):
        if gateway.id not in inserted:
            results[index] = EnrolmentConflict()
            continue
        request = requests[index]
        results[index] = Enrolment(gateway=gateway, opamp_token=plain, created=True)
        enrolled.append(
            audit.Enrolled(
                token.id, token.name, token.org_id, gateway.id, request.transport, addresses[index]
            )
        )
        _announce(uow, token, gateway, request.transport, True)
    await audit.enrolments(uow, enrolled)
    return results


async def _candidates(
    session: AsyncSession,
    token: RegistrationToken,
    requests: Sequence[EnrolRequest],
    results: list[BatchResult],
) -> list[int]:
    """Indexes of the requests :func:`enrol_new` creates a gateway for, in order; fills
    ``results`` for the others (None: exists, enrol singly; or an error)."""
    instance_ids = list({request.instance_id for request in requests})
    existing = set(
        await session.scalars(
            select(Gateway.instance_id).where(
                Gateway.org_id == token.org_id, Gateway.instance_id.in_(instance_ids)
            )
        )
    )
    taken: set[str] = set()
    out: list[int] = []
    for index, request in enumerate(requests):
        if request.instance_id in existing or request.labels or "labels" in request.metadata:
            continue  # a re-registration, or labels to mirror: the single path's rules
        keys = {request.instance_id, f"uid:{request.opamp_instance_uid or index}"}
        if keys & taken:
            results[index] = EnrolmentConflict()
            continue
        try:
            _stored_metadata(request, {})
        except UnstorableValue as exc:
            results[index] = exc
            continue
        taken |= keys
        out.append(index)
    return out


def _new_gateway(
    token: RegistrationToken, request: EnrolRequest, settings: Settings
) -> tuple[Gateway, str]:
    """The row a batch enrolment inserts (what :func:`enrol` ends with for a new gateway,
    with its OpAMP token digest and instance_uid already set), and the plain OpAMP token."""
    now = utcnow()
    gateway = Gateway(
        id=uuid.uuid4(),
        org_id=token.org_id,
        instance_id=request.instance_id,
        name=request.name,
        status=GatewayStatus.registered,
        transport=request.transport,
        hostname=request.hostname,
        ip_address=request.ip_address,
        extra_metadata=_stored_metadata(request, {}) if _reported_metadata(request) else {},
        labels={},
        agent_labels={},
        manual_labels={},
        registration_token_id=token.id,
        opamp_instance_uid=request.opamp_instance_uid,
        health="unhealthy",
        health_changed_at=now,
        health_reason="registered",
        created_at=now,
        updated_at=now,
    )
    return gateway, issue_opamp_token(gateway, settings)


_INSERTED_COLUMNS = (
    "id",
    "org_id",
    "instance_id",
    "name",
    "status",
    "transport",
    "hostname",
    "ip_address",
    "extra_metadata",
    "labels",
    "agent_labels",
    "manual_labels",
    "registration_token_id",
    "opamp_instance_uid",
    "opamp_token",
    "health",
    "health_changed_at",
    "health_reason",
    "created_at",
    "updated_at",
)


async def _insert_ignoring_conflicts(
    session: AsyncSession, gateways: Sequence[Gateway]
) -> set[uuid.UUID]:
    """One INSERT of the batch's gateways (Core, not the ORM's per-object flush); a row whose
    ``(org_id, instance_id)`` or instance_uid someone else just took is skipped, not fatal.
    The ids of the rows inserted."""
    if not gateways:
        return set()
    table = Gateway.__table__
    assert isinstance(table, Table)
    dialect = session.get_bind().dialect.name
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = make(table).on_conflict_do_nothing().returning(table.c.id)
    rows = [{name: getattr(gateway, name) for name in _INSERTED_COLUMNS} for gateway in gateways]
    return set(await session.scalars(statement, rows))


def _reported_metadata(request: EnrolRequest) -> dict[str, Any]:
    return {k: v for k, v in request.metadata.items() if k != "labels"}


def _stored_metadata(request: EnrolRequest, before: dict[str, Any]) -> dict[str, Any]:
    """``extra_metadata`` after this registration; raises when it cannot be stored."""
    merged = {**before, **_reported_metadata(request)}
    # Each registration adds its keys to what earlier ones stored: bound the sum, not only
    # this request's part.
    problem = jsonsafe.problem(merged, "metadata", jsonsafe.GATEWAY_METADATA)
    if problem:
        raise UnstorableValue(f"{problem} (with what earlier registrations stored)")
    return merged


def _lost_race(exc: OperationalError) -> bool:
    """SQLite: another enrolment committed since this transaction's snapshot was taken."""
    return "locked" in str(exc.orig)


def _announce(
    uow: UnitOfWork, token: RegistrationToken, gateway: Gateway, transport: str, created: bool
) -> None:
    """Tell every replica once the enrolment commits, and log it."""
    uow.publish(GatewayRegistered(gateway_id=gateway.id, org_id=gateway.org_id, created=created))
    log.info(
        "gateway registered" if created else "gateway re-registered",
        extra={
            "gateway_id": str(gateway.id),
            "org_id": str(gateway.org_id),
            "instance_id": gateway.instance_id,
            "token_id": str(token.id),
            "transport": transport,
        },
    )
