"""Enrolment storms: many new agents presenting one registration token at once are enrolled in
batches (flowgate.opamp.enroller) with exactly the outcome of enrolling them one by one: a
gateway and an OpAMP token each, the token's use count exact (``max_uses`` enforced exactly,
across replicas too), one audit row per enrolment, correct health counts. The only failures an
agent may see are retry-later answers (UNAVAILABLE with retry_info, or 503 + Retry-After)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosedError

from flowgate.opamp.proto import opamp_pb2
from tests import test_replicas
from tests.support.api import Org, anonymous, new_org, superuser_client
from tests.support.db import query
from tests.support.server import LiveServer
from tests.support.ws_agent import ACCEPTS_OPAMP_CONNECTION_SETTINGS, DEFAULT_CAPS, WsAgent

#: Two replicas on one PostgreSQL database and Redis (the fixture of tests/test_replicas.py).
replicas = test_replicas.replicas

STORM = 200
CAPS = DEFAULT_CAPS | ACCEPTS_OPAMP_CONNECTION_SETTINGS
REFUSED = "Invalid or expired registration token"


def new_token(org: Org, max_uses: int | None) -> tuple[str, str]:
    """(plain token, token id)."""
    made = org.admin.post(
        "/api/v1/registration-tokens",
        params={"org_id": org.id},
        json={"name": "fleet", "max_uses": max_uses},
    )
    assert made.status_code == 201, made.text
    return made.json()["token"], made.json()["id"]


async def enrol_ws(
    server: LiveServer, token: str, name: str, uid: bytes | None = None
) -> str | None:
    """Enrol one agent over WebSocket, retrying retry-later answers the way an agent does.
    Returns the OpAMP token it was offered, or None when it was refused (the reason is
    asserted to be the used-up token)."""
    for _ in range(50):
        agent = WsAgent(server.ws_url + "/v1/opamp", token, uid=uid, capabilities=CAPS, name=name)
        uid = agent.uid  # a retry is the same agent
        try:
            async with agent:
                reply = await agent.request(agent.full_state())
        except ConnectionClosedError as exc:  # refused: the server closes with 1008
            assert exc.rcvd is not None and exc.rcvd.code == 1008, exc
            return None
        except TimeoutError:  # the client's 10 s opening handshake on a busy test machine
            continue
        if reply.HasField("error_response"):
            error = reply.error_response
            if error.type == opamp_pb2.ServerErrorResponseType_Unavailable:
                assert error.retry_info.retry_after_nanoseconds > 0
                await asyncio.sleep(0.1)  # a real agent honours retry_info; the test is impatient
                continue
            assert error.error_message == REFUSED, reply
            return None
        headers = {h.key: h.value for h in reply.connection_settings.opamp.headers.headers}
        offered = headers["Authorization"].removeprefix("Bearer ")
        assert offered.count(".") == 2
        return offered
    raise AssertionError(f"{name} never enrolled")


async def enrol_http(client: httpx.AsyncClient, token: str, name: str) -> str | None:
    """The same over plain HTTP (503 + Retry-After to retry, 401 when refused)."""
    agent = WsAgent("unused", token, capabilities=CAPS, name=name)
    for _ in range(50):
        resp = await client.post(
            "/v1/opamp",
            content=agent.full_state().SerializeToString(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-protobuf"},
        )
        if resp.status_code == 503:
            assert int(resp.headers["retry-after"]) >= 1
            await asyncio.sleep(0.1)
            continue
        if resp.status_code == 401:
            assert resp.json() == {"detail": REFUSED}
            return None
        assert resp.status_code == 200, resp.text
        reply = opamp_pb2.ServerToAgent()
        reply.ParseFromString(resp.content)
        assert not reply.HasField("error_response"), reply
        headers = {h.key: h.value for h in reply.connection_settings.opamp.headers.headers}
        return headers["Authorization"].removeprefix("Bearer ")
    raise AssertionError(f"{name} never enrolled")


async def rows(server: LiveServer, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return await asyncio.to_thread(query, server, sql, *params)  # query runs its own loop


async def use_count(server: LiveServer, token_id: str) -> int:
    found = await rows(
        server, "SELECT use_count FROM registration_tokens WHERE id = ?", uuid.UUID(token_id)
    )
    return int(found[0][0])


async def audit_rows(server: LiveServer, token_id: str) -> int:
    found = await rows(
        server,
        "SELECT count(*) FROM audit_log WHERE action = 'gateway.register' AND actor_id = ?",
        uuid.UUID(token_id),
    )
    return int(found[0][0])


async def names_in(org: Org) -> list[str]:
    found = await rows(org.server, "SELECT name FROM gateways WHERE org_id = ?", uuid.UUID(org.id))
    return [str(name) for (name,) in found]


def counter(server: LiveServer, name: str) -> float:
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(anonymous(server).get("/metrics").text)
        for sample in family.samples
    }
    return samples[name]


async def first_attempts(server: LiveServer, token: str, names: list[str]) -> list[str | None]:
    """Connect every agent first, then send all their first messages at once, so they reach
    the server together whatever the machine's pace; an agent told to retry later (or whose
    attempt failed on the client side) enrols again with :func:`enrol_ws`."""
    url = server.ws_url + "/v1/opamp"
    agents = [WsAgent(url, token, capabilities=CAPS, name=name) for name in names]
    connected = await asyncio.gather(*(a.connect() for a in agents), return_exceptions=True)
    live = [a for a, c in zip(agents, connected, strict=True) if not isinstance(c, BaseException)]
    await asyncio.gather(*(a.send(a.full_state()) for a in live))
    # A generous wait: a reply given up on could be an enrolment that happened anyway.
    replies = await asyncio.gather(*(a.recv(timeout=60) for a in live), return_exceptions=True)
    await asyncio.gather(*(a.close() for a in live), return_exceptions=True)
    offered: dict[str, str | None] = {}
    for agent, reply in zip(live, replies, strict=True):
        if isinstance(reply, opamp_pb2.ServerToAgent) and not reply.HasField("error_response"):
            headers = {h.key: h.value for h in reply.connection_settings.opamp.headers.headers}
            offered[agent.name] = headers["Authorization"].removeprefix("Bearer ")
    again = [agent for agent in agents if agent.name not in offered]
    retried = await asyncio.gather(*(enrol_ws(server, token, a.name, a.uid) for a in again))
    for agent, token_offered in zip(again, retried, strict=True):
        offered[agent.name] = token_offered
    return [offered[name] for name in names]


async def test_a_storm_of_new_agents_enrols_every_one_exactly_once(org: Org) -> None:
    token, token_id = new_token(org, max_uses=None)
    names = [f"storm-{i:03d}" for i in range(STORM)]
    batches = counter(org.server, "flowgate_opamp_enrolment_batches_total")
    batched = counter(org.server, "flowgate_opamp_enrolments_batched_total")
    offered = await first_attempts(org.server, token, names)
    # Coalesced: far fewer transactions than agents.
    batches = counter(org.server, "flowgate_opamp_enrolment_batches_total") - batches
    batched = counter(org.server, "flowgate_opamp_enrolments_batched_total") - batched
    assert batched >= STORM
    assert batches <= STORM / 4, (batches, batched)
    assert None not in offered
    assert len(set(offered)) == STORM  # each its own OpAMP token
    assert sorted(await names_in(org)) == names  # each its own gateway, once
    assert await use_count(org.server, token_id) == STORM
    assert await audit_rows(org.server, token_id) == STORM
    summary = org.get("/api/v1/gateways").json()["summary"]
    assert summary["total"] == STORM
    assert sum(summary["by_status"].values()) == STORM
    assert sum(summary["by_health"].values()) == STORM
    # Every offered token works on its own (its digest is the gateway's).
    url = org.server.ws_url + "/v1/opamp"
    for own in offered[:5]:
        async with WsAgent(url, own, capabilities=CAPS) as again:
            reply = await again.request(again.full_state())
            assert not reply.HasField("error_response"), reply


async def test_a_limited_token_enrols_exactly_max_uses_and_refuses_the_rest(org: Org) -> None:
    token, token_id = new_token(org, max_uses=50)
    names = [f"limited-{i:03d}" for i in range(STORM)]
    half = STORM // 2
    async with httpx.AsyncClient(base_url=org.server.url, timeout=30) as client:
        offered = await asyncio.gather(
            *(enrol_ws(org.server, token, name) for name in names[:half]),
            *(enrol_http(client, token, name) for name in names[half:]),
        )
    enrolled = [o for o in offered if o is not None]
    assert len(enrolled) == 50, len(enrolled)
    assert len(await names_in(org)) == 50
    assert await use_count(org.server, token_id) == 50
    assert await audit_rows(org.server, token_id) == 50
    assert org.get("/api/v1/gateways").json()["summary"]["total"] == 50


async def test_two_replicas_share_one_limited_token_exactly(
    replicas: tuple[LiveServer, LiveServer],
) -> None:
    a, b = replicas
    org = new_org(a, superuser_client(a))
    token, token_id = new_token(org, max_uses=120)
    names = [f"replica-{i:03d}" for i in range(STORM)]
    offered = await asyncio.gather(
        *(enrol_ws(a if i % 2 else b, token, name) for i, name in enumerate(names))
    )
    assert len([o for o in offered if o is not None]) == 120
    assert len(await names_in(org)) == 120
    assert await use_count(a, token_id) == 120
    assert await audit_rows(a, token_id) == 120


async def _poll(client: httpx.AsyncClient, token: str, msg: opamp_pb2.AgentToServer) -> Any:
    resp = await client.post(
        "/v1/opamp",
        content=msg.SerializeToString(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-protobuf"},
    )
    assert resp.status_code == 200, resp.text
    reply = opamp_pb2.ServerToAgent()
    reply.ParseFromString(resp.content)
    assert not reply.HasField("error_response"), reply
    return reply


async def test_a_returning_agent_that_keeps_its_registration_token_is_not_re_registered(
    make_server: Any,
) -> None:
    """An HTTP agent that can take no OpAMP token (no AcceptsOpAMPConnectionSettings, no own
    metrics) polls with the registration token for good. After a restart it is loaded like a
    known agent: the same gateway and credential, no new enrolment, no use counted. An agent
    that can take a token is re-registered as before and offered a new one."""
    live: LiveServer = make_server()
    org = new_org(live, superuser_client(live))
    token, token_id = new_token(org, max_uses=None)
    plain = WsAgent("unused", token, name="keeps-registration-token")
    taker = WsAgent("unused", token, capabilities=CAPS, name="takes-offered-token")
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
        first = await _poll(client, token, plain.full_state())
        assert not first.HasField("connection_settings")
        offered = (await _poll(client, token, taker.full_state())).connection_settings
    before = dict(await rows(live, "SELECT name, opamp_token FROM gateways"))
    assert set(before) == {plain.name, taker.name}
    live.restart()
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
        reply = await _poll(client, token, plain.message())  # a bare poll after the restart
        assert reply.flags & opamp_pb2.ServerToAgentFlags_ReportFullState
        await _poll(client, token, plain.full_state())
        again = (await _poll(client, token, taker.full_state())).connection_settings
    after = dict(await rows(live, "SELECT name, opamp_token FROM gateways"))
    assert set(after) == set(before)  # no new gateway for either
    assert after[plain.name] == before[plain.name]  # the same credential: not re-registered
    assert after[taker.name] != before[taker.name]  # re-registered: a new token offered
    assert again.opamp.headers != offered.opamp.headers
    assert await use_count(live, token_id) == 2
    assert await audit_rows(live, token_id) == 3  # two enrolments, one re-registration
    org.admin = superuser_client(live)
    listed = {g["name"]: g for g in org.get("/api/v1/gateways").json()["items"]}
    assert listed[plain.name]["status"] == "active"
