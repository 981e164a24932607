"""A lean WebSocket for OpAMP: after the handshake, frames go straight to a handler.

uvicorn's WebSocket layers keep, for each connection's whole life, the upgrade request and
response with their headers, an ASGI scope, an ``asyncio.Queue``, an ``asyncio.Event``, a
``websockets`` protocol object with its parser generator, and the ASGI task with every frame of
the application's call stack: about 20 KiB per idle socket, the whole of issue #10's memory
budget. Each message then passes through a parser generator, an ASGI event dict, the queue, a
pause and a resume of the socket's reads, and another event dict on the way out.

Here the handshake stays uvicorn's (:class:`UpgradeProtocol` is uvicorn's ``websockets-sansio``
protocol, used as ``flowgate serve``'s ``ws`` class), so every ASGI layer, the authentication
and the refusals of an upgrade are unchanged. An application that finds
``flowgate.websocket.detach`` in the scope's extensions may accept with a handler
(``{"type": "websocket.accept", "flowgate.handler": handler}``): the 101 is sent, the transport
is handed to a :class:`LeanWebSocket`, and the ASGI call returns, freeing its task and scope.
From then on :class:`LeanWebSocket` parses RFC 6455 frames itself (client frames masked, no
extensions, fragments joined, control frames answered) and runs ``handler.received`` for one
message at a time, in the context the handler was accepted in. Handlers start at most
:data:`HANDLERS_PER_TURN` per turn of the event loop over all sockets (:class:`_Pacer`), so a
storm of messages never holds the loop for seconds. Replies are written
synchronously, so a reply and a push never interleave inside a frame.

Applications that do not detach, and the ASGI test clients, get uvicorn's behaviour unchanged.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import logging
import struct
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - the C extension is in every wheel we install
    from websockets.utils import apply_mask

log = logging.getLogger(__name__)

#: Scope extension offered by :class:`UpgradeProtocol`; key of the handler in the accept.
DETACH = "flowgate.websocket.detach"
HANDLER = "flowgate.handler"

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
#: How long a close we sent waits for the peer's close before the socket is dropped.
CLOSE_TIMEOUT = 10.0
#: Unparsed input kept while a message is being handled, before reading is paused.
READ_HIGH_WATER = 256 * 1024
#: Unsent output a peer that does not read may leave us holding before it is dropped.
WRITE_LIMIT = 8 * 1024 * 1024
#: Message handlers started per turn of the event loop, over all sockets; see :class:`_Pacer`.
HANDLERS_PER_TURN = 64


class Handler(Protocol):
    """What a detached WebSocket calls. ``received`` runs as a task, one message at a time."""

    context: contextvars.Context
    idle_timeout: float | None

    def attached(self, socket: LeanWebSocket) -> None: ...

    def received(self, data: bytes, text: bool) -> Coroutine[Any, Any, None]: ...

    def idle(self) -> None: ...

    def lost(self) -> None: ...


class _Pacer:
    """Starts the sockets' message handlers in arrival order, at most
    :data:`HANDLERS_PER_TURN` per turn of the event loop; the rest wait for the next turn.

    10,000 agents answering a deployment at once put 10,000 messages in one read of the
    sockets. Started together, their handlers would all run in one turn of the loop (about two
    seconds), and nothing else scheduled on the loop (the rollout reports' flush, the presence
    flush, API requests, timers) would run until the last one is done. Paced, a turn starts
    at most two budgets of handlers (the sockets' reads spend one, :meth:`_turn` the next), a
    few tens of milliseconds of work, so the rest of the server keeps its turns during a storm
    and the database writes the storm causes run alongside it instead of after it. Each socket
    still handles one message at a time, in order."""

    __slots__ = ("__weakref__", "_armed", "_loop", "_queue", "_started")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: collections.deque[Callable[[], None]] = collections.deque()
        self._started = 0
        self._armed = False

    def start(self, begin: Callable[[], None]) -> None:
        if self._started < HANDLERS_PER_TURN and not self._queue:
            self._started += 1
            begin()
        else:
            self._queue.append(begin)
        if not self._armed:
            self._armed = True
            self._loop.call_soon(self._turn)

    def _turn(self) -> None:
        """Once per turn while there is work: a new budget, spent on what waited first."""
        self._armed = False
        self._started = 0
        queue = self._queue
        while queue and self._started < HANDLERS_PER_TURN:
            self._started += 1
            queue.popleft()()
        if queue or self._started:
            self._armed = True
            self._loop.call_soon(self._turn)


_PACERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pacer] = weakref.WeakKeyDictionary()


def _pacer(loop: asyncio.AbstractEventLoop) -> _Pacer:
    """The loop's one pacer, shared by all its sockets."""
    pacer = _PACERS.get(loop)
    if pacer is None:
        pacer = _PACERS[loop] = _Pacer(loop)
    return pacer


class LeanWebSocket(asyncio.Protocol):
    """One detached server-side WebSocket (see the module docstring)."""

    __slots__ = (
        "_buffer",
        "_busy",
        "_close_sent",
        "_close_timer",
        "_connections",
        "_fragments",
        "_fragments_size",
        "_fragments_text",
        "_handler",
        "_idle",
        "_idle_timer",
        "_loop",
        "_lost",
        "_max_size",
        "_pacer",
        "_read_paused",
        "_since",
        "_tasks",
        "transport",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        handler: Handler,
        *,
        max_size: int,
        idle: float | None,
        connections: set[Any],
        tasks: set[asyncio.Task[None]],
    ) -> None:
        self.transport = transport
        self._handler = handler
        self._max_size = max_size
        self._connections = connections
        self._tasks = tasks
        self._loop = asyncio.get_running_loop()
        self._pacer = _pacer(self._loop)
        self._buffer = b""
        self._busy = False
        self._read_paused = False
        self._close_sent = False
        self._close_timer: asyncio.TimerHandle | None = None
        self._lost = False
        self._fragments: list[bytes] | None = None
        self._fragments_size = 0
        self._fragments_text = False
        # Idle deadline: ``idle`` seconds of waiting for a message (not of handling one), with
        # one timer for the socket's life that re-arms itself lazily.
        self._idle = idle
        self._since: float | None = self._loop.time()
        self._idle_timer = (
            self._loop.call_at(self._since + idle, self._check_idle) if idle else None
        )
        connections.add(self)
        handler.attached(self)

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        self._buffer = self._buffer + data if self._buffer else data
        if not self._busy:
            self._parse()
        elif len(self._buffer) > READ_HIGH_WATER and not self._read_paused:
            self._read_paused = True
            self.transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._connections.discard(self)
        for timer in (self._idle_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        self._buffer = b""
        self._handler.lost()

    # -- sending -------------------------------------------------------------------------------
    def send(self, payload: bytes, opcode: int = BINARY) -> bool:
        """Write one unfragmented message; False when the socket is closing or gone.

        Writes are never paused (replies are small): a peer that stops reading is dropped
        once :data:`WRITE_LIMIT` waits for it."""
        if self._close_sent or self._lost or self.transport.is_closing():
            return False
        if self.transport.get_write_buffer_size() > WRITE_LIMIT:
            log.warning("websocket peer stopped reading; dropping the connection")
            self.transport.abort()
            return False
        self.transport.write(_frame_header(opcode, len(payload)) + payload)
        return True

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (idempotent); the socket ends when the peer answers,
        or after :data:`CLOSE_TIMEOUT`."""
        if self._close_sent or self._lost:
            return
        self._write_close(code, reason)
        self._close_timer = self._loop.call_later(CLOSE_TIMEOUT, self.transport.close)
        if self._read_paused:  # read on until the peer's close arrives
            self._read_paused = False
            self.transport.resume_reading()

    def shutdown(self) -> None:
        """uvicorn's server shutdown: tell the agent we are going away (1012) and end."""
        if not self._close_sent and not self._lost:
            self._write_close(1012, "")
        self.transport.close()

    def _write_close(self, code: int, reason: str) -> None:
        self._close_sent = True
        body = struct.pack("!H", code) + reason.encode()[:123]
        with contextlib.suppress(OSError, RuntimeError):  # closing: harmless
            self.transport.write(_frame_header(CLOSE, len(body)) + body)

    def _fail(self, code: int, reason: str) -> None:
        """A protocol violation: close with ``code`` and stop reading what follows."""
        self._buffer = b""
        if not self._close_sent and not self._lost:
            self._write_close(code, reason)
        self.transport.close()

    # -- receiving -----------------------------------------------------------------------------
    def _parse(self) -> None:
        """Handle every complete frame in the buffer, stopping at the first data message (the
        rest waits until its handler is done)."""
        while not self._busy and not self._lost:
            buf = self._buffer
            size = len(buf)
            if size < 2:
                break
            first, second = buf[0], buf[1]
            opcode = first & 0x0F
            length = second & 0x7F
            offset = 2
            if length == 126:
                if size < 4:
                    break
                length = int.from_bytes(buf[2:4], "big")
                offset = 4
            elif length == 127:
                if size < 10:
                    break
                length = int.from_bytes(buf[2:10], "big")
                offset = 10
            if first & 0x70:
                self._fail(1002, "reserved bits must be 0")
                return
            if not second & 0x80:
                self._fail(1002, "client frames must be masked")
                return
            control = opcode >= CLOSE
            if control and (length > 125 or not first & 0x80):
                self._fail(1002, "invalid control frame")
                return
            if not control and self._fragments_size + length > self._max_size:
                self._fail(1009, f"message exceeds {self._max_size} bytes")
                return
            end = offset + 4 + length
            if size < end:
                if self._read_paused:  # a frame larger than the high-water mark: read it
                    self._read_paused = False
                    self.transport.resume_reading()
                break
            payload = apply_mask(buf[offset + 4 : end], buf[offset : offset + 4])
            self._buffer = buf[end:]
            if control:
                self._control(opcode, payload)
            else:
                self._data(opcode, bool(first & 0x80), payload)
        if not self._busy and self._read_paused and not self._lost:
            self._read_paused = False
            self.transport.resume_reading()

    def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == PING:
            if not self._close_sent:
                with contextlib.suppress(OSError, RuntimeError):  # closing: harmless
                    self.transport.write(_frame_header(PONG, len(payload)) + payload)
        elif opcode == CLOSE:
            if not self._close_sent:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1000
                self._write_close(code if _echoable(code) else 1000, "")
            self._buffer = b""
            self.transport.close()
        elif opcode != PONG:
            self._fail(1002, f"unknown opcode {opcode}")

    def _data(self, opcode: int, fin: bool, payload: bytes) -> None:
        if opcode == CONTINUATION:
            if self._fragments is None:
                self._fail(1002, "continuation without a message")
                return
            self._fragments.append(payload)
            self._fragments_size += len(payload)
            if not fin:
                return
            payload = b"".join(self._fragments)
            text = self._fragments_text
            self._fragments, self._fragments_size = None, 0
        elif opcode in (TEXT, BINARY):
            if self._fragments is not None:
                self._fail(1002, "new message inside a fragmented one")
                return
            text = opcode == TEXT
            if not fin:
                self._fragments, self._fragments_size = [payload], len(payload)
                self._fragments_text = text
                return
        else:
            self._fail(1002, f"unknown opcode {opcode}")
            return
        if self._close_sent:
            return  # closing: discard, keep reading until the peer's close
        self._busy = True
        self._since = None
        self._pacer.start(lambda: self._begin(payload, text))

    def _begin(self, payload: bytes, text: bool) -> None:
        task: asyncio.Task[None] = self._loop.create_task(
            self._handler.received(payload, text), context=self._handler.context
        )
        self._tasks.add(task)
        task.add_done_callback(self._handled)

    def _handled(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("websocket handler failed", exc_info=task.exception())
            self._fail(1011, "internal error")
            return
        self._busy = False
        self._since = self._loop.time()
        if self._buffer and not self._lost:
            self._parse()

    def _check_idle(self) -> None:
        assert self._idle is not None
        self._idle_timer = None
        if self._lost or self._close_sent:
            return
        due = next_idle_check(self._loop.time(), self._since, self._idle)
        if due is None:
            self._handler.idle()
        else:
            self._idle_timer = self._loop.call_at(due, self._check_idle)


class UpgradeProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol, offering the detach of a lean WebSocket.

    ``flowgate serve`` uses it as its ``ws`` class. Without a handler in the accept it is
    uvicorn's protocol, unchanged.
    """

    detached = False

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        if getattr(self, "scope", None) is not None and self.handshake_initiated:
            # The ASGI task is created but has not run yet: the scope is still ours to extend.
            self.scope["extensions"][DETACH] = {}

    async def send(self, message: Any) -> None:
        handler = message.get(HANDLER) if message["type"] == "websocket.accept" else None
        if handler is None:
            await super().send(message)
            return
        message = {k: v for k, v in message.items() if k != HANDLER}
        await super().send(message)
        if not self.handshake_complete or self.disconnected or self.transport.is_closing():
            raise ClientDisconnected()  # the agent left during the handshake: nothing to log
        self._detach(handler)

    def _detach(self, handler: Handler) -> None:
        lean = LeanWebSocket(
            self.transport,
            handler,
            max_size=self.config.ws_max_size,
            idle=handler.idle_timeout,
            connections=self.connections,
            tasks=self.tasks,
        )
        self.connections.discard(self)
        self.detached = True
        self.transport.set_protocol(lean)
        # A client that sent frames before it saw the 101 (clients wait for it): what uvicorn
        # has buffered cannot be handed over reliably, so the connection is refused as broken.
        leftover = bytes(self.conn.reader.buffer)
        if leftover or not self.queue.empty():
            log.warning("websocket data arrived before the handshake ended; closing")
            lean._fail(1002, "data before the handshake completed")
        # Drop what uvicorn kept for the connection's life.
        self.scope = None  # type: ignore[assignment]
        self.request = None  # type: ignore[assignment]
        self.response = None  # type: ignore[assignment]

    async def run_asgi(self) -> None:
        """uvicorn's ``run_asgi``, except that a detached socket outlives the ASGI call."""
        try:
            result = await self.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass
        except BaseException:
            if self.detached:
                log.exception("websocket application failed after detaching")
                return
            self.logger.exception("Exception in ASGI application\n")
            self.send_500_response()
        else:
            if self.detached:
                return
            if not self.handshake_complete:
                self.logger.error("ASGI callable returned without completing handshake.")
                self.send_500_response()
            elif result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
        if not self.detached and self.close_timer is None:
            self.transport.close()


def next_idle_check(now: float, since: float | None, idle: float) -> float | None:
    """When an idle timer that fired at ``now`` should look again, or None when the wait
    that began at ``since`` (None: a message is being handled) has lasted ``idle`` seconds.
    One timer per connection re-arms itself this way instead of a timer per message."""
    if since is None:  # handling a message: the next wait starts later
        return now + idle
    if now < since + idle:
        return since + idle
    return None


def _frame_header(opcode: int, length: int) -> bytes:
    if length < 126:
        return bytes((0x80 | opcode, length))
    if length < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, length)
    return struct.pack("!BBQ", 0x80 | opcode, 127, length)


def _echoable(code: int) -> bool:
    """Whether a close code the peer sent may be sent back (RFC 6455 section 7.4)."""
    return (1000 <= code <= 1014 and code not in (1004, 1005, 1006)) or 3000 <= code <= 4999
