"""Where an OpAMP agent's state comes from and goes to: the database, around the core.

:meth:`AgentStore.load` runs once per agent per process (first message after a connect or a
restart): it authenticates the gateway row, or enrols a new agent through the one enrolment
function (:func:`flowgate.gateways.registration.enrol`), links the OpAMP instance_uid, restores
the stored :class:`~flowgate.opamp.core.AgentState`, and loads the desired configuration, in one
unit of work. A known agent that comes back with the uid and transport its row already holds
(a reconnect storm after a restart) needs no write: those are read many to a query
(:mod:`flowgate.opamp.loader`), with their desired configurations. Afterwards every message is
memory only: :meth:`AgentStore.record` hands what changed to presence, which writes it in
batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.configs import assignments
from flowgate.configs.assignments import Desired
from flowgate.core import audit
from flowgate.core.db import utcnow
from flowgate.core.errors import Conflict, InvalidRegistrationToken, NotAuthenticated
from flowgate.core.settings import Settings
from flowgate.core.uow import UnitOfWork
from flowgate.gateways import registration, repository
from flowgate.gateways.models import Gateway, GatewayStatus
from flowgate.gateways.presence import Presence
from flowgate.gateways.schemas import INSTANCE_ID_PATTERN
from flowgate.opamp import core
from flowgate.opamp.auth import Admission, Credential
from flowgate.opamp.enroller import Enroller
from flowgate.opamp.loader import Coalescer
from flowgate.opamp.proto import opamp_pb2
from flowgate.tokens import service as tokens

log = logging.getLogger(__name__)


@dataclass
class Loaded:
    """What :meth:`AgentStore.load` found: enough to serve the agent from memory."""

    gateway_id: uuid.UUID
    org_id: uuid.UUID
    #: The OpAMP token digest the agent's writes are accepted under (presence guard).
    guard: str
    state: core.AgentState | None
    desired: core.RemoteConfig | None
    desired_version: int | None
    offer_token: str | None = None
    updated: dict[str, str] = field(default_factory=dict)
    #: The gateway's stored agent-reported labels (to write only a change).
    agent_labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Stored:
    """A gateway row as a batched read found it, with its desired config (plain values: they
    outlive the read's session)."""

    gateway_id: uuid.UUID
    org_id: uuid.UUID
    opamp_token: str | None
    instance_uid: str | None
    transport: str | None
    status: GatewayStatus
    opamp_state: dict[str, Any] | None
    agent_labels: dict[str, str] | None
    desired: Desired | None


def remote_config(desired: Desired | None) -> core.RemoteConfig | None:
    """What to offer the agent: its assignment (no assignment: nothing; FlowGate leaves the
    agent's own configuration alone until something is deployed to it)."""
    if desired is None:
        return None
    return _remote_config(desired.config_yaml, desired.content_type)


@functools.lru_cache(maxsize=256)
def _remote_config(config_yaml: str, content_type: str) -> core.RemoteConfig:
    # One immutable object per body: a deployment to 10k agents hashes and encodes it once.
    return core.RemoteConfig.build({"": (config_yaml.encode(), content_type)})


@dataclass(frozen=True)
class Enrolling:
    """An agent presenting a registration token whose gateway this process has not loaded."""

    uid: bytes
    msg: opamp_pb2.AgentToServer
    cred: Credential
    transport: str
    #: The agent's client address, for the audit row (a batch runs outside its context).
    address: str | None


class AgentStore:
    def __init__(
        self,
        settings: Settings,
        unit_of_work: Callable[[], UnitOfWork],
        presence: Presence,
        admission: Admission,
    ) -> None:
        self._settings = settings
        self._unit_of_work = unit_of_work
        self._presence = presence
        #: Every database load takes an admission slot (a batch of known agents takes one).
        self._admission = admission
        self._stored: Coalescer[uuid.UUID, _Stored] = Coalescer(
            "state", self._read_stored, admission.slot
        )
        #: uid re-links buffered in presence since the last flush (see load).
        self.unflushed_rekeys = 0
        self.enroller: Enroller[Enrolling, Loaded | None] = Enroller(
            self.enrol_batch,
            settings.opamp_enrol_batch_max,
            settings.opamp_enrol_batch_wait_seconds,
            settings.opamp_max_queued,
        )

    async def load(
        self, uid: bytes, msg: opamp_pb2.AgentToServer, cred: Credential, transport: str
    ) -> Loaded | None:
        """Load (or enrol) the agent; None while an enrolling agent has not described itself.

        Raises :class:`~flowgate.gateways.registration.EnrolmentConflict` when a concurrent
        enrolment of the same gateway won (retry), :class:`Conflict` for a uid held in another
        organisation, and a 401 domain error for a credential that no longer works. An agent
        presenting a registration token goes through :attr:`enroller` (batched), which raises
        :class:`~flowgate.opamp.auth.Busy` when too many wait.
        """
        if self.unflushed_rekeys:  # a buffered uid re-link must be visible to the queries below
            self.unflushed_rekeys = 0
            await self._presence.flush()
        if cred.kind != "opamp":
            return await self.enroller.submit(
                Enrolling(uid, msg, cred, transport, audit.client_address.get())
            )
        assert cred.ident is not None
        stored = await self._stored.get(cred.ident.gateway_id)
        if stored is None or stored.opamp_token is None:
            raise NotAuthenticated()
        if stored.instance_uid == uid.hex() and stored.transport == transport:
            return self._loaded(stored, uid)
        # A new uid to link or a new transport to write: this agent's own unit of work.
        async with self._admission.slot():
            return await self._load_one(uid, cred, transport)

    async def enrol_batch(self, batch: list[Enrolling]) -> list[Loaded | Exception | None]:
        """Enrol a batch of agents (the enroller's ``run``): the new ones in one unit of work
        (:func:`~flowgate.gateways.registration.enrol_new`), then each agent whose gateway
        exists (a re-registration) or that the batch could not take, the way one is enrolled
        alone (:meth:`enrol_one`), a few at a time."""
        results: list[Loaded | Exception | None] = [None] * len(batch)
        singles = await self._enrol_new(batch, results)
        gate = asyncio.Semaphore(self._settings.opamp_db_concurrency)

        async def single(index: int) -> None:
            async with gate:
                try:
                    results[index] = await self.enrol_one(batch[index])
                except Exception as exc:
                    results[index] = exc

        await asyncio.gather(*(single(index) for index in singles))
        return results

    async def _enrol_new(
        self, batch: list[Enrolling], results: list[Loaded | Exception | None]
    ) -> list[int]:
        """Enrol the batch's agents that no gateway knows by instance_uid, in one unit of
        work; fill their ``results``. The indexes of the others (enrol them one by one)."""
        singles: list[int] = []
        returning: list[tuple[int, uuid.UUID]] = []
        groups: dict[uuid.UUID, list[tuple[int, registration.EnrolRequest]]] = {}
        async with self._unit_of_work() as uow:
            session = uow.session
            uids = [item.uid.hex() for item in batch]
            held = {
                row.opamp_instance_uid: row
                for row in await session.execute(
                    select(
                        Gateway.opamp_instance_uid,
                        Gateway.id,
                        Gateway.org_id,
                        Gateway.registration_token_id,
                        Gateway.opamp_token.is_not(None).label("active"),
                    ).where(Gateway.opamp_instance_uid.in_(uids))
                )
            }
            for index, item in enumerate(batch):
                row = held.get(uids[index])
                if row is not None:
                    if _returning(item, row):
                        returning.append((index, row.id))
                    else:
                        singles.append(index)
                    continue
                request = _enrol_request(item.uid, item.msg, item.transport)
                if request is None:  # not described yet (or undescribable): enrol nothing
                    continue
                assert item.cred.token_id is not None
                groups.setdefault(item.cred.token_id, []).append((index, request))
            enrolled: list[tuple[int, registration.Enrolment]] = []
            for token_id, members in groups.items():
                try:
                    token = await tokens.get_usable(session, token_id)
                except InvalidRegistrationToken:
                    for index, _ in members:
                        results[index] = NotAuthenticated()
                    continue
                answers = await registration.enrol_new(
                    uow,
                    self._settings,
                    token,
                    [request for _, request in members],
                    [batch[index].address for index, _ in members],
                )
                for (index, _), answer in zip(members, answers, strict=True):
                    if answer is None:
                        singles.append(index)
                    elif isinstance(answer, registration.Enrolment):
                        enrolled.append((index, answer))
                    else:
                        results[index] = answer
        for index, enrolment in enrolled:
            results[index] = self._new_agent(enrolment)
        singles += await self._reload(batch, returning, results)
        return sorted(singles)

    async def _reload(
        self,
        batch: list[Enrolling],
        returning: list[tuple[int, uuid.UUID]],
        results: list[Loaded | Exception | None],
    ) -> list[int]:
        """Load the returning agents (see :func:`_returning`) the way a known agent with its
        own OpAMP token is loaded: one shared read, no new token, no enrolment recorded. The
        indexes of those whose row changed meanwhile (enrol them one by one)."""
        found = await asyncio.gather(*(self._stored.get(gid) for _, gid in returning))
        again: list[int] = []
        for (index, _), stored in zip(returning, found, strict=True):
            item = batch[index]
            if (
                stored is None
                or stored.opamp_token is None
                or stored.instance_uid != item.uid.hex()
                or stored.transport != item.transport
            ):
                again.append(index)
            else:
                results[index] = self._loaded(stored, item.uid)
        return again

    def _new_agent(self, enrolment: registration.Enrolment) -> Loaded:
        """What :func:`_loaded` would read back for a gateway just inserted: no stored state,
        and no assignment (nothing can have been assigned to an id that did not exist)."""
        gateway = enrolment.gateway
        self._presence.observe_status(gateway.id, gateway.status)
        return Loaded(
            gateway_id=gateway.id,
            org_id=gateway.org_id,
            guard=gateway.opamp_token or "",
            state=None,
            desired=None,
            desired_version=None,
            offer_token=enrolment.opamp_token,
        )

    async def enrol_one(self, item: Enrolling) -> Loaded | None:
        """Enrol one agent in its own unit of work: find or create its gateway (what a
        re-registration takes; every enrolment did before batching)."""
        async with self._unit_of_work() as uow:
            enrolled = await self._enrol(uow, item.uid, item.msg, item.cred, item.transport)
            if enrolled is None:
                return None
            gateway, offer_token = enrolled
            stored = await _stored(uow.session, gateway, item.transport)
        return self._loaded(stored, item.uid, offer_token)

    def _loaded(self, stored: _Stored, uid: bytes, offer_token: str | None = None) -> Loaded:
        """The agent as its row was read (by a batch, or by its own unit of work)."""
        opamp_state = stored.opamp_state or {}
        state = _restore(opamp_state, uid)
        loaded = Loaded(
            gateway_id=stored.gateway_id,
            org_id=stored.org_id,
            guard=stored.opamp_token or "",
            state=state,
            desired=remote_config(stored.desired),
            desired_version=stored.desired.version if stored.desired else None,
            offer_token=offer_token,
            updated=dict(opamp_state.get("updated_at") or {}) if state else {},
            agent_labels=dict(stored.agent_labels or {}),
        )
        self._presence.observe_status(loaded.gateway_id, stored.status)
        return loaded

    async def _read_stored(self, gateway_ids: list[uuid.UUID]) -> dict[uuid.UUID, _Stored]:
        """The rows and desired configs of many reconnecting gateways: two queries, one
        transaction (the coalesced read behind :meth:`load`)."""
        async with self._unit_of_work() as uow:
            session = uow.session
            rows = (
                await session.execute(
                    select(
                        Gateway.id,
                        Gateway.org_id,
                        Gateway.opamp_token,
                        Gateway.opamp_instance_uid,
                        Gateway.transport,
                        Gateway.status,
                        Gateway.opamp_state,
                        Gateway.agent_labels,
                    ).where(Gateway.id.in_(gateway_ids))
                )
            ).all()
            desired = await assignments.desired_for(session, [row.id for row in rows])
        return {
            row.id: _Stored(
                row.id,
                row.org_id,
                row.opamp_token,
                row.opamp_instance_uid,
                row.transport,
                row.status,
                row.opamp_state,
                row.agent_labels,
                desired.get(row.id),
            )
            for row in rows
        }

    async def _load_one(self, uid: bytes, cred: Credential, transport: str) -> Loaded:
        """Load a known agent in its own unit of work, linking its new uid (see :meth:`load`)."""
        assert cred.ident is not None
        async with self._unit_of_work() as uow:
            session = uow.session
            gateway = await repository.by_id(session, cred.ident.gateway_id)
            if gateway is None or gateway.opamp_token is None:
                raise NotAuthenticated()
            await _link_uid(session, gateway, uid)
            stored = await _stored(session, gateway, transport)
        return self._loaded(stored, uid)

    async def _enrol(
        self,
        uow: UnitOfWork,
        uid: bytes,
        msg: opamp_pb2.AgentToServer,
        cred: Credential,
        transport: str,
    ) -> tuple[Gateway, str] | None:
        """Find or create the gateway of an agent presenting a registration token."""
        assert cred.token_id is not None
        session = uow.session
        try:
            token = await tokens.get_usable(session, cred.token_id)
        except InvalidRegistrationToken:
            raise NotAuthenticated() from None
        gateway = await repository.by_instance_uid(session, uid.hex())
        if gateway is not None and gateway.org_id != cred.org_id:
            gateway = None  # refused below by _link_uid, with the reason
        if gateway is None:
            request = _enrol_request(uid, msg, transport)
            if request is None:
                return None
        else:
            request = registration.EnrolRequest(
                instance_id=gateway.instance_id, name=gateway.name, transport=transport
            )
        enrolment = await registration.enrol(uow, self._settings, token, request, gateway)
        await _link_uid(session, enrolment.gateway, uid)
        return enrolment.gateway, enrolment.opamp_token

    async def desired(self, gateway_ids: list[uuid.UUID]) -> dict[uuid.UUID, Desired]:
        async with self._unit_of_work() as uow:
            return await assignments.desired_for(uow.session, gateway_ids)

    async def current_guard(self, gateway_id: uuid.UUID) -> str | None:
        """The gateway's current OpAMP token digest (None: revoked or gone)."""
        async with self._unit_of_work() as uow:
            gateway = await repository.by_id(uow.session, gateway_id)
            return gateway.opamp_token if gateway is not None else None

    def record(
        self,
        gateway_id: uuid.UUID,
        guard: str,
        *,
        metadata: dict[str, Any] | None = None,
        urgent: bool = False,
        **values: Any,
    ) -> None:
        self._presence.record(gateway_id, guard, metadata=metadata, urgent=urgent, **values)

    def record_disconnect(self, gateway_id: uuid.UUID, guard: str) -> None:
        self._presence.record(gateway_id, guard, last_seen=utcnow(), status=GatewayStatus.inactive)


async def _stored(session: AsyncSession, gateway: Gateway, transport: str) -> _Stored:
    """A gateway loaded in its own unit of work, as a batch read would have found it (with
    the transport the agent uses now written)."""
    gateway.transport = transport
    return _Stored(
        gateway.id,
        gateway.org_id,
        gateway.opamp_token,
        gateway.opamp_instance_uid,
        transport,
        gateway.status,
        gateway.opamp_state,
        gateway.agent_labels,
        await assignments.desired(session, gateway.id),
    )


#: An agent with either capability needs the OpAMP token a re-registration issues: it is
#: offered as connection settings, or authorises the own-metrics offer.
_NEEDS_TOKEN = core.ACCEPTS_OPAMP_CONNECTION_SETTINGS | core.REPORTS_OWN_METRICS


def _returning(item: Enrolling, row: Any) -> bool:
    """An agent coming back with the registration token it enrolled with, to its own active
    gateway, that can use no OpAMP token (it keeps polling with the registration token, as
    the PyPI client does): after a restart, a sweep or a poll on another worker, it is loaded
    like a known agent instead of re-registered (a new token, an audit row and a health
    refresh on every return, which at a fleet's poll rate is most of the server's work)."""
    return bool(
        row.active
        and row.org_id == item.cred.org_id
        and row.registration_token_id == item.cred.token_id
        and not item.msg.capabilities & _NEEDS_TOKEN
    )


def _enrol_request(
    uid: bytes, msg: opamp_pb2.AgentToServer, transport: str
) -> registration.EnrolRequest | None:
    """What a new agent's description says about its gateway; None while it has sent no
    description, or one that cannot be stored (enrol nothing)."""
    if not msg.HasField("agent_description"):
        return None
    probe = core.process(msg, None)
    if probe.rejected:
        return None
    attrs = core.describe(probe.state)
    instance_id = _instance_id(attrs.get("service.instance.id"), uid)
    host = str(attrs["host.name"])[:255] if attrs.get("host.name") else None
    return registration.EnrolRequest(
        instance_id=instance_id,
        name=str(attrs.get("host.name") or attrs.get("service.name") or instance_id)[:255],
        transport=transport,
        hostname=host,
        opamp_instance_uid=uid.hex(),
    )


def _restore(stored: dict[str, Any], uid: bytes) -> core.AgentState | None:
    if stored.get("instance_uid") != uid.hex():
        return None
    with contextlib.suppress(ValueError, TypeError):
        state = core.AgentState.from_json(stored)
        # A new process cannot know what the agent sent since the last flush, so treat the
        # stream as broken: the core then asks for full state.
        state.sequence_num = None
        return state
    return None


async def _link_uid(session: AsyncSession, gateway: Gateway, uid: bytes) -> None:
    if gateway.opamp_instance_uid == uid.hex():
        return
    holder = await repository.by_instance_uid(session, uid.hex())
    if holder is not None and holder.id != gateway.id:
        if holder.org_id != gateway.org_id:
            log.warning(
                "opamp instance_uid claimed across organisations",
                extra={"gateway_id": str(gateway.id)},
            )
            raise Conflict("instance_uid belongs to another gateway")
        holder.opamp_instance_uid = None
        await session.flush()
    gateway.opamp_instance_uid = uid.hex()
    try:
        await session.flush()
    except IntegrityError:  # another enrolment linked this uid at the same moment
        raise registration.EnrolmentConflict() from None


def _instance_id(value: Any, uid: bytes) -> str:
    text = str(value) if value is not None else ""
    if text and re.fullmatch(INSTANCE_ID_PATTERN, text):
        return text
    return str(uuid.UUID(bytes=uid))
