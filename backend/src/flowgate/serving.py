"""The ASGI application each ``flowgate serve`` worker runs: :func:`create_app` behind the
server lock.

Several server processes on one database are correct only when all of them use Redis: the Redis
bus carries config pushes and revocations to the process holding a gateway's connection; without
it each process knows only its own connections. So before the application starts (before the
bootstrap) each process takes the database's server lock, shared with Redis and exclusive
without it (:mod:`flowgate.core.startlock`). On a conflict the process writes one line saying
why and refuses to start: uvicorn then exits with its start-up failure status, and a
multi-worker supervisor stops too.
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors.multiprocess import Multiprocess

from flowgate.core.preflight import redacted
from flowgate.core.settings import Settings
from flowgate.core.startlock import ServerLockBusy, hold_server_lock

_LAST_MESSAGES = {
    "lifespan.startup.failed",
    "lifespan.shutdown.complete",
    "lifespan.shutdown.failed",
}


#: uvicorn's WebSocket layer for OpAMP (see docs/benchmarks.md for how the choices compare).
WS_IMPLEMENTATION = "flowgate.opamp.websocket:UpgradeProtocol"


def uvicorn_options(max_message_bytes: int) -> dict[str, Any]:
    """The transport choices of ``flowgate serve``, one place for them: bench/opamp_floor.py
    serves its floor with the same ones, so a FlowGate/floor ratio compares only our code.

    uvloop and httptools (C parsers), no permessage-deflate (it costs ~30 KiB per idle
    WebSocket), no server pings (OpAMP agents heartbeat themselves), no access log.
    """
    return {
        "loop": "uvloop",
        "http": "httptools",
        "ws": WS_IMPLEMENTATION,
        "ws_max_size": max_message_bytes,
        "ws_per_message_deflate": False,
        "ws_ping_interval": None,
        "access_log": False,
        "server_header": False,
        "backlog": 4096,
    }


def refusal(settings: Settings) -> str:
    where = redacted(settings.resolved_database_url)
    if settings.redis_url:
        return (
            f"another FlowGate server without FLOWGATE_REDIS_URL is using this database {where}: "
            "several servers need Redis, so set the same FLOWGATE_REDIS_URL on every one of them"
        )
    return (
        f"another FlowGate server is using this database {where} and FLOWGATE_REDIS_URL is not "
        "set: several servers need Redis to share config pushes and revocations, so set "
        "FLOWGATE_REDIS_URL on every one of them, or stop the other server"
    )


class ServerLocked:
    """ASGI wrapper: holds the server lock from lifespan start-up until after shutdown."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        startup = await receive()
        try:
            lock = await hold_server_lock(
                self.settings.resolved_database_url, shared=bool(self.settings.redis_url)
            )
        except ServerLockBusy:
            sys.stderr.write(f"error: {refusal(self.settings)}\n")
            sys.stderr.flush()
            # An empty message: the reason is the line above, not a traceback.
            await send({"type": "lifespan.startup.failed", "message": ""})
            return
        replayed = False

        async def receive_startup_first() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return startup
            return await receive()

        async def send_releasing(message: Message) -> None:
            # Release before uvicorn hears the application is done: it may end the event loop
            # right after, which would cut the release short.
            if message["type"] in _LAST_MESSAGES:
                await lock.release()
            await send(message)

        try:
            await self.app(scope, receive_startup_first, send_releasing)
        finally:
            await lock.release()


def create_served_app() -> ServerLocked:
    """uvicorn factory (``flowgate.serving:create_served_app``) used by ``flowgate serve``."""
    from flowgate.core.headers import SecurityHeaders
    from flowgate.core.limits import RequestLimits
    from flowgate.main import OPAMP_PATHS, create_app
    from flowgate.opamp.transport import opamp_in_front

    settings = Settings()

    def guard(endpoint: ASGIApp) -> ASGIApp:
        # The two layers of create_app's stack that act on OpAMP paths, configured alike.
        return SecurityHeaders(
            RequestLimits(
                endpoint,
                max_bytes=settings.max_body_bytes,
                max_header_bytes=settings.max_header_bytes,
                skip_prefixes=OPAMP_PATHS,
            )
        )

    return ServerLocked(opamp_in_front(create_app(settings), guard), settings)


class _Supervisor(Multiprocess):
    """uvicorn's worker supervisor, remembering whether a signal asked it to stop."""

    asked_to_stop = False

    def handle_int(self) -> None:
        self.asked_to_stop = True
        super().handle_int()

    def handle_term(self) -> None:
        self.asked_to_stop = True
        super().handle_term()


def run(config: uvicorn.Config) -> int:
    """Serve until SIGINT/SIGTERM; the exit status: 0, or 3 (uvicorn's start-up failure) when
    the server, or any worker, failed to start.

    With several workers uvicorn stops them all when one fails to start, but then returns as if
    asked to stop; anything but a requested stop is a failure here.
    """
    if config.workers == 1:
        server = uvicorn.Server(config)
        server.run()  # raises SystemExit(3) itself when the application fails to start
        return 0 if server.started else STARTUP_FAILURE
    supervisor = _Supervisor(config, sockets=[config.bind_socket()])
    supervisor.run()
    return 0 if supervisor.asked_to_stop else STARTUP_FAILURE
