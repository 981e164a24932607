"""Native OpAMP agents on this replica: who they are, their hot state, and what to tell them.

The sans-I/O :mod:`flowgate.opamp.core` decides every reply; this module supplies it with the
stored state and the desired configuration, and persists what changed. A known agent's
message costs no database round trip: its state lives in memory and reaches the database
through :class:`~flowgate.fleet.presence.Presence` batches (state snapshots only when
something other than the sequence number changed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.core.db import utcnow
from flowgate.core.errors import Conflict, InvalidRegistrationToken, NotAuthenticated
from flowgate.core.runtime import Runtime
from flowgate.core.security import digest
from flowgate.gateways import service as gateways
from flowgate.gateways.identity import GatewayIdentity
from flowgate.gateways.models import Gateway, GatewayRemoteConfig, GatewayStatus
from flowgate.gateways.schemas import INSTANCE_ID_PATTERN
from flowgate.opamp import core
from flowgate.opamp.proto import opamp_pb2
from flowgate.tokens import service as tokens
from flowgate.tokens.models import RegistrationToken

log = logging.getLogger(__name__)

Transport = Literal["opamp-ws", "opamp-http"]
SendFn = Callable[[opamp_pb2.ServerToAgent], Awaitable[None]]
CloseFn = Callable[[int], Awaitable[None]]


@dataclass(frozen=True)
class Credential:
    """What the agent authenticated with: its OpAMP token, or a registration token (enrol)."""

    kind: Literal["opamp", "registration"]
    org_id: uuid.UUID
    ident: GatewayIdentity | None = None
    token_id: uuid.UUID | None = None


@dataclass(eq=False)
class Connection:
    """One live WebSocket; sends are serialised because pushes race with replies."""

    send: SendFn
    close: CloseFn
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    uids: set[bytes] = field(default_factory=set)

    async def deliver(self, msg: opamp_pb2.ServerToAgent) -> None:
        async with self.lock:
            await self.send(msg)


@dataclass(eq=False)
class Agent:
    uid: bytes
    gateway_id: uuid.UUID
    org_id: uuid.UUID
    state: core.AgentState | None
    transport: Transport
    desired: core.RemoteConfig | None = None
    desired_version: int | None = None
    offer: core.ConnectionSettingsOffer | None = None
    connection: Connection | None = None
    last_seen: float = field(default_factory=time.monotonic)
    updated: dict[str, str] = field(default_factory=dict)
    #: sequence_num of the agent_disconnect message, while the agent is disconnected.
    disconnect_seq: int | None = None
    listener: Callable[[], Awaitable[bool]] | None = None


REGISTRATION_CACHE_SECONDS = 10.0


class Busy(Exception):
    """Too much database work is queued; the agent should retry after Retry-After."""


@dataclass(frozen=True)
class Enrolment:
    gateway: Gateway
    opamp_token: str
    #: The registration token to count a use of (None: a re-enrolment with the same token).
    consume: RegistrationToken | None


class Throttle:
    """One-second window counter: above ``limit`` messages/s agents are asked to back off."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._window = 0
        self._count = 0

    def allow(self) -> bool:
        now = int(time.monotonic())
        if now != self._window:
            self._window, self._count = now, 0
        self._count += 1
        return self._count <= self.limit


def _remote_config(record: GatewayRemoteConfig | None) -> core.RemoteConfig | None:
    if record is None:
        return None
    return core.RemoteConfig.build({"": (record.config_yaml.encode(), record.content_type)})


class OpAMPAgents:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.agents: dict[bytes, Agent] = {}
        self.throttle = Throttle(self.settings.opamp_max_messages_per_second)
        self.connections = 0
        self.messages = 0
        self._gate = asyncio.Semaphore(self.settings.opamp_db_concurrency)
        self._registration_cache: dict[str, tuple[float, Credential]] = {}
        self._queued = 0
        #: uid re-links buffered in presence since the last flush (see _load).
        self._unflushed_rekeys = 0
        self._sweeper: asyncio.Task[None] | None = None

    # -- authentication ----------------------------------------------------------------------
    async def authenticate(self, token: str | None) -> Credential:
        """Resolve the bearer token of an upgrade or POST; raises a 401 domain error."""
        if not token:
            raise NotAuthenticated("Missing bearer token")
        identities = self.runtime.identities
        if token.count(".") == 2:  # a JWT: the gateway's OpAMP token
            if not identities.needs_database(token):  # the common case: no I/O at all
                async with self.runtime.db.sessionmaker() as session:
                    ident = await identities.authenticate(session, token)
                return Credential("opamp", ident.org_id, ident=ident)
            async with self.db_slot(), self.runtime.db.sessionmaker() as session:
                ident = await identities.authenticate(session, token)
            return Credential("opamp", ident.org_id, ident=ident)
        key = digest(token)
        cached = self._registration_cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        async with self.db_slot(), self.runtime.db.sessionmaker() as session:
            try:
                record = await tokens.find_usable(session, token)
            except InvalidRegistrationToken:
                raise NotAuthenticated("Invalid OpAMP or registration token") from None
        cred = Credential("registration", record.org_id, token_id=record.id)
        # Agents that cannot take the OpAMP token we offer (no AcceptsOpAMPConnectionSettings)
        # poll with the registration token for good: remember it briefly rather than query
        # on every poll. Revocation and expiry take effect within the TTL; uses are counted
        # when an agent enrols, in the database.
        ttl = min(REGISTRATION_CACHE_SECONDS, (record.expires_at - utcnow()).total_seconds())
        if len(self._registration_cache) > 10_000:
            self._registration_cache.clear()
        self._registration_cache[key] = (time.monotonic() + ttl, cred)
        return cred

    def forget_registration_tokens(self) -> None:
        """A registration token was revoked here: stop trusting cached checks at once."""
        self._registration_cache.clear()

    @contextlib.asynccontextmanager
    async def db_slot(self) -> AsyncIterator[None]:
        """Admission control for OpAMP work that needs the database (enrolments, loading an
        agent after a restart). At most ``FLOWGATE_OPAMP_DB_CONCURRENCY`` run at once, so a
        reconnect storm cannot drain the connection pool that people's requests and the
        heartbeat flusher share; past ``FLOWGATE_OPAMP_MAX_QUEUED`` waiters, :class:`Busy`
        tells the agent to come back later (503 + Retry-After, or UNAVAILABLE)."""
        if self._queued >= self.settings.opamp_max_queued:
            raise Busy()
        self._queued += 1
        try:
            await self._gate.acquire()
        finally:
            self._queued -= 1
        try:
            yield
        finally:
            self._gate.release()

    # -- messages ----------------------------------------------------------------------------
    async def handle(
        self,
        msg: opamp_pb2.AgentToServer,
        cred: Credential,
        transport: Transport,
        endpoint: str,
        connection: Connection | None = None,
    ) -> opamp_pb2.ServerToAgent:
        """Process one AgentToServer for an authenticated peer and return the reply."""
        self.messages += 1
        uid = bytes(msg.instance_uid)
        try:
            core.validate_instance_uid(uid)
        except core.ProtocolError as exc:
            return core.error_reply(uid, str(exc))
        agent = self.agents.get(uid)
        if agent is not None and not self._matches(agent, cred):
            agent = None
        if agent is None:
            try:
                async with self.db_slot():
                    agent = await self._load(uid, msg, cred, transport, endpoint)
            except Conflict as exc:
                return core.error_reply(uid, exc.detail)
            if agent is None:  # enrolment waits for the agent's description
                return core.process(msg, None).reply
        if (
            agent.disconnect_seq is not None
            and msg.sequence_num < agent.disconnect_seq
            and agent.state is not None
            and agent.state.disconnected
        ):
            # Sent before the agent's goodbye but delivered after it (the Python client builds
            # payloads ahead and sends from two threads): answer, but do not bring it back.
            return opamp_pb2.ServerToAgent(instance_uid=uid, capabilities=core.SERVER_CAPABILITIES)
        duplicate = (
            cred.kind == "registration"
            and connection is not None
            and agent.connection is not None
            and agent.connection is not connection
        )
        outcome = core.process(
            msg,
            agent.state,
            desired_config=agent.desired,
            connection_settings=agent.offer,
            duplicate=duplicate,
        )
        if outcome.rejected:
            return outcome.reply
        agent.state = outcome.state
        agent.disconnect_seq = msg.sequence_num if outcome.state.disconnected else None
        agent.last_seen = time.monotonic()
        agent.transport = transport
        if connection is not None and not duplicate and agent.connection is not connection:
            agent.connection = connection
            connection.uids.add(uid)
        self._record(agent, outcome)
        if outcome.new_instance_uid is not None and not duplicate:
            self._rekey(agent, outcome.new_instance_uid)
        return outcome.reply

    def _matches(self, agent: Agent, cred: Credential) -> bool:
        if cred.kind == "opamp":
            return cred.ident is not None and agent.gateway_id == cred.ident.gateway_id
        return agent.org_id == cred.org_id

    def _record(self, agent: Agent, outcome: core.Outcome) -> None:
        state = outcome.state
        now = utcnow()
        changed = outcome.changed
        values: dict[str, Any] = {
            "last_seen": now,
            "status": GatewayStatus.inactive if state.disconnected else GatewayStatus.active,
            "transport": agent.transport,
        }
        metadata: dict[str, Any] = {}
        if "capabilities" in changed:
            metadata["capabilities"] = core.agent_capability_names(state.capabilities)
        if "description" in changed:
            version = core.describe(state).get("service.version")
            if version is not None:
                metadata["version"] = metadata["otel_version"] = str(version)
        for key in ("effective_config", "remote_config_status", "health", "description"):
            if key in changed:
                agent.updated[key] = now.isoformat()
        if "remote_config_status" in changed and agent.desired is not None:
            rcs = state.remote_config_status or {}
            if (
                rcs.get("status") == "APPLIED"
                and rcs.get("last_remote_config_hash") == agent.desired.hash.hex()
            ):
                values["current_config_version"] = agent.desired_version
        if changed - {"sequence"}:
            snapshot = state.to_json()
            snapshot["updated_at"] = dict(agent.updated)
            values["opamp_state"] = snapshot
        self.runtime.presence.record(agent.gateway_id, metadata=metadata, **values)

    def _rekey(self, agent: Agent, new_uid: bytes) -> None:
        """The agent was told to use ``new_uid``: keep its history under the new id."""
        self.agents.pop(agent.uid, None)
        if agent.connection is not None:
            agent.connection.uids.discard(agent.uid)
            agent.connection.uids.add(new_uid)
        agent.uid = new_uid
        if agent.state is not None:
            agent.state.instance_uid = new_uid
        self.agents[new_uid] = agent
        self.runtime.presence.record(
            agent.gateway_id, opamp_instance_uid=new_uid.hex(), urgent=True
        )
        self._unflushed_rekeys += 1

    # -- loading and enrolment -------------------------------------------------------------------
    async def _load(
        self,
        uid: bytes,
        msg: opamp_pb2.AgentToServer,
        cred: Credential,
        transport: Transport,
        endpoint: str,
    ) -> Agent | None:
        if self._unflushed_rekeys:  # a buffered uid re-link must be visible to the queries below
            self._unflushed_rekeys = 0
            await self.runtime.presence.flush()
        async with self.runtime.db.sessionmaker() as session:
            offer = None
            enrolment = None
            if cred.kind == "opamp":
                assert cred.ident is not None
                gateway = await session.get(Gateway, cred.ident.gateway_id)
                if gateway is None:
                    raise NotAuthenticated()
                await self._link_uid(session, gateway, uid)
            else:
                enrolment = await self._enrol(session, uid, msg, cred)
                if enrolment is None:
                    return None
                gateway = enrolment.gateway
                offer = core.ConnectionSettingsOffer(
                    headers={"Authorization": f"Bearer {enrolment.opamp_token}"},
                    heartbeat_interval_seconds=self.settings.opamp_heartbeat_interval_seconds,
                    destination_endpoint=endpoint,
                )
            gateway.transport = transport
            desired = await gateways.desired_config(session, gateway.id)
            state = None
            stored = gateway.opamp_state or {}
            if stored.get("instance_uid") == uid.hex():
                with contextlib.suppress(ValueError, TypeError):
                    state = core.AgentState.from_json(stored)
                    # A new process cannot know what the agent sent since the last flush, so
                    # treat the stream as broken: the core then asks for full state.
                    state.sequence_num = None
            if enrolment is not None and enrolment.consume is not None:
                # Last before the commit: consuming locks the token's row, and a fleet enrolling
                # with one token queues on that lock, so hold it as briefly as possible.
                await tokens.consume(session, enrolment.consume)
            await session.commit()
            self.runtime.presence.observe_status(gateway.id, gateway.status)
            self.runtime.identities.invalidate(gateway.id)
        agent = Agent(
            uid=uid,
            gateway_id=gateway.id,
            org_id=gateway.org_id,
            state=state,
            transport=transport,
            desired=_remote_config(desired),
            desired_version=desired.version if desired else None,
            offer=offer,
            updated=dict(stored.get("updated_at") or {}) if state else {},
        )
        self._register(agent)
        return agent

    def _register(self, agent: Agent) -> None:
        previous = self.agents.get(agent.uid)
        if previous is not None and previous.listener is not None:
            self.runtime.hub.unregister(previous.gateway_id, previous.listener)
        # A gateway has one agent: a stale entry under another uid goes.
        for uid, other in list(self.agents.items()):
            if other.gateway_id == agent.gateway_id and uid != agent.uid:
                self._drop(other)

        async def listener() -> bool:
            return await self._config_changed(agent)

        async def closer() -> None:
            if agent.connection is not None:
                await agent.connection.close(1008)

        agent.listener = listener
        self.agents[agent.uid] = agent
        self.runtime.hub.register(agent.gateway_id, listener, closer)

    def _drop(self, agent: Agent) -> None:
        if self.agents.get(agent.uid) is agent:
            del self.agents[agent.uid]
        if agent.listener is not None:
            self.runtime.hub.unregister(agent.gateway_id, agent.listener)

    async def _link_uid(self, session: AsyncSession, gateway: Gateway, uid: bytes) -> None:
        if gateway.opamp_instance_uid == uid.hex():
            return
        holder = await session.scalar(
            select(Gateway).where(Gateway.opamp_instance_uid == uid.hex())
        )
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
        await session.flush()

    async def _enrol(
        self,
        session: AsyncSession,
        uid: bytes,
        msg: opamp_pb2.AgentToServer,
        cred: Credential,
    ) -> Enrolment | None:
        """Find or create the gateway of an agent presenting a registration token."""
        assert cred.token_id is not None
        token = await session.get(RegistrationToken, cred.token_id)
        if token is None:
            raise NotAuthenticated()
        gateway = await session.scalar(
            select(Gateway).where(
                Gateway.opamp_instance_uid == uid.hex(), Gateway.org_id == cred.org_id
            )
        )
        if gateway is None:
            if not msg.HasField("agent_description"):
                return None
            probe = core.process(msg, None)
            if probe.rejected:  # e.g. a description that cannot be stored: enrol nothing
                return None
            attrs = core.describe(probe.state)
            instance_id = _instance_id(attrs.get("service.instance.id"), uid)
            name = str(attrs.get("host.name") or attrs.get("service.name") or instance_id)[:255]
            gateway = await session.scalar(
                select(Gateway).where(
                    Gateway.org_id == cred.org_id, Gateway.instance_id == instance_id
                )
            )
            consume = gateway is None or gateway.registration_token_id != token.id
            if gateway is None:
                gateway = Gateway(
                    org_id=cred.org_id,
                    instance_id=instance_id,
                    name=name,
                    status=GatewayStatus.registered,
                    hostname=str(attrs["host.name"])[:255] if attrs.get("host.name") else None,
                    extra_metadata={},
                    labels={},
                )
                session.add(gateway)
                await session.flush()
                log.info(
                    "gateway enrolled over opamp",
                    extra={"gateway_id": str(gateway.id), "org_id": str(cred.org_id)},
                )
            gateway.registration_token_id = token.id
            await self._link_uid(session, gateway, uid)
        else:
            consume = gateway.registration_token_id != token.id
            gateway.registration_token_id = token.id
        if gateway.status in (GatewayStatus.inactive, GatewayStatus.error):
            gateway.status = GatewayStatus.registered
        jwt = gateways.issue_opamp_token(gateway, self.settings)
        await session.flush()
        return Enrolment(gateway, jwt, token if consume else None)

    # -- pushes, disconnects, liveness -------------------------------------------------------------
    async def _config_changed(self, agent: Agent) -> bool:
        async with self.runtime.db.sessionmaker() as session:
            record = await gateways.desired_config(session, agent.gateway_id)
        agent.desired = _remote_config(record)
        agent.desired_version = record.version if record else None
        if agent.connection is None or agent.state is None:
            return False  # HTTP agents get it in the reply to their next poll
        msg = core.push_message(agent.state, agent.desired)
        if msg is None:
            return False
        await agent.connection.deliver(msg)
        log.info("remote config pushed", extra={"gateway_id": str(agent.gateway_id)})
        return True

    def connection_closed(self, connection: Connection) -> None:
        """A WebSocket ended: its agents are offline until they connect again."""
        now = utcnow()
        for uid in list(connection.uids):
            agent = self.agents.get(uid)
            if agent is None or agent.connection is not connection:
                continue
            agent.connection = None
            self.runtime.presence.record(
                agent.gateway_id, last_seen=now, status=GatewayStatus.inactive
            )
            self._drop(agent)

    async def sweep(self) -> int:
        """Mark agents silent for ``missed`` heartbeat intervals inactive (HTTP agents mostly;
        WebSockets also have their own idle timeout)."""
        limit = (
            self.settings.opamp_heartbeat_interval_seconds * self.settings.opamp_missed_heartbeats
        )
        cutoff = time.monotonic() - limit
        swept = 0
        for agent in list(self.agents.values()):
            if agent.last_seen < cutoff and agent.connection is None:
                self.runtime.presence.record(agent.gateway_id, status=GatewayStatus.inactive)
                self._drop(agent)
                swept += 1
        return swept

    async def _sweep_forever(self) -> None:
        interval = max(1.0, self.settings.opamp_heartbeat_interval_seconds / 2)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except Exception:
                log.exception("opamp liveness sweep failed")

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="opamp-sweeper")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper


def _instance_id(value: Any, uid: bytes) -> str:
    text = str(value) if value is not None else ""
    if text and re.fullmatch(INSTANCE_ID_PATTERN, text):
        return text
    return str(uuid.UUID(bytes=uid))
