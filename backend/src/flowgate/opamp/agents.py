"""Native OpAMP agents on this replica: their hot state, and what to tell them.

The sans-I/O :mod:`flowgate.opamp.core` decides every reply; this module keeps each agent's
state in memory between messages, asks :class:`~flowgate.opamp.store.AgentStore` to load an
agent the first time this process sees it, and hands what changed back to the store. A known
agent's message costs no database round trip.

When an agent's description changes, its non-identifying attributes named
``flowgate.label.<key>`` become the gateway's agent-reported labels (written with the next
presence flush; labels people set still win).

Bus events reach every replica: a config change pushes to the live agents of those gateways, a
revocation closes the gateway's socket and forgets the agent, and a superseded token makes the
replica re-check the credential of the agents it holds for that gateway.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from flowgate import telemetry
from flowgate.configs.models import TargetState
from flowgate.configs.reports import Report, RolloutReports
from flowgate.core import background
from flowgate.core.background import BackgroundTask
from flowgate.core.db import utcnow
from flowgate.core.errors import Conflict
from flowgate.core.events import ConfigChanged, GatewayRevoked, GatewayTokenSuperseded
from flowgate.core.settings import Settings
from flowgate.gateways import labels
from flowgate.gateways.models import GatewayStatus
from flowgate.gateways.registration import EnrolmentConflict
from flowgate.opamp import core
from flowgate.opamp.auth import Admission, Credential, RetryLater
from flowgate.opamp.own_metrics import OwnMetrics, own_metrics_endpoint
from flowgate.opamp.proto import opamp_pb2
from flowgate.opamp.store import AgentStore, Loaded, remote_config

log = logging.getLogger(__name__)

Transport = Literal["opamp-ws", "opamp-http"]
SendFn = Callable[[opamp_pb2.ServerToAgent], Awaitable[None]]
CloseFn = Callable[[int], Awaitable[None]]
WriteFn = Callable[[opamp_pb2.ServerToAgent], None]


@dataclass(eq=False, slots=True)
class Connection:
    """One live WebSocket. Sends that await (ASGI) are serialised because pushes race with
    replies; a socket that writes synchronously (``write``, the lean WebSocket) needs no lock,
    as one write is one whole frame."""

    send: SendFn
    close: CloseFn
    write: WriteFn | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    uids: set[bytes] = field(default_factory=set)

    async def deliver(self, msg: opamp_pb2.ServerToAgent) -> None:
        if self.write is not None:
            self.write(msg)
            return
        async with self.lock:
            await self.send(msg)


@dataclass(eq=False, slots=True)
class Agent:
    uid: bytes
    gateway_id: uuid.UUID
    org_id: uuid.UUID
    guard: str
    credential: Literal["opamp", "registration"]
    state: core.AgentState | None
    transport: Transport
    desired: core.RemoteConfig | None = None
    desired_version: int | None = None
    offer: core.ConnectionSettingsOffer | None = None
    #: Where to send its own metrics (agents with ReportsOwnMetrics; see own_metrics.py).
    own_metrics: core.TelemetryOffer | None = None
    connection: Connection | None = None
    last_seen: float = field(default_factory=time.monotonic)
    updated: dict[str, str] = field(default_factory=dict)
    #: The labels last written for this agent (flowgate.label.* attributes).
    agent_labels: dict[str, str] = field(default_factory=dict)


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


_SEQUENCE_ONLY = frozenset({"sequence"})

#: How many builds' component maps an organisation's agents share at most (a fleet runs a
#: few builds; a map of an older one is dropped first and learned again when reported).
COMPONENT_MAPS_PER_ORG = 32

#: RemoteConfigStatus -> rollout state of the gateway in the deployment that sent the config.
_ROLLOUT_STATES = {
    "APPLYING": TargetState.applying,
    "APPLIED": TargetState.applied,
    "FAILED": TargetState.failed,
}


class OpAMPAgents:
    def __init__(
        self,
        settings: Settings,
        store: AgentStore,
        admission: Admission,
        reports: RolloutReports,
    ) -> None:
        self.settings = settings
        self.reports = reports
        self.store = store
        self.admission = admission
        self.agents: dict[bytes, Agent] = {}
        #: The Collectors' own metrics received on this replica (recent points only).
        self.own_metrics = OwnMetrics()
        self._by_gateway: dict[uuid.UUID, Agent] = {}
        #: Per organisation, the component maps its agents reported, by hash: agents of one
        #: build share one map (in memory, and an agent that sends only the hash is not asked
        #: for the map). Per organisation, so no agent's report reaches another's gateways.
        self._components: dict[uuid.UUID, dict[str, Mapping[str, Any]]] = {}
        self.throttle = Throttle(settings.opamp_max_messages_per_second)
        self.connections = 0
        self.messages = 0
        self._sweeper = BackgroundTask("opamp-sweeper")

    # -- messages ----------------------------------------------------------------------------
    async def handle(
        self,
        msg: opamp_pb2.AgentToServer,
        cred: Credential,
        transport: Transport,
        endpoint: str,
        connection: Connection | None = None,
    ) -> opamp_pb2.ServerToAgent:
        """Process one AgentToServer for an authenticated peer and return the reply.

        Raises :class:`~flowgate.opamp.auth.Busy` or :class:`RetryLater` (answer "come back
        later") and 401 domain errors (the credential stopped working)."""
        self.messages += 1
        telemetry.OPAMP_MESSAGES.inc(transport.removeprefix("opamp-"))
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
                loaded = await self.store.load(
                    uid, msg, cred, transport
                )  # admitted there (enrolments by its enroller)
            except EnrolmentConflict:
                # Another enrolment of this gateway is committing; its retry finds it.
                raise RetryLater(random.randint(1, 3)) from None
            except Conflict as exc:
                return core.error_reply(uid, exc.detail)
            if loaded is None:  # enrolment waits for the agent's description
                return core.process(msg, None).reply
            agent = self._register(uid, loaded, cred, transport, endpoint)
        live_elsewhere = (
            connection is not None
            and agent.connection is not None
            and agent.connection is not connection
        )
        duplicate = core.duplicate_uid(shared_credential=cred.shared, live_elsewhere=live_elsewhere)
        outcome = core.process(
            msg,
            agent.state,
            desired_config=agent.desired,
            connection_settings=agent.offer,
            own_metrics=agent.own_metrics,
            duplicate=duplicate,
            known_components=self._components.get(agent.org_id),
        )
        if outcome.rejected or outcome.stale:
            return outcome.reply
        agent.state = outcome.state
        if "available_components" in outcome.changed:
            self._share_components(agent)
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
            reported = self._agent_labels(agent, state)
            if reported != agent.agent_labels:  # most descriptions change no label
                values["agent_labels"] = agent.agent_labels = reported
        stamp = None
        for key in ("effective_config", "remote_config_status", "health", "description"):
            if key in changed:
                agent.updated[key] = stamp = stamp or now.isoformat()  # one string for all
        if "remote_config_status" in changed:
            self._report_rollout(agent, state.remote_config_status or {})
        if "remote_config_status" in changed and agent.desired is not None:
            rcs = state.remote_config_status or {}
            if (
                rcs.get("status") == "APPLIED"
                and rcs.get("last_remote_config_hash") == agent.desired.hash.hex()
            ):
                values["current_config_version"] = agent.desired_version
        if not changed <= _SEQUENCE_ONLY:  # a plain heartbeat leaves the snapshot alone
            values["opamp_state"] = state.snapshot_json(agent.updated, outcome.reports_json)
        if "available_components" in changed:  # written with the snapshot that holds it
            values["components_hash"] = (state.available_components or {}).get("hash")
        self.store.record(agent.gateway_id, agent.guard, metadata=metadata, **values)

    def _report_rollout(self, agent: Agent, rcs: dict[str, Any]) -> None:
        state = _ROLLOUT_STATES.get(str(rcs.get("status")))
        if state is None:
            return
        self.reports.record(
            Report(
                agent.gateway_id,
                state,
                config_hash=str(rcs.get("last_remote_config_hash") or ""),
                error_message=rcs.get("error_message") or None,
            )
        )

    def _agent_labels(self, agent: Agent, state: core.AgentState) -> dict[str, str]:
        """The gateway's agent-reported labels: its non-identifying attributes named
        ``flowgate.label.<key>``. An attribute breaking the label rules is left out and logged;
        the agent is not refused for it."""
        found, problems = labels.from_attributes(state.non_identifying_attributes)
        if problems:
            log.warning(
                "ignoring invalid labels reported by an agent",
                extra={"gateway_id": str(agent.gateway_id), "problems": problems[:10]},
            )
        return found

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
        self.store.record(
            agent.gateway_id, agent.guard, opamp_instance_uid=new_uid.hex(), urgent=True
        )
        self.store.unflushed_rekeys += 1

    # -- the registry ------------------------------------------------------------------------
    def _register(
        self, uid: bytes, loaded: Loaded, cred: Credential, transport: Transport, endpoint: str
    ) -> Agent:
        offer = None
        if loaded.offer_token is not None:
            offer = core.ConnectionSettingsOffer(
                headers={"Authorization": f"Bearer {loaded.offer_token}"},
                heartbeat_interval_seconds=self.settings.opamp_heartbeat_interval_seconds,
                destination_endpoint=endpoint,
            )
        # Own metrics are authorised by the gateway's OpAMP token: the one just issued at
        # enrolment, or the one the agent presented.
        token = loaded.offer_token or (cred.token if cred.kind == "opamp" else None)
        own_metrics = None
        if token is not None:
            own_metrics = core.TelemetryOffer(
                headers={"Authorization": f"Bearer {token}"},
                destination_endpoint=own_metrics_endpoint(self.settings, endpoint),
            )
        agent = Agent(
            uid=uid,
            gateway_id=loaded.gateway_id,
            org_id=loaded.org_id,
            guard=loaded.guard,
            credential=cred.kind,
            state=loaded.state,
            transport=transport,
            desired=loaded.desired,
            desired_version=loaded.desired_version,
            offer=offer,
            own_metrics=own_metrics,
            updated=loaded.updated,
            agent_labels=loaded.agent_labels,
        )
        # A gateway has one agent: a stale entry (under this or another uid) goes.
        previous = self._by_gateway.get(agent.gateway_id)
        if previous is not None:
            self._drop(previous)
        stale = self.agents.get(uid)
        if stale is not None:
            self._drop(stale)
        self.agents[uid] = agent
        self._by_gateway[agent.gateway_id] = agent
        self._share_components(agent)
        return agent

    def _share_components(self, agent: Agent) -> None:
        """Keep the agent's component map as its organisation's map for that hash, or, when
        there is one already, hold that one instead of its own copy (a state restored from
        the database, or a map sent before its peers')."""
        state = agent.state
        reported = state.available_components if state is not None else None
        if state is None or not reported or not isinstance(reported.get("components"), dict):
            return
        digest = str(reported.get("hash") or "")
        if not digest:
            return
        maps = self._components.setdefault(agent.org_id, {})
        shared = maps.get(digest)
        if shared is None:
            if len(maps) >= COMPONENT_MAPS_PER_ORG:  # the oldest build's map goes first
                maps.pop(next(iter(maps)))
            maps[digest] = reported["components"]
        elif shared is not reported["components"]:
            state.available_components = {"hash": digest, "components": shared}

    def _drop(self, agent: Agent) -> None:
        if self.agents.get(agent.uid) is agent:
            del self.agents[agent.uid]
        if self._by_gateway.get(agent.gateway_id) is agent:
            del self._by_gateway[agent.gateway_id]

    def agent_for(self, gateway_id: uuid.UUID) -> Agent | None:
        return self._by_gateway.get(gateway_id)

    # -- bus events ----------------------------------------------------------------------------
    async def on_config_changed(self, event: ConfigChanged) -> None:
        """Reload the desired config of the gateways held here and push it to live agents
        (HTTP agents get it in the reply to their next poll)."""
        held = [gid for gid in event.gateway_ids if gid in self._by_gateway]
        if not held:
            return
        records = await self.store.desired(held)
        pushed = 0
        for gateway_id in held:
            agent = self._by_gateway.get(gateway_id)
            if agent is None:
                continue
            record = records.get(gateway_id)
            agent.desired = remote_config(record)
            agent.desired_version = record.version if record else None
            if agent.connection is None or agent.state is None:
                continue
            msg = core.push_message(agent.state, agent.desired)
            if msg is not None:
                await agent.connection.deliver(msg)
                pushed += 1
        if pushed:
            # One line for the event, not one per agent: a deployment to 10k gateways.
            log.info("remote config pushed", extra={"agents": pushed, "gateways": len(held)})

    async def on_revoked(self, event: GatewayRevoked) -> None:
        """The gateway was deactivated or deleted: close its socket, forget the agent."""
        self.own_metrics.forget(event.gateway_id)
        agent = self._by_gateway.get(event.gateway_id)
        if agent is None:
            return
        self._drop(agent)
        if agent.connection is not None:
            log.info(
                "closing a revoked agent's connection",
                extra={"gateway_id": str(event.gateway_id), "reason": event.reason},
            )
            await agent.connection.close(1008)

    async def on_token_superseded(self, event: GatewayTokenSuperseded) -> None:
        """Re-check the credential of the agent held here: an agent that authenticated with
        the gateway's previous OpAMP token is disconnected (its reconnect gets a 401)."""
        agent = self._by_gateway.get(event.gateway_id)
        if agent is None:
            return
        current = await self.store.current_guard(event.gateway_id)
        if current is not None and current == agent.guard:
            return
        self._drop(agent)
        if agent.connection is not None and agent.credential == "opamp":
            await agent.connection.close(1008)

    # -- disconnects, liveness ---------------------------------------------------------------
    def connection_closed(self, connection: Connection) -> None:
        """A WebSocket ended: its agents are offline until they connect again."""
        for uid in list(connection.uids):
            agent = self.agents.get(uid)
            if agent is None or agent.connection is not connection:
                continue
            agent.connection = None
            self.store.record_disconnect(agent.gateway_id, agent.guard)
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
                self.store.record(agent.gateway_id, agent.guard, status=GatewayStatus.inactive)
                self._drop(agent)
                swept += 1
        return swept

    async def _sweep_forever(self) -> None:
        interval = max(1.0, self.settings.opamp_heartbeat_interval_seconds / 2)
        while True:
            await asyncio.sleep(interval)
            await background.step(self.sweep, where="opamp liveness sweep")

    async def start(self) -> None:
        self._sweeper.start(self._sweep_forever)

    async def stop(self) -> None:
        await self._sweeper.stop()
