"""Agents of one Collector build share one component map in the server's memory, per
organisation: ``OpAMPAgents`` learns a map from the first agent that reports it and hands it
to the others (in process, no sockets, no database: the agents are already loaded)."""

from __future__ import annotations

import uuid
from pathlib import Path

from flowgate.core.settings import Settings
from flowgate.opamp import core
from flowgate.opamp.agents import COMPONENT_MAPS_PER_ORG, Agent, Connection, OpAMPAgents
from flowgate.opamp.auth import Credential
from flowgate.opamp.proto import opamp_pb2
from flowgate.runtime import build_runtime

CAPS = 0x1FF  # reports status, effective config, remote config status, health, components


def _agents(tmp_path: Path) -> OpAMPAgents:
    settings = Settings(data_dir=tmp_path, secret_key="k" * 48)
    return build_runtime(settings).agents


def _add(agents: OpAMPAgents, org_id: uuid.UUID) -> Agent:
    uid = uuid.uuid4().bytes
    agent = Agent(
        uid=uid,
        gateway_id=uuid.uuid4(),
        org_id=org_id,
        guard="guard",
        credential="registration",
        state=core.AgentState(instance_uid=uid, sequence_num=0, capabilities=CAPS),
        transport="opamp-ws",
    )
    agents.agents[uid] = agent
    return agent


def _report(digest: bytes, with_map: bool, uid: bytes, seq: int) -> opamp_pb2.AgentToServer:
    msg = opamp_pb2.AgentToServer(instance_uid=uid, sequence_num=seq, capabilities=CAPS)
    msg.available_components.hash = digest
    if with_map:
        otlp = msg.available_components.components["receivers"].sub_component_map["otlp"]
        otlp.metadata.add(key="version").value.string_value = "v0.135.0"
    return msg


async def _send(agents: OpAMPAgents, agent: Agent, msg: opamp_pb2.AgentToServer) -> int:
    cred = Credential(kind="registration", org_id=agent.org_id)
    conn = Connection(send=None, close=None)  # type: ignore[arg-type]
    reply = await agents.handle(msg, cred, "opamp-ws", "ws://test/v1/opamp", conn)
    return int(reply.flags)


def _map(agent: Agent) -> object:
    assert agent.state is not None and agent.state.available_components is not None
    return agent.state.available_components["components"]


async def test_agents_of_one_build_hold_one_map_per_organisation(tmp_path: Path) -> None:
    agents = _agents(tmp_path)
    org, other_org = uuid.uuid4(), uuid.uuid4()
    first, second, hash_only = (_add(agents, org) for _ in range(3))
    elsewhere = _add(agents, other_org)
    build = b"\x01" * 32

    await _send(agents, first, _report(build, True, first.uid, 1))
    await _send(agents, second, _report(build, True, second.uid, 1))
    assert _map(second) is _map(first)  # its own map was not kept
    # An agent that sends only the hash gets the map without being asked for it.
    flags = await _send(agents, hash_only, _report(build, False, hash_only.uid, 1))
    assert not flags & core.REPORT_AVAILABLE_COMPONENTS
    assert _map(hash_only) is _map(first)
    # Another organisation's agent neither gets nor gives this organisation's map.
    flags = await _send(agents, elsewhere, _report(build, False, elsewhere.uid, 1))
    assert flags & core.REPORT_AVAILABLE_COMPONENTS
    assert _map(elsewhere) is None
    await _send(agents, elsewhere, _report(build, True, elsewhere.uid, 2))
    assert _map(elsewhere) == _map(first) and _map(elsewhere) is not _map(first)


async def test_an_organisation_keeps_a_bounded_number_of_maps(tmp_path: Path) -> None:
    agents = _agents(tmp_path)
    org = uuid.uuid4()
    for n in range(COMPONENT_MAPS_PER_ORG + 5):
        agent = _add(agents, org)
        await _send(agents, agent, _report(n.to_bytes(32, "big"), True, agent.uid, 1))
    maps = agents._components[org]
    assert len(maps) == COMPONENT_MAPS_PER_ORG
    assert (0).to_bytes(32, "big").hex() not in maps  # the oldest went first
