"""OpAMP over WebSocket and plain HTTP, as one raw ASGI endpoint per path.

Every HTTP agent polls this route, so it bypasses FastAPI entirely: headers are checked, the
body is read with a size limit (after gunzip too), decoded, handed to
:class:`~flowgate.opamp.agents.OpAMPAgents`, and the reply is written as protobuf.

Answers follow the spec and opamp-go: 401 before any upgrade for bad credentials, 503 with
``Retry-After`` when overloaded or when the database cannot be reached, 413 / close 1009 for
oversized messages, 400 for undecodable HTTP bodies, 415 for a wrong ``Content-Type``; on a
WebSocket a bad frame gets an ``error_response`` (BAD_REQUEST) and, after repeated garbage, close
1002; text frames close 1003; a message that needs the unreachable database gets UNAVAILABLE.
Plain-HTTP error answers (and refused upgrades) carry ``{"detail": "..."}`` as JSON, like the
REST API.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import gzip
import json
import logging
import math
import random
import zlib
from collections.abc import Callable, Mapping

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowgate import selftelemetry
from flowgate.core import audit, outage
from flowgate.core.errors import DomainError, NotAuthenticated
from flowgate.core.logging import UPGRADE_REFUSED
from flowgate.core.security import bearer_token
from flowgate.opamp import core, websocket
from flowgate.opamp.agents import Connection, OpAMPAgents, Transport
from flowgate.opamp.auth import Authenticator, Busy, Credential, RetryLater
from flowgate.opamp.proto import opamp_pb2

log = logging.getLogger(__name__)

PROTOBUF = b"application/x-protobuf"
OVERLOADED = "server is overloaded; retry later"
MAX_BAD_FRAMES = 10
GZIP_MIN_BYTES = 512


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in scope.get("headers", ())}


def _media_type(value: bytes | None) -> bytes:
    return (value or b"").split(b";", 1)[0].strip().lower()


def _accepts_gzip(value: bytes | None) -> bool:
    for part in (value or b"").decode("latin-1").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() in {"gzip", "*"}:
            q = 1.0
            for param in params.split(";"):
                key, _, val = param.strip().partition("=")
                if key.strip() == "q":
                    try:
                        q = float(val)
                    except ValueError:
                        q = 0.0
            return q > 0
    return False


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress with a hard output limit so a gzip bomb costs at most ``limit`` bytes."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error:
        raise core.ProtocolError("request body is not valid gzip") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise core.MessageTooLargeError("decompressed message exceeds the size limit")
    if not inflater.eof:
        raise core.ProtocolError("request body is truncated gzip")
    return out


class OpAMPEndpoint:
    """The ASGI app serving one OpAMP path (both transports)."""

    def __init__(self, agents: OpAMPAgents, auth: Authenticator, path: str) -> None:
        self.agents = agents
        self.auth = auth
        self.settings = agents.settings
        self.path = path
        public = self.settings.resolved_public_url
        self.http_endpoint = public + path
        self.ws_endpoint = "ws" + public.removeprefix("http") + path

    def _retry_after(self, hint: float | None = None) -> int:
        """Seconds an agent told to come back later should wait (``Retry-After``, or the
        ``retry_info`` of UNAVAILABLE): ``hint`` (how long the refusing queue needs, in whole
        seconds, at least 1) when there is one and it is shorter than
        ``opamp_retry_after_seconds``, else that setting; give or take up to
        ``opamp_retry_jitter`` of it, uniformly in whole seconds (at least 1; the mean stays
        the base). Without the jitter, every agent refused in the same second of a storm
        comes back in the same second."""
        base = self.settings.opamp_retry_after_seconds
        if hint is not None:
            base = min(base, max(1, math.ceil(hint)))
        spread = int(base * self.settings.opamp_retry_jitter)
        return max(1, base + random.randint(-spread, spread))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        audit.client_address.set(scope["client"][0] if scope.get("client") else None)
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        else:
            # FlowGate's own traces: a span only for a sampled message (a no-op when off).
            with selftelemetry.opamp_span("opamp-http"):
                await self._http(scope, receive, send)

    # -- plain HTTP ----------------------------------------------------------------------------
    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _headers(scope)
        if scope["method"] != "POST":
            await _plain(
                send,
                405,
                "OpAMP accepts POST (plain HTTP) or a WebSocket upgrade",
                [(b"allow", b"POST")],
            )
            return
        try:
            cred = await self.auth.authenticate(
                bearer_token(_decode(headers.get(b"authorization")))
            )
        except DomainError as exc:
            log.info("opamp http auth failed")
            await _plain(send, 401, exc.detail, [(b"www-authenticate", b"Bearer")])
            return
        except Exception as exc:  # Busy, or the database is unavailable
            await self._retry_later(send, _auth_unavailable(exc))
            return
        if not self.agents.throttle.allow():
            await self._overloaded(send)
            return
        if _media_type(headers.get(b"content-type")) != PROTOBUF:
            await _plain(send, 415, "Content-Type must be application/x-protobuf")
            return
        limit = self.settings.opamp_max_message_bytes
        try:
            length = int(headers.get(b"content-length") or 0)
        except ValueError:
            await _plain(send, 400, "invalid Content-Length")
            return
        if length > limit:
            await _plain(send, 413, "message exceeds the size limit")
            return
        body = await _read_body(receive, limit)
        if body is None:
            await _plain(send, 413, "message exceeds the size limit")
            return
        try:
            encoding = _media_type(headers.get(b"content-encoding"))
            if encoding == b"gzip":
                body = _gunzip(body, limit)
            elif encoding not in (b"", b"identity"):
                await _plain(send, 415, "Content-Encoding must be gzip or identity")
                return
            msg = core.decode_agent_message(body, max_bytes=limit)
        except core.MessageTooLargeError as exc:
            await _plain(send, 413, str(exc))
            return
        except core.ProtocolError as exc:
            await _plain(send, 400, str(exc))
            return
        try:
            reply = await self._process(msg, cred, "opamp-http", self.http_endpoint)
        except (Busy, RetryLater) as exc:
            await self._retry_later(send, OVERLOADED, exc.seconds)
            return
        except NotAuthenticated as exc:
            # E.g. a new agent whose registration token has no uses left.
            await _plain(send, 401, exc.detail, [(b"www-authenticate", b"Bearer")])
            return
        except _DatabaseUnavailable:
            await self._retry_later(send, outage.DETAIL)
            return
        payload = reply.SerializeToString()
        extra: list[tuple[bytes, bytes]] = []
        if len(payload) >= GZIP_MIN_BYTES and _accepts_gzip(headers.get(b"accept-encoding")):
            payload = gzip.compress(payload, compresslevel=5)
            extra.append((b"content-encoding", b"gzip"))
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", PROTOBUF),
                    (b"content-length", str(len(payload)).encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    async def _overloaded(self, send: Send) -> None:
        await self._retry_later(send, OVERLOADED)

    async def _retry_later(self, send: Send, detail: str, hint: float | None = None) -> None:
        retry = str(self._retry_after(hint)).encode()
        await _plain(send, 503, detail, [(b"retry-after", retry)])

    async def _process(
        self,
        msg: opamp_pb2.AgentToServer,
        cred: Credential,
        transport: Transport,
        endpoint: str,
        connection: Connection | None = None,
    ) -> opamp_pb2.ServerToAgent:
        try:
            return await self.agents.handle(msg, cred, transport, endpoint, connection)
        except (Busy, RetryLater) as exc:
            if connection is None:
                raise  # plain HTTP answers 503 + Retry-After
            return core.unavailable_reply(bytes(msg.instance_uid), self._retry_after(exc.seconds))
        except NotAuthenticated as exc:
            if connection is None:
                raise  # plain HTTP answers 401
            await connection.close(1008)  # the credential stopped working: the agent must re-enrol
            return core.error_reply(bytes(msg.instance_uid), exc.detail)
        except DomainError as exc:
            return core.error_reply(bytes(msg.instance_uid), exc.detail)
        except Exception as exc:
            if not outage.is_unavailable(exc):
                log.exception("opamp message processing failed")
                return core.error_reply(
                    bytes(msg.instance_uid), "internal error", core.UNKNOWN_ERROR
                )
            # An agent this replica must load (or enrol) while the database is away: ask it to
            # come back, the way overload does. Logged once per outage by the tracker.
            outage.tracker.failed(exc, where=transport)
            if connection is None:
                raise _DatabaseUnavailable() from exc  # plain HTTP answers 503 + Retry-After
            reply = core.unavailable_reply(bytes(msg.instance_uid), self._retry_after())
            reply.error_response.error_message = outage.DETAIL
            return reply

    # -- WebSocket -----------------------------------------------------------------------------
    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        # Read what is needed and keep no header dict: this frame lives as long as the socket.
        authorization = _headers(scope).get(b"authorization")
        try:
            with selftelemetry.opamp_span("opamp-ws connect"):
                cred = await self.auth.authenticate(bearer_token(_decode(authorization)))
        except DomainError as exc:
            log.info("opamp websocket auth failed")
            await _deny(scope, send, 401, exc.detail, [(b"www-authenticate", b"Bearer")])
            return
        except Exception as exc:  # Busy, or the database is unavailable
            retry = str(self._retry_after()).encode()
            await _deny(scope, send, 503, _auth_unavailable(exc), [(b"retry-after", retry)])
            return
        if self.agents.connections >= self.settings.opamp_max_connections:
            retry = str(self._retry_after()).encode()
            await _deny(
                scope, send, 503, "server is at its connection limit", [(b"retry-after", retry)]
            )
            return
        idle = (
            self.settings.opamp_heartbeat_interval_seconds * self.settings.opamp_missed_heartbeats
        )
        session = _Session(self, cred, idle)
        if websocket.DETACH in scope.get("extensions", {}):
            # flowgate serve: the socket goes on without this ASGI call (opamp/websocket.py).
            await send({"type": "websocket.accept", websocket.HANDLER: session})
            return
        await send({"type": "websocket.accept"})
        session.attach_asgi(send)
        next_event = _IdleReceive(receive, idle)
        try:
            while not session.closed:
                try:
                    event = await next_event()
                except TimeoutError:
                    log.info("opamp websocket idle; closing")
                    await session.close(1001)
                    break
                kind = event["type"]
                if kind == "websocket.disconnect":
                    break
                if kind != "websocket.receive":
                    continue
                data = event.get("bytes")
                if data is None:
                    await session.handle(event.get("text", "").encode(), text=True)
                else:
                    await session.handle(data, text=False)
        except Exception:
            log.exception("opamp websocket failed")
            await session.close(1011)
        finally:
            next_event.close()
            session.lost()


class _Session:
    """One OpAMP WebSocket after its upgrade: decode, answer, push, close, whichever layer
    carries the frames (a detached :class:`~flowgate.opamp.websocket.LeanWebSocket` under
    ``flowgate serve``, uvicorn's ASGI events otherwise).

    On the lean socket, :meth:`received` runs for one message at a time in the context of the
    upgrade (so the client address of the audit log carries over) and writes are synchronous.
    """

    __slots__ = (
        "_asgi_send",
        "_ended",
        "_handling",
        "_socket",
        "bad",
        "closed",
        "connection",
        "context",
        "cred",
        "endpoint",
        "idle_timeout",
        "last_uid",
    )

    def __init__(self, endpoint: OpAMPEndpoint, cred: Credential, idle: float) -> None:
        self.endpoint = endpoint
        self.cred = cred
        self.idle_timeout = idle
        self.bad = 0
        self.last_uid = b""
        # A plain flag, not an asyncio.Event (nobody waits on it; an Event holds a deque,
        # ~0.6 KiB for each of thousands of idle sockets).
        self.closed = False
        self._ended = False
        self._handling = False
        self._asgi_send: Send | None = None
        self._socket: websocket.LeanWebSocket | None = None
        self.context = contextvars.copy_context()
        self.connection = Connection(send=self.send, close=self.close)

    def attach_asgi(self, send: Send) -> None:
        """Carried by uvicorn's ASGI events (the loop in ``OpAMPEndpoint._websocket``)."""
        self._asgi_send = send
        self.endpoint.agents.connections += 1

    def attached(self, socket: websocket.LeanWebSocket) -> None:
        """Carried by a detached lean socket (called when the socket is made)."""
        self._socket = socket
        self.connection.write = self._write
        self.endpoint.agents.connections += 1

    def _write(self, msg: opamp_pb2.ServerToAgent) -> None:
        """Send on the lean socket: synchronous, one whole frame per write."""
        assert self._socket is not None
        if not self.closed and not self._socket.send(core.encode_ws_frame(msg)):
            self.closed = True

    async def send(self, msg: opamp_pb2.ServerToAgent) -> None:
        if self.closed:
            return
        if self._socket is not None:
            self._write(msg)
            return
        frame = core.encode_ws_frame(msg)
        assert self._asgi_send is not None
        try:
            await self._asgi_send({"type": "websocket.send", "bytes": frame})
        except OSError:
            # The agent went away while we answered or pushed (uvicorn raises
            # ClientDisconnected, an OSError): an ordinary end of the connection.
            self.closed = True

    async def close(self, code: int) -> None:
        if self.closed:
            return
        if self._socket is not None:
            self._close_lean(code)
            return
        self.closed = True
        if self._asgi_send is not None:
            with contextlib.suppress(Exception):
                await self._asgi_send({"type": "websocket.close", "code": code})
        self.lost()

    def _close_lean(self, code: int) -> None:
        assert self._socket is not None
        self.closed = True
        self._socket.close(code)
        self.lost()

    async def received(self, data: bytes, text: bool) -> None:
        """The lean socket's call for each message."""
        try:
            await self.handle(data, text)
        except Exception:
            log.exception("opamp websocket failed")
            await self.close(1011)

    async def handle(self, data: bytes, text: bool) -> None:
        """Answer one WebSocket message (closing the connection when it must end).

        An end of the connection noticed meanwhile takes effect after the message: the agent
        this message loads or enrols is then on the connection, and goes offline with it."""
        if self.closed:
            return
        self._handling = True
        try:
            await self._handle(data, text)
        finally:
            self._handling = False
            if self.closed:
                self.lost()

    async def _handle(self, data: bytes, text: bool) -> None:
        if text:  # OpAMP is binary only
            await self.close(1003)
            return
        endpoint = self.endpoint
        try:
            msg = core.decode_agent_message(
                core.parse_ws_frame(data), max_bytes=endpoint.settings.opamp_max_message_bytes
            )
        except core.MessageTooLargeError:
            await self.close(1009)
            return
        except core.ProtocolError as exc:
            self.bad += 1
            if self.bad >= MAX_BAD_FRAMES:
                await self.close(1002)
                return
            await self.connection.deliver(core.error_reply(self.last_uid, str(exc)))
            return
        self.bad = 0
        self.last_uid = bytes(msg.instance_uid)
        if not endpoint.agents.throttle.allow():
            reply = core.unavailable_reply(self.last_uid, endpoint._retry_after())
        else:
            with selftelemetry.opamp_span("opamp-ws"):
                reply = await endpoint._process(
                    msg, self.cred, "opamp-ws", endpoint.ws_endpoint, self.connection
                )
        await self.connection.deliver(reply)

    def idle(self) -> None:
        """No message for ``idle_timeout`` seconds: the agent is gone (close 1001)."""
        log.info("opamp websocket idle; closing")
        if not self.closed and self._socket is not None:
            self._close_lean(1001)

    def lost(self) -> None:
        """The connection ended (either side): its agents are offline. Runs once."""
        self.closed = True
        if self._ended or self._handling:
            return  # once; after the message being handled (see ``handle``)
        self._ended = True
        agents = self.endpoint.agents
        agents.connections -= 1
        agents.connection_closed(self.connection)


class _IdleReceive:
    """``receive()`` that raises ``TimeoutError`` when no event came ``idle`` seconds after it
    was called, with one timer for the connection's whole life.

    ``asyncio.wait_for`` makes a task per message and ``asyncio.timeout`` a timer per message
    (together ~7 % of the server's CPU at a 1 s heartbeat); here a call only notes the loop
    time, and the timer, when it fires before the deadline, re-arms itself for the rest. The
    deadline is as before: ``idle`` seconds after the wait began.
    """

    __slots__ = ("_base", "_expired", "_idle", "_loop", "_receive", "_since", "_task", "_timer")

    def __init__(self, receive: Receive, idle: float) -> None:
        self._receive = receive
        self._idle = idle
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        self._base = task.cancelling()
        self._since: float | None = None  # when the pending wait began; None: not waiting
        self._expired = False
        self._timer = self._loop.call_at(self._loop.time() + idle, self._check)

    async def __call__(self) -> Message:
        self._since = self._loop.time()
        try:
            return await self._receive()
        except asyncio.CancelledError:
            if not self._expired or self._task.uncancel() > self._base:
                raise  # not (only) our deadline: a shutdown, say
            raise TimeoutError from None
        finally:
            self._since = None

    def _check(self) -> None:
        due = websocket.next_idle_check(self._loop.time(), self._since, self._idle)
        if due is not None:
            self._timer = self._loop.call_at(due, self._check)
        else:
            self._expired = True
            self._task.cancel()

    def close(self) -> None:
        self._timer.cancel()


class _DatabaseUnavailable(Exception):
    """Raised by ``_process`` for plain HTTP: the message needs the unreachable database."""


def _auth_unavailable(exc: Exception) -> str:
    """Log why a credential could not be checked (a database outage once per outage, through
    the tracker) and return the ``detail`` of the 503 answer."""
    if isinstance(exc, Busy):
        log.info("opamp request deferred: database work queue is full")
        return OVERLOADED
    if outage.is_unavailable(exc):
        outage.tracker.failed(exc, where="opamp authentication")
        return outage.DETAIL
    log.warning("opamp authentication failed unexpectedly", exc_info=exc)
    return OVERLOADED


def _decode(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _error_body(detail: str) -> bytes:
    return json.dumps({"detail": detail}).encode()


Headers = list[tuple[bytes, bytes]]


def _json_headers(body: bytes, extra: Headers | None) -> Headers:
    return [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]


async def _plain(
    send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """An HTTP error answer: ``{"detail": detail}`` as JSON, like every REST error."""
    body = _error_body(detail)
    await send(
        {"type": "http.response.start", "status": status, "headers": _json_headers(body, headers)}
    )
    await send({"type": "http.response.body", "body": body})


async def _deny(
    scope: Scope, send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]]
) -> None:
    """Refuse an upgrade with a real HTTP status (ASGI denial response), else close 1008."""
    if "websocket.http.response" in scope.get("extensions", {}):
        UPGRADE_REFUSED.set(True)
        body = _error_body(detail)
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": _json_headers(body, headers),
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008})


class OpAMPRouter:
    """Outermost ASGI layer: OpAMP paths go to :class:`OpAMPEndpoint`, the rest to FastAPI."""

    def __init__(self, app: ASGIApp, endpoints: Mapping[str, ASGIApp]) -> None:
        self.app = app
        self.endpoints = endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            endpoint = self.endpoints.get(scope["path"].rstrip("/") or "/")
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)


def mount_opamp(
    app: FastAPI, agents: OpAMPAgents, auth: Authenticator, paths: tuple[str, ...]
) -> None:
    endpoints = {path: OpAMPEndpoint(agents, auth, path) for path in paths}
    app.add_middleware(OpAMPRouter, endpoints=endpoints)
    app.state.opamp_endpoints = endpoints  # for opamp_in_front


def opamp_in_front(app: FastAPI, guard: Callable[[ASGIApp], ASGIApp]) -> ASGIApp:
    """``app`` with its OpAMP endpoints routed before FastAPI's own middleware stack.

    Inside FastAPI an OpAMP request passes ~10 ASGI layers (Starlette's error and exception
    layers, FastAPI's body-limit and telemetry layers, ...) that do nothing for it, and each
    costs CPU per plain-HTTP poll and a coroutine frame held for a WebSocket's whole life.
    ``guard`` wraps each endpoint in the layers that do act on OpAMP paths (security headers,
    header-size limit), so answers stay the same. Other paths go to ``app`` unchanged (its
    inner router still serves OpAMP paths for callers that use ``app`` directly).
    """
    endpoints: dict[str, OpAMPEndpoint] | None = getattr(app.state, "opamp_endpoints", None)
    if not endpoints:
        return app
    return OpAMPRouter(app, {path: guard(endpoint) for path, endpoint in endpoints.items()})


__all__ = ["OpAMPEndpoint", "OpAMPRouter", "mount_opamp", "opamp_in_front"]
