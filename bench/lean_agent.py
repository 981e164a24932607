"""A lean OpAMP WebSocket agent for benchmarks: RFC 6455 by hand on an asyncio protocol.

The ``websockets`` client costs the load generator 100-200 µs of CPU per message (a task per
connection, its frame assembler and futures). On a two-core machine that CPU is taken from the
server being measured, so a fan-out of 10k agents measures the generator as much as FlowGate.
This agent does what :mod:`flowgate.opamp.websocket` does on the server side, the other way
round: it sends the upgrade request, checks ``Sec-WebSocket-Accept``, masks what it sends with a
random key per frame (as RFC 6455 requires of a client), answers pings and the close handshake,
and hands each complete binary message to a callback. Fragmented messages are reassembled.

It is a real WebSocket client speaking real OpAMP frames (the ``0x00`` header, then an
``AgentToServer``); only the generator's overhead is gone.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
from collections.abc import Callable

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - the pure-Python fallback
    from websockets.utils import apply_mask

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_MESSAGE = 4 * 1024 * 1024


class HandshakeFailed(Exception):
    """The server did not switch protocols (the status line says why)."""


def frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    key = os.urandom(4)
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, 0x80 | size))
    elif size < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    return head + key + apply_mask(payload, key)


class LeanClient(asyncio.Protocol):
    """One WebSocket connection. ``opened`` resolves once the server switched protocols (or
    fails with why not); ``closed`` resolves when the connection is gone. Every binary message
    goes to ``on_message``; call :meth:`send` to write one."""

    def __init__(self, host: str, path: str, headers: dict[str, str]) -> None:
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.on_message: Callable[[bytes], None] = lambda _: None
        self._key = base64.b64encode(os.urandom(16))
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {self._key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            + "\r\n"
        ).encode()
        self._buffer = b""
        self._upgraded = False
        self._fragments: list[bytes] | None = None
        self._transport: asyncio.Transport | None = None

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._upgraded and not self._handshake():
            return
        self._frames()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed before the upgrade"))
        if not self.closed.done():
            self.closed.set_result(None)

    # -- sending -------------------------------------------------------------------------------
    def send(self, payload: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(frame(BINARY, payload))

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # -- receiving -----------------------------------------------------------------------------
    def _handshake(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > 16384:
                self._give_up(HandshakeFailed("response head too long"))
            return False
        head, self._buffer = self._buffer[:end].decode("latin-1"), self._buffer[end + 4 :]
        status, *lines = head.split("\r\n")
        fields = {}
        for line in lines:
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.strip()
        accept = hashlib.sha1(self._key + GUID, usedforsecurity=False).digest()
        expected = base64.b64encode(accept).decode()
        if status.split(" ", 2)[1:2] != ["101"]:
            self._give_up(HandshakeFailed(status))
            return False
        if fields.get("sec-websocket-accept") != expected:
            self._give_up(HandshakeFailed("wrong Sec-WebSocket-Accept"))
            return False
        self._upgraded = True
        self.opened.set_result(None)
        return True

    def _give_up(self, exc: Exception) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc)
        self.abort()

    def _frames(self) -> None:
        buf = self._buffer
        while len(buf) >= 2:
            first, second = buf[0], buf[1]
            if second & 0x80:
                self._give_up(ConnectionError("server frames must not be masked"))
                return
            length, offset = second & 0x7F, 2
            if length == 126:
                if len(buf) < 4:
                    break
                length, offset = int.from_bytes(buf[2:4], "big"), 4
            elif length == 127:
                if len(buf) < 10:
                    break
                length, offset = int.from_bytes(buf[2:10], "big"), 10
            if length > MAX_MESSAGE:
                self._give_up(ConnectionError("message too large"))
                return
            end = offset + length
            if len(buf) < end:
                break
            payload, buf = buf[offset:end], buf[end:]
            self._frame(first & 0x0F, bool(first & 0x80), payload)
        self._buffer = buf

    def _frame(self, opcode: int, fin: bool, payload: bytes) -> None:
        assert self._transport is not None
        if opcode == PING:
            self._transport.write(frame(PONG, payload))
        elif opcode == CLOSE:
            if not self._transport.is_closing():
                self._transport.write(frame(CLOSE, payload[:2]))
                self._transport.close()
        elif opcode == CONTINUATION and self._fragments is not None:
            self._fragments.append(payload)
            if fin:
                message, self._fragments = b"".join(self._fragments), None
                self.on_message(message)
        elif opcode in (BINARY, TEXT):
            if fin:
                self.on_message(payload)
            else:
                self._fragments = [payload]


async def connect(host: str, port: int, path: str, headers: dict[str, str]) -> LeanClient:
    """Open a WebSocket to ``host:port`` ``path``; raises when the upgrade is refused."""
    loop = asyncio.get_running_loop()
    client = LeanClient(f"{host}:{port}", path, headers)
    await loop.create_connection(lambda: client, host, port)
    await client.opened
    return client
