"""Malformed OpAMP input gets the spec's answer and never takes the server down."""

from __future__ import annotations

import gzip
import os
import uuid
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from flowgate.opamp.proto import opamp_pb2
from tests.support.api import Org
from tests.support.ws_agent import WsAgent

PROTO = {"Content-Type": "application/x-protobuf"}
BAD_REQUEST = opamp_pb2.ServerErrorResponseType_BadRequest


def heartbeat(uid: bytes, seq: int = 0) -> bytes:
    return opamp_pb2.AgentToServer(
        instance_uid=uid, sequence_num=seq, capabilities=1
    ).SerializeToString()


def post(
    org: Org,
    token: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    path: str = "/v1/opamp",
) -> httpx.Response:
    return httpx.post(
        org.server.url + path,
        content=body,
        headers={**PROTO, "Authorization": f"Bearer {token}", **(headers or {})},
        timeout=30,
    )


@pytest.fixture
def token(org: Org) -> str:
    token: str = org.register()["opamp_token"]
    return token


def still_serving(org: Org, token: str) -> None:
    resp = post(org, token, heartbeat(uuid.uuid4().bytes))
    assert resp.status_code == 200
    reply = opamp_pb2.ServerToAgent.FromString(resp.content)
    assert not reply.HasField("error_response")


@pytest.mark.parametrize(
    "body",
    [os.urandom(64) + b"\xff\xff\xff", heartbeat(uuid.uuid4().bytes)[:9], b"\x0a\xff\xff\xff\x0f"],
    ids=["random", "truncated", "bad-length"],
)
def test_http_undecodable_body_is_400(org: Org, token: str, body: bytes) -> None:
    resp = post(org, token, body)
    assert resp.status_code == 400
    assert resp.headers["content-type"] == "application/json"
    assert resp.json() == {"detail": "malformed AgentToServer message"}
    still_serving(org, token)


@pytest.mark.parametrize(
    "uid",
    [bytes(16), b"\x01" * 15, b"\x01" * 17, b""],
    ids=["zeros", "15-bytes", "17-bytes", "empty"],
)
def test_http_bad_uid_gets_bad_request_error_response(org: Org, token: str, uid: bytes) -> None:
    resp = post(org, token, heartbeat(uid))
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/x-protobuf"
    reply = opamp_pb2.ServerToAgent.FromString(resp.content)
    assert reply.error_response.type == BAD_REQUEST
    assert reply.error_response.error_message
    # error_response is exclusive of the other fields
    assert not reply.capabilities and not reply.flags and not reply.HasField("remote_config")


def test_http_wrong_content_type_method_and_auth(org: Org, token: str) -> None:
    body = heartbeat(uuid.uuid4().bytes)
    wrong_type = post(org, token, body, {"Content-Type": "application/json"})
    assert wrong_type.status_code == 415
    assert wrong_type.json() == {"detail": "Content-Type must be application/x-protobuf"}
    get = httpx.get(org.server.url + "/v1/opamp")
    assert (get.status_code, get.headers["allow"]) == (405, "POST")
    assert get.json() == {"detail": "OpAMP accepts POST (plain HTTP) or a WebSocket upgrade"}
    no_auth = httpx.post(org.server.url + "/v1/opamp", content=body, headers=PROTO)
    assert no_auth.status_code == 401
    assert no_auth.headers["www-authenticate"] == "Bearer"
    assert no_auth.json() == {"detail": "Missing bearer token"}
    assert post(org, token + "x", body).status_code == 401
    # media type parameters are ignored
    ok = post(org, token, body, {"Content-Type": "application/x-protobuf; charset=binary"})
    assert ok.status_code == 200


def test_http_gzip_request_and_bomb(org: Org, token: str) -> None:
    body = heartbeat(uuid.uuid4().bytes)
    ok = post(org, token, gzip.compress(body), {"Content-Encoding": "gzip"})
    assert ok.status_code == 200
    assert not opamp_pb2.ServerToAgent.FromString(ok.content).HasField("error_response")
    # 64 MiB of zeros compress to ~64 KiB: the limit applies after decompression.
    bomb = gzip.compress(bytes(64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 200_000
    assert post(org, token, bomb, {"Content-Encoding": "gzip"}).status_code == 413
    assert post(org, token, b"not gzip", {"Content-Encoding": "gzip"}).status_code == 400
    still_serving(org, token)


def test_http_oversized_body_and_header(org: Org, token: str) -> None:
    big = opamp_pb2.AgentToServer(
        instance_uid=uuid.uuid4().bytes,
        capabilities=1,
        custom_message=opamp_pb2.CustomMessage(capability="x", data=bytes(5 * 1024 * 1024)),
    ).SerializeToString()
    assert post(org, token, big).status_code == 413
    huge_header = post(org, token, heartbeat(uuid.uuid4().bytes), {"X-Junk": "a" * 200_000})
    assert 400 <= huge_header.status_code < 500
    still_serving(org, token)


def test_http_reply_gzipped_only_when_asked(org: Org) -> None:
    gw = org.register()
    big_yaml = (
        "receivers:\n  otlp:\n    protocols:\n      grpc: {}\nexporters:\n  debug: {}\n"
        "service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n"
        "      exporters: [debug]\n" + "".join(f"# padding line {i}\n" for i in range(200))
    )
    org.admin.put(
        f"/api/v1/gateways/{gw['id']}/remote-config",
        params={"org_id": org.id},
        json={"config_yaml": big_yaml},
    )
    uid = uuid.uuid4().bytes
    caps = 0x1 | 0x2
    msg = opamp_pb2.AgentToServer(instance_uid=uid, capabilities=caps).SerializeToString()
    plain = httpx.post(
        org.server.url + "/v1/opamp",
        content=msg,
        headers={
            **PROTO,
            "Authorization": f"Bearer {gw['opamp_token']}",
            "Accept-Encoding": "identity",
        },
    )
    assert "content-encoding" not in plain.headers
    assert opamp_pb2.ServerToAgent.FromString(plain.content).HasField("remote_config")
    # httpx asks for gzip by default and decodes it transparently
    zipped = httpx.post(
        org.server.url + "/v1/opamp",
        content=msg,
        headers={
            **PROTO,
            "Authorization": f"Bearer {gw['opamp_token']}",
            "Accept-Encoding": "gzip",
        },
    )
    assert zipped.headers["content-encoding"] == "gzip"
    assert opamp_pb2.ServerToAgent.FromString(zipped.content).HasField("remote_config")


async def ws_agent(org: Org) -> WsAgent:
    gw = org.register()
    return await WsAgent(org.server.ws_url + "/v1/opamp", gw["opamp_token"]).connect()


@pytest.mark.parametrize(
    "frame",
    [
        b"\x01" + heartbeat(uuid.uuid4().bytes),
        b"\x00" + os.urandom(40) + b"\xff\xff",
        b"\x00" + heartbeat(bytes(16)),
        b"",
    ],
    ids=["header-1", "random", "zero-uid", "empty"],
)
async def test_ws_bad_frames_get_error_response_and_connection_survives(
    org: Org, frame: bytes
) -> None:
    agent = await ws_agent(org)
    assert agent.ws is not None
    await agent.ws.send(frame)
    reply = await agent.recv()
    assert reply.error_response.type == BAD_REQUEST
    assert not reply.capabilities
    ok = await agent.request(agent.full_state())
    assert not ok.HasField("error_response")
    await agent.close()


async def test_ws_text_frame_closes_1003(org: Org) -> None:
    agent = await ws_agent(org)
    assert agent.ws is not None
    await agent.ws.send("hello")
    with pytest.raises(ConnectionClosed) as info:
        await agent.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1003


async def test_ws_oversized_frame_closes_1009(org: Org) -> None:
    agent = await ws_agent(org)
    assert agent.ws is not None
    with pytest.raises(ConnectionClosed) as info:
        # The server may close while the frame is still being written.
        await agent.ws.send(b"\x00" + bytes(5 * 1024 * 1024))
        await agent.recv(timeout=10)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    other = await ws_agent(org)
    assert not (await other.request(other.full_state())).HasField("error_response")
    await other.close()


async def test_ws_garbage_stream_is_closed_1002(org: Org) -> None:
    agent = await ws_agent(org)
    assert agent.ws is not None
    closed: Any = None
    try:
        for _ in range(20):
            await agent.ws.send(b"\x05garbage")
            await agent.recv()
    except ConnectionClosed as exc:
        closed = exc
    assert closed is not None and closed.rcvd is not None and closed.rcvd.code == 1002


def test_message_sent_before_disconnect_does_not_revive(org: Org) -> None:
    gw = org.register()
    uid = uuid.uuid4().bytes
    # A full state, then the goodbye (seq 3), then a heartbeat built earlier (seq 2).
    for msg in (
        opamp_pb2.AgentToServer(
            instance_uid=uid,
            sequence_num=1,
            capabilities=1,
            agent_description=opamp_pb2.AgentDescription(),
        ),
        opamp_pb2.AgentToServer(
            instance_uid=uid,
            sequence_num=3,
            capabilities=1,
            agent_disconnect=opamp_pb2.AgentDisconnect(),
        ),
        opamp_pb2.AgentToServer(instance_uid=uid, sequence_num=2, capabilities=1),
    ):
        resp = post(org, gw["opamp_token"], msg.SerializeToString())
        assert resp.status_code == 200
        assert not opamp_pb2.ServerToAgent.FromString(resp.content).flags
    import time

    time.sleep(1.2)  # two flush intervals
    assert org.get(f"/api/v1/gateways/{gw['id']}").json()["status"] == "inactive"
    # A newer message is a real reconnect.
    post(org, gw["opamp_token"], heartbeat(uid, seq=4))
    deadline = time.monotonic() + 5
    while org.get(f"/api/v1/gateways/{gw['id']}").json()["status"] != "active":
        assert time.monotonic() < deadline
        time.sleep(0.1)
