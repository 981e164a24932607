"""The lean WebSocket of ``flowgate serve`` (opamp/websocket.py) on the wire, frame by frame.

A raw TCP client does the upgrade and writes frames by hand, so the cases no library client
produces on purpose are covered: fragments with a ping between them, several messages in one
segment, unmasked and reserved-bit frames, a close from the agent, a text frame, and a message
over the size limit. The same cases run against FlowGate served by plain uvicorn
(``websockets-sansio``, no detach), the ASGI path other servers take: both must behave alike.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from flowgate.core.settings import Settings
from flowgate.opamp.proto import opamp_pb2
from tests.support.api import Org, new_org, superuser_client
from tests.support.server import LiveServer
from tests.support.ws_agent import WsAgent

PATH = "/v1/opamp"
LIMIT = Settings.model_fields["opamp_max_message_bytes"].default


@pytest.fixture(scope="module")
def asgi_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """FlowGate under plain uvicorn: its WebSocket never detaches (SQLite)."""
    live = LiveServer(data_dir=tmp_path_factory.mktemp("asgi-ws") / "data", database_url=None)
    live.command = (
        *("-m", "uvicorn", "--factory", "flowgate.serving:create_served_app"),
        *("--host", "127.0.0.1", "--port", str(live.port), "--ws", "websockets-sansio"),
        *("--ws-max-size", str(LIMIT), "--ws-per-message-deflate", "false"),
    )
    live.data_dir.mkdir(parents=True)
    live.cli("db", "upgrade")  # what flowgate serve does before it starts uvicorn
    live.start()
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture(params=["lean", "asgi"])
def org(request: pytest.FixtureRequest, org: Org) -> Org:
    """The test's organisation on ``flowgate serve`` (lean) or on plain uvicorn (asgi)."""
    if request.param == "lean":
        return org
    live: LiveServer = request.getfixturevalue("asgi_server")
    return new_org(live, superuser_client(live))


class RawSocket:
    """A hand-driven client WebSocket: the upgrade, masked frames out, frames in."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, org: Org, token: str) -> RawSocket:
        url = urlsplit(org.server.ws_url)
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {PATH} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    @staticmethod
    def frame(opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True) -> bytes:
        first = (0x80 if fin else 0) | opcode
        n = len(payload)
        if n < 126:
            head = bytes((first, (0x80 if masked else 0) | n))
        elif n < 65536:
            head = struct.pack("!BBH", first, (0x80 if masked else 0) | 126, n)
        else:
            head = struct.pack("!BBQ", first, (0x80 if masked else 0) | 127, n)
        if not masked:
            return head + payload
        mask = os.urandom(4)
        return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))

    async def read_frame(self) -> tuple[int, bytes]:
        first, second = await asyncio.wait_for(self.reader.readexactly(2), 10)
        assert not second & 0x80, "server frames are never masked"
        n = second & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif n == 127:
            (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
        assert first & 0x80, "the server does not fragment"
        return first & 0x0F, await self.reader.readexactly(n)

    async def read_close_code(self) -> int:
        while True:
            opcode, payload = await self.read_frame()
            if opcode == 0x8:
                return int(struct.unpack("!H", payload[:2])[0])

    async def closed_by_server(self) -> bool:
        return await asyncio.wait_for(self.reader.read(1), 15) == b""

    def close(self) -> None:
        self.writer.close()


def message(_agent: WsAgent, msg: opamp_pb2.AgentToServer) -> bytes:
    return b"\x00" + msg.SerializeToString()


def reply_of(payload: bytes) -> opamp_pb2.ServerToAgent:
    assert payload[0] == 0, "OpAMP WebSocket header"
    reply = opamp_pb2.ServerToAgent()
    reply.ParseFromString(payload[1:])
    return reply


async def test_fragments_with_a_ping_between_them_make_one_message(org: Org) -> None:
    gw = org.register()
    agent = WsAgent("", None)
    sock = await RawSocket.open(org, gw["opamp_token"])
    try:
        data = message(agent, agent.full_state())
        third = len(data) // 3
        sock.writer.write(
            sock.frame(0x2, data[:third], fin=False)
            + sock.frame(0x9, b"are-you-there")  # a ping between fragments is allowed
            + sock.frame(0x0, data[third : 2 * third], fin=False)
            + sock.frame(0x0, data[2 * third :])
        )
        opcode, payload = await sock.read_frame()
        assert (opcode, payload) == (0xA, b"are-you-there")
        opcode, payload = await sock.read_frame()
        assert opcode == 0x2
        reply = reply_of(payload)
        assert reply.instance_uid == agent.uid
        assert not reply.HasField("error_response")
    finally:
        sock.close()


async def test_messages_in_one_segment_are_answered_in_order(org: Org) -> None:
    gw = org.register()
    agent = WsAgent("", None)
    sock = await RawSocket.open(org, gw["opamp_token"])
    try:
        first = agent.full_state()
        beats = [agent.message() for _ in range(3)]
        sock.writer.write(b"".join(sock.frame(0x2, message(agent, m)) for m in [first, *beats]))
        for i in range(4):
            opcode, payload = await sock.read_frame()
            assert opcode == 0x2
            reply = reply_of(payload)
            assert reply.instance_uid == agent.uid
            assert not reply.HasField("error_response"), reply.error_response
            if i:  # handled out of order, or side by side, a heartbeat would meet an agent not
                # yet loaded, or a sequence gap, and be asked for the full state again
                assert not reply.flags & opamp_pb2.ServerToAgentFlags_ReportFullState
    finally:
        sock.close()


async def test_unmasked_and_reserved_bit_frames_close_with_1002(org: Org) -> None:
    gw = org.register()
    agent = WsAgent("", None)
    for bad in (
        RawSocket.frame(0x2, message(agent, agent.full_state()), masked=False),
        bytes((0x80 | 0x40 | 0x2, 0x80 | 1)) + b"\0\0\0\0" + b"\0",  # RSV1 without deflate
        RawSocket.frame(0x3, b"x"),  # a reserved opcode
        RawSocket.frame(0x0, b"x"),  # a continuation of nothing
    ):
        sock = await RawSocket.open(org, gw["opamp_token"])
        try:
            sock.writer.write(bad)
            assert await sock.read_close_code() == 1002
            assert await sock.closed_by_server()
        finally:
            sock.close()


async def test_a_close_from_the_agent_is_echoed_and_the_gateway_goes_offline(org: Org) -> None:
    gw = org.register()
    agent = WsAgent("", None)
    sock = await RawSocket.open(org, gw["opamp_token"])
    try:
        sock.writer.write(sock.frame(0x2, message(agent, agent.full_state())))
        assert (await sock.read_frame())[0] == 0x2
        sock.writer.write(sock.frame(0x8, struct.pack("!H", 1000) + b"bye"))
        assert await sock.read_close_code() == 1000
        assert await sock.closed_by_server()
    finally:
        sock.close()
    for _ in range(100):
        if org.get(f"/api/v1/gateways/{gw['id']}/status").json()["status"] == "inactive":
            break
        await asyncio.sleep(0.1)
    assert org.get(f"/api/v1/gateways/{gw['id']}/status").json()["status"] == "inactive"


async def test_text_frames_close_with_1003_and_oversized_messages_with_1009(org: Org) -> None:
    gw = org.register()
    sock = await RawSocket.open(org, gw["opamp_token"])
    try:
        sock.writer.write(sock.frame(0x1, b"hello"))
        assert await sock.read_close_code() == 1003
    finally:
        sock.close()
    limit = LIMIT
    sock = await RawSocket.open(org, gw["opamp_token"])
    try:
        # Only the header of the oversized frame is sent: the server refuses it on its length.
        sock.writer.write(struct.pack("!BBQ", 0x82, 0x80 | 127, int(limit) + 1) + b"\0\0\0\0")
        assert await sock.read_close_code() == 1009
        assert await sock.closed_by_server()
    finally:
        sock.close()


async def test_a_silent_agent_is_closed_with_1001_and_a_stopping_server_says_1012(
    make_server: Any,
) -> None:
    live: LiveServer = make_server(
        FLOWGATE_OPAMP_HEARTBEAT_INTERVAL_SECONDS="1", FLOWGATE_OPAMP_MISSED_HEARTBEATS="2"
    )
    org = new_org(live, superuser_client(live))
    gw = org.register()
    agent = WsAgent("", None)
    silent = await RawSocket.open(org, gw["opamp_token"])
    try:
        silent.writer.write(silent.frame(0x2, message(agent, agent.full_state())))
        assert (await silent.read_frame())[0] == 0x2
        # Nothing more for two heartbeat intervals: the server gives the agent up.
        assert await silent.read_close_code() == 1001
    finally:
        silent.close()
    other = WsAgent("", None)
    sock = await RawSocket.open(org, org.register()["opamp_token"])
    try:
        sock.writer.write(sock.frame(0x2, message(other, other.full_state())))
        assert (await sock.read_frame())[0] == 0x2
        await asyncio.to_thread(live.stop)
        assert await sock.read_close_code() == 1012  # service restart: come back later
    finally:
        sock.close()
