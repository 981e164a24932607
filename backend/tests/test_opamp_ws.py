"""Native OpAMP over WebSocket against a live server, with FlowGate's own test agent."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from flowgate.opamp.proto import opamp_pb2
from tests.support.api import Org
from tests.support.polling import wait_for
from tests.support.server import LiveServer
from tests.support.ws_agent import (
    ACCEPTS_OPAMP_CONNECTION_SETTINGS,
    ACCEPTS_REMOTE_CONFIG,
    DEFAULT_CAPS,
    REPORT_FULL_STATE,
    WsAgent,
)

PATHS = ["/v1/opamp", "/api/v1/opamp/v1/opamp"]
APPLIED = opamp_pb2.RemoteConfigStatuses_APPLIED
FAILED = opamp_pb2.RemoteConfigStatuses_FAILED

COLLECTOR_YAML = """receivers:
  otlp:
    protocols:
      grpc: {}
processors:
  batch: {}
exporters:
  debug: {}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [debug]
"""


def status_of(org: Org, gateway_id: str) -> dict[str, Any]:
    resp = org.get(f"/api/v1/gateways/{gateway_id}/status")
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


@pytest.mark.parametrize("path", PATHS)
async def test_full_state_makes_gateway_healthy_with_description(org: Org, path: str) -> None:
    gw = org.register(name="ws-gw")
    async with WsAgent(org.server.ws_url + path, gw["opamp_token"], version="0.115.1") as agent:
        reply = await agent.request(agent.full_state())
        assert reply.instance_uid == agent.uid
        assert reply.capabilities & 0x1  # AcceptsStatus, on every reply
        assert not reply.HasField("error_response")
        # Heartbeats are answered with a bare acknowledgement.
        hb = await agent.request(agent.message())
        assert hb.instance_uid == agent.uid and not hb.flags
        status = wait_for(
            lambda: (s := status_of(org, gw["id"]))["health"]["status"] == "healthy" and s
        )
        assert status["status"] == "active"
        assert status["version"]["agent_version"] == "0.115.1"
        assert "AcceptsRemoteConfig" in status["version"]["capabilities"]
        assert status["config"]["effective"]["config_yaml"].startswith("receivers:")
        assert status["agent"]["non_identifying_attributes"]["host.name"] == "ws-agent"
        assert status["agent"]["component_health"]["status"] == "StatusOK"
        assert status["agent"]["connected"] is True
        listed = org.get("/api/v1/gateways").json()["items"]
        assert listed[0]["transport"] == "opamp-ws"
        assert listed[0]["opamp_instance_uid"] == agent.uid.hex()


async def test_close_marks_inactive_and_1000_close_is_answered(org: Org) -> None:
    gw = org.register()
    agent = await WsAgent(org.server.ws_url + "/v1/opamp", gw["opamp_token"]).connect()
    await agent.request(agent.full_state())
    await agent.send(agent.message(agent_disconnect=opamp_pb2.AgentDisconnect()))
    ack = await agent.recv()
    assert ack.instance_uid == agent.uid
    started = time.monotonic()
    assert agent.ws is not None
    await agent.ws.close(1000, "Normal closure")
    assert time.monotonic() - started < 2  # the server answered the close handshake
    assert agent.ws.close_code == 1000
    wait_for(lambda: status_of(org, gw["id"])["status"] == "inactive")
    # No INFO line per connection from uvicorn or websockets (a reconnecting fleet would be
    # tens of thousands of them), while uvicorn's own start-up lines still arrive.
    log = org.server.full_log()
    assert "Application startup complete" in log
    assert "connection open" not in log and "connection closed" not in log
    assert "[accepted]" not in log
    assert status_of(org, gw["id"])["health"] == {
        **status_of(org, gw["id"])["health"],
        "status": "offline",
        "health_score": 0,
    }


async def test_push_reaches_live_websocket_and_status_is_recorded(org: Org) -> None:
    gw = org.register()
    async with WsAgent(org.server.ws_url + "/v1/opamp", gw["opamp_token"]) as agent:
        await agent.request(agent.full_state())
        # "delivery" is read from the database: wait for the agent's presence to be written.
        await asyncio.to_thread(
            wait_for,
            lambda: "AcceptsRemoteConfig" in status_of(org, gw["id"])["version"]["capabilities"],
        )
        resp = await asyncio.to_thread(
            org.admin.put,
            f"/api/v1/gateways/{gw['id']}/remote-config",
            params={"org_id": org.id},
            json={"config_yaml": COLLECTOR_YAML},
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["delivery"] == "pushed"
        pushed = await agent.recv()
        assert pushed.remote_config.config_hash
        body = pushed.remote_config.config.config_map[""].body.decode()
        assert body == COLLECTOR_YAML
        await agent.report_config(pushed.remote_config.config_hash, APPLIED)
        cfg = wait_for(
            lambda: (
                (c := org.get(f"/api/v1/gateways/{gw['id']}/config").json())[
                    "applied_config_version"
                ]
                == 1
                and c
            )
        )
        assert cfg["remote_config_status"]["status"] == "applied"
        assert cfg["config_version"] == 1 and cfg["source"] == "remote"
        # The same hash is not offered again once acknowledged.
        again = await agent.request(agent.message())
        assert not again.HasField("remote_config")

        # A second version the agent cannot apply: FAILED with its message is visible.
        resp = await asyncio.to_thread(
            org.admin.put,
            f"/api/v1/gateways/{gw['id']}/remote-config",
            params={"org_id": org.id},
            json={"config_yaml": COLLECTOR_YAML.replace("batch: {}", "batch: {timeout: 1s}")},
        )
        pushed = await agent.recv()
        await agent.report_config(pushed.remote_config.config_hash, FAILED, "bad processor")
        cfg = wait_for(
            lambda: (
                (c := org.get(f"/api/v1/gateways/{gw['id']}/config").json())[
                    "remote_config_status"
                ]["status"]
                == "failed"
                and c
            )
        )
        assert cfg["remote_config_status"]["error_message"] == "bad processor"
        assert cfg["applied_config_version"] == 1


async def test_agent_without_accepts_remote_config_gets_no_config(org: Org) -> None:
    """The push succeeds (a new stored version, "queued"), nothing is sent to an agent that
    does not advertise AcceptsRemoteConfig, and that version is offered once it does."""
    gw = org.register()
    caps = DEFAULT_CAPS & ~ACCEPTS_REMOTE_CONFIG
    async with WsAgent(
        org.server.ws_url + "/v1/opamp", gw["opamp_token"], capabilities=caps
    ) as agent:
        await agent.request(agent.full_state())
        resp = await asyncio.to_thread(
            org.admin.put,
            f"/api/v1/gateways/{gw['id']}/remote-config",
            params={"org_id": org.id},
            json={"config_yaml": COLLECTOR_YAML},
        )
        assert resp.status_code == 200, resp.text
        push = resp.json()
        assert push["config_version"] == 1
        # Live WebSocket, but the agent cannot take a config: nothing went out.
        assert push["delivery"] == "queued"
        with pytest.raises(TimeoutError):
            await agent.recv(timeout=1)
        reply = await agent.request(agent.message())
        assert not reply.HasField("remote_config")
        cfg = (await asyncio.to_thread(org.get, f"/api/v1/gateways/{gw['id']}/config")).json()
        assert cfg["source"] == "remote" and cfg["config_version"] == 1
        assert cfg["config_hash"] == push["config_hash"]
        assert cfg["applied_config_version"] is None
        # The stored version is what the agent gets as soon as it advertises the capability.
        agent.capabilities = DEFAULT_CAPS
        reply = await agent.request(agent.message())
        assert reply.remote_config.config_hash.hex() == push["config_hash"]
        assert reply.remote_config.config.config_map[""].body.decode() == COLLECTOR_YAML


async def test_registration_token_enrols_and_offers_own_token(org: Org) -> None:
    token = org.registration_token(max_uses=None)
    url = org.server.ws_url + "/v1/opamp"
    caps = DEFAULT_CAPS | ACCEPTS_OPAMP_CONNECTION_SETTINGS
    async with WsAgent(url, token, capabilities=caps, name="edge-7") as agent:
        reply = await agent.request(agent.full_state())
        offer = reply.connection_settings
        assert offer.hash
        assert offer.opamp.heartbeat_interval_seconds > 0
        assert offer.opamp.destination_endpoint == url
        headers = {h.key: h.value for h in offer.opamp.headers.headers}
        own = headers["Authorization"].removeprefix("Bearer ")
        assert own.count(".") == 2 and own != token
    listed = org.get("/api/v1/gateways", name="edge-7").json()["items"]
    assert [g["name"] for g in listed] == ["edge-7"]
    # The offered token alone is now enough; the registration token is no longer needed.
    async with WsAgent(url, own, uid=agent.uid, capabilities=caps) as again:
        reply = await again.request(again.full_state())
        assert not reply.HasField("error_response")
        assert not reply.HasField("connection_settings")
    # And it is the gateway's OpAMP token for the REST flow too.
    hb = httpx.post(
        f"{org.server.url}/api/v1/opamp/heartbeat/{listed[0]['instance_id']}",
        headers={"Authorization": f"Bearer {own}"},
    )
    assert hb.status_code == 200


@pytest.mark.parametrize("token", [None, "garbage", "a.b.c"])
async def test_bad_credentials_rejected_before_upgrade(
    server: LiveServer, token: str | None
) -> None:
    with pytest.raises(InvalidStatus) as info:
        await WsAgent(server.ws_url + "/v1/opamp", token).connect()
    assert info.value.response.status_code == 401
    # the refusal reads like every other API error
    assert info.value.response.headers["Content-Type"] == "application/json"
    detail = json.loads(info.value.response.body)["detail"]
    known = {"Missing bearer token", "Invalid OpAMP token", "Invalid OpAMP or registration token"}
    assert detail in known, detail
    # uvicorn logs an ERROR after every refusal sent as an HTTP response; FlowGate drops it
    # (a storm of agents told to retry later would be as many ERROR lines).
    await asyncio.sleep(0.3)
    assert "without completing handshake" not in server.full_log()


async def test_deactivation_closes_live_connection(org: Org) -> None:
    gw = org.register()
    async with WsAgent(org.server.ws_url + "/v1/opamp", gw["opamp_token"]) as agent:
        await agent.request(agent.full_state())
        resp = await asyncio.to_thread(
            org.admin.post, f"/api/v1/gateways/{gw['id']}/deactivate", params={"org_id": org.id}
        )
        assert resp.status_code == 200
        with pytest.raises(ConnectionClosed):
            await agent.recv(timeout=5)
    with pytest.raises(InvalidStatus):
        await WsAgent(org.server.ws_url + "/v1/opamp", gw["opamp_token"]).connect()


async def test_restart_bare_heartbeat_gets_full_state_request(make_server: Any) -> None:
    from tests.support.api import new_org, superuser_client

    live: LiveServer = make_server()
    org = new_org(live, superuser_client(live))
    gw = org.register()
    agent = await WsAgent(live.ws_url + "/v1/opamp", gw["opamp_token"]).connect()
    await agent.request(agent.full_state())
    wait_for(lambda: status_of(org, gw["id"])["health"]["status"] == "healthy")
    live.restart()
    # opamp-go (v0.23+) reconnects with a bare message: the server must ask for full state.
    agent = await WsAgent(live.ws_url + "/v1/opamp", gw["opamp_token"], uid=agent.uid).connect()
    agent.seq = 5
    reply = await agent.request(agent.message())
    assert reply.flags & REPORT_FULL_STATE
    reply = await agent.request(agent.full_state())
    assert not reply.flags & REPORT_FULL_STATE
    org.admin = superuser_client(live)
    status = wait_for(lambda: (s := status_of(org, gw["id"]))["status"] == "active" and s)
    assert status["config"]["effective"] is not None
    await agent.close()


async def test_idle_websocket_is_closed_and_marked_inactive(make_server: Any) -> None:
    from tests.support.api import new_org, superuser_client

    live: LiveServer = make_server(
        FLOWGATE_OPAMP_HEARTBEAT_INTERVAL_SECONDS="1", FLOWGATE_OPAMP_MISSED_HEARTBEATS="2"
    )
    org = new_org(live, superuser_client(live))
    gw = org.register()
    agent = await WsAgent(live.ws_url + "/v1/opamp", gw["opamp_token"]).connect()
    await agent.request(agent.full_state())
    with pytest.raises(ConnectionClosed):
        await agent.recv(timeout=6)
    wait_for(lambda: status_of(org, gw["id"])["status"] == "inactive")


async def test_permessage_deflate_is_not_negotiated(org: Org) -> None:
    from websockets.asyncio.client import connect

    gw = org.register()
    async with connect(
        org.server.ws_url + "/v1/opamp",
        additional_headers={"Authorization": f"Bearer {gw['opamp_token']}"},
        compression="deflate",
    ) as ws:
        assert ws.response is not None
        assert "Sec-WebSocket-Extensions" not in ws.response.headers


async def test_available_components_are_requested_and_stored(org: Org) -> None:
    gw = org.register()
    async with WsAgent(org.server.ws_url + "/v1/opamp", gw["opamp_token"]) as agent:
        agent.capabilities |= 0x4000  # ReportsAvailableComponents
        components = opamp_pb2.AvailableComponents(hash=b"\x01" * 32)
        first = agent.full_state()
        first.available_components.CopyFrom(components)
        reply = await agent.request(first)
        assert reply.flags & 0x2  # ReportAvailableComponents: send the full map
        full = opamp_pb2.AvailableComponents(hash=b"\x01" * 32)
        full.components["receivers"].sub_component_map["otlp"].metadata.add(key="code.namespace")
        reply = await agent.request(agent.message(available_components=full))
        assert not reply.flags & 0x2
        status = wait_for(
            lambda: (
                (s := status_of(org, gw["id"]))["agent"]
                and s["agent"]["available_components"]
                and s["agent"]["available_components"]["components"]
                and s
            )
        )
        stored = status["agent"]["available_components"]
        assert stored["hash"] == "01" * 32
        assert "receivers" in stored["components"]


async def test_revoked_registration_token_stops_enrolment_at_once(org: Org) -> None:
    tokens = org.admin.get("/api/v1/registration-tokens", params={"org_id": org.id})
    token = org.registration_token(max_uses=None)
    url = org.server.ws_url + "/v1/opamp"
    async with WsAgent(url, token) as agent:
        assert not (await agent.request(agent.full_state())).HasField("error_response")
    token_id = next(
        t["id"]
        for t in org.admin.get("/api/v1/registration-tokens", params={"org_id": org.id}).json()
        if t["id"] not in {x["id"] for x in tokens.json()}
    )
    resp = await asyncio.to_thread(
        org.admin.delete, f"/api/v1/registration-tokens/{token_id}", params={"org_id": org.id}
    )
    assert resp.status_code == 200
    with pytest.raises(InvalidStatus) as info:
        await WsAgent(url, token).connect()
    assert info.value.response.status_code == 401


async def test_an_agent_that_vanishes_before_its_answer_is_an_ordinary_disconnect(
    org: Org,
) -> None:
    """Agents that send a message and drop the TCP connection before the answer (a crash, a
    load balancer reset) end their connections quietly: no error logged with a traceback,
    the gateways turn inactive, and the server keeps serving."""
    gateways = [org.register() for _ in range(8)]
    for gw in gateways:
        agent = await WsAgent(org.server.ws_url + "/v1/opamp", gw["opamp_token"]).connect()
        assert agent.ws is not None
        await agent.send(agent.full_state())
        agent.ws.transport.abort()  # no close handshake: gone while the server answers
    for gw in gateways:
        await asyncio.to_thread(
            wait_for, lambda gw=gw: status_of(org, gw["id"])["status"] == "inactive"
        )
    assert "opamp websocket failed" not in org.server.full_log()
    async with WsAgent(org.server.ws_url + "/v1/opamp", gateways[0]["opamp_token"]) as agent:
        reply = await agent.request(agent.full_state())
        assert not reply.HasField("error_response")
