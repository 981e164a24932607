"""Fan-out of bus events to the open event streams of their organisation.

Each replica's hub subscribes to the bus, which (with Redis) carries every replica's events, so a
stream on any replica sees what happened on all of them. An event is turned into its
Server-Sent Events frame once and handed to every open stream of its organisation, and only
there: no database query per event per stream, no stream ever sees another organisation's event.

Streams (contract of :meth:`Stream.sse`):

- the first frame is ``retry: 3000``; every event is ``id: <n>`` (increasing per stream, from 1),
  ``event: <name>``, ``data: <JSON>``; after ``FLOWGATE_EVENTS_PING_SECONDS`` without a frame, a
  ``: ping`` comment keeps proxies from closing an idle stream;
- each stream queues at most ``QUEUE_LIMIT`` frames: a client that falls further behind gets a
  final ``event: overflow`` and the stream ends (the client refetches what it shows);
- every ``FLOWGATE_EVENTS_REVALIDATE_SECONDS`` the stream's credential is checked again; one no
  longer allowed in the organisation (signed out by a password change, removed, revoked) ends it;
- on shutdown every stream ends at once, so open streams do not hold up a graceful stop.

There is no replay: a client that (re)connects loads the current state and follows the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import uuid
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from types import FrameType
from typing import Any

import orjson

from flowgate.core.db import utcnow
from flowgate.core.events import (
    ConfigChanged,
    DeploymentProgressed,
    GatewayChanged,
    GatewayHealthChanged,
    GatewayRegistered,
    GatewayRevoked,
    GatewayStatusChanged,
)
from flowgate.core.settings import Settings
from flowgate.core.uow import UnitOfWork
from flowgate.gateways import repository
from flowgate.gateways.health import SCORES, compute_health
from flowgate.gateways.models import GatewayStatus

log = logging.getLogger(__name__)

#: Frames a stream may hold for a slow client before it is dropped with ``event: overflow``.
QUEUE_LIMIT = 1000
RETRY_MILLISECONDS = 3000

_OPEN, _OVERFLOW, _CLOSED = "open", "overflow", "closed"
#: Health transitions that come without a status change (so without a ``gateway.status``).
QUIET_REASONS = frozenset({"heartbeat", "silent", "reconciled"})


def frame(name: str, payload: dict[str, Any]) -> bytes:
    """An event's ``event:`` and ``data:`` lines (the stream adds its ``id:``)."""
    # default=str: identifiers read by asyncpg are its own UUID type, which orjson does not know.
    data = orjson.dumps(payload, default=str, option=orjson.OPT_UTC_Z)
    return b"event: " + name.encode() + b"\ndata: " + data + b"\n"


class Stream:
    """One client's event stream: a bounded queue of frames and its SSE body."""

    def __init__(self, org_id: uuid.UUID, limit: int = QUEUE_LIMIT) -> None:
        self.org_id = org_id
        self._limit = limit
        self._frames: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._state = _OPEN
        self._next_id = 1

    @property
    def open(self) -> bool:
        return self._state == _OPEN

    def push(self, event_frame: bytes) -> None:
        if self._state != _OPEN:
            return
        if len(self._frames) >= self._limit:
            self._state = _OVERFLOW
            self._frames.clear()  # the client refetches; nothing queued is worth sending now
        else:
            self._frames.append(event_frame)
        self._wake.set()

    def close(self) -> None:
        if self._state == _OPEN:
            self._state = _CLOSED
        self._wake.set()

    def _numbered(self, event_frame: bytes) -> bytes:
        number, self._next_id = self._next_id, self._next_id + 1
        return b"id: " + str(number).encode() + b"\n" + event_frame + b"\n"

    async def sse(
        self,
        ping_seconds: float,
        revalidate_seconds: float,
        still_allowed: Callable[[], Awaitable[bool]],
        on_end: Callable[[Stream], None] = lambda _: None,
    ) -> AsyncIterator[bytes]:
        """The response body (see the module's contract)."""
        loop = asyncio.get_running_loop()
        try:
            yield f"retry: {RETRY_MILLISECONDS}\n\n".encode()
            last_write = loop.time()
            next_check = last_write + revalidate_seconds
            while True:
                wait = min(last_write + ping_seconds, next_check) - loop.time()
                if wait > 0 and not self._wake.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), timeout=wait)
                self._wake.clear()
                if self._frames:
                    batch = [self._numbered(f) for f in self._frames]
                    self._frames.clear()
                    yield b"".join(batch)
                    last_write = loop.time()
                if self._state == _OVERFLOW:
                    yield self._numbered(frame("overflow", {"org_id": self.org_id}))
                    return
                if self._state == _CLOSED:
                    return
                now = loop.time()
                if now >= next_check:
                    if not await still_allowed():
                        return
                    next_check = loop.time() + revalidate_seconds
                if now >= last_write + ping_seconds:
                    yield b": ping\n\n"
                    last_write = loop.time()
        finally:
            self.close()
            on_end(self)


class EventHub:
    def __init__(
        self,
        settings: Settings,
        unit_of_work: Callable[[], UnitOfWork],
        queue_limit: int = QUEUE_LIMIT,
    ) -> None:
        self._settings = settings
        self._unit_of_work = unit_of_work
        self._queue_limit = queue_limit
        #: Weak, so a stream whose response never started (its request failed after the stream
        #: was opened) disappears with it; a running stream is held by its response.
        self._streams: dict[uuid.UUID, weakref.WeakSet[Stream]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._chained: list[tuple[int, Callable[..., Any], Callable[..., Any]]] = []

    # -- streams ---------------------------------------------------------------------------
    def open(self, org_id: uuid.UUID) -> Stream:
        """A new stream of the organisation's events, receiving from now on."""
        stream = Stream(org_id, self._queue_limit)
        if self._closed:
            stream.close()
        else:
            self._streams.setdefault(org_id, weakref.WeakSet()).add(stream)
        return stream

    def detach(self, stream: Stream) -> None:
        streams = self._streams.get(stream.org_id)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del self._streams[stream.org_id]

    def count(self) -> int:
        return sum(len(s) for s in self._streams.values())

    def close_all(self) -> None:
        """End every stream (shutdown); streams opened afterwards end at once."""
        self._closed = True
        for streams in list(self._streams.values()):
            for stream in list(streams):
                stream.close()

    def close_on_exit_signals(self) -> None:
        """End every stream as soon as the server is told to stop.

        uvicorn waits for open responses to finish before it runs the application's shutdown,
        so open streams would hold a graceful stop for its whole timeout and then be cancelled.
        Its SIGTERM/SIGINT handlers are plain Python handlers: chain ours in front (undone by
        :meth:`stop`). Nothing is installed where the current handler is not a Python function
        (another server, or none).
        """
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)
            if not callable(previous):
                continue

            def handler(
                signum: int,
                stack: FrameType | None,
                previous: Callable[[int, FrameType | None], Any] = previous,
            ) -> None:
                with contextlib.suppress(RuntimeError):  # the loop is already closed
                    loop.call_soon_threadsafe(self.close_all)
                previous(signum, stack)

            signal.signal(sig, handler)
            self._chained.append((sig, handler, previous))

    def _unchain_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig, handler, previous in reversed(self._chained):
            if signal.getsignal(sig) is handler:  # nobody chained after us
                signal.signal(sig, previous)
        self._chained.clear()

    async def stop(self) -> None:
        self._unchain_signals()
        self.close_all()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- bus events ------------------------------------------------------------------------
    def _fan_out(self, org_id: uuid.UUID, name: str, payload: dict[str, Any]) -> None:
        streams = self._streams.get(org_id)
        if not streams:
            return
        event_frame = frame(name, payload)
        for stream in list(streams):
            stream.push(event_frame)

    def _status_payload(
        self,
        gateway_id: uuid.UUID,
        org_id: uuid.UUID,
        status: GatewayStatus,
        last_seen: datetime | None,
    ) -> dict[str, Any]:
        s = self._settings
        health = compute_health(
            status, last_seen, utcnow(), s.health_healthy_seconds, s.health_warning_seconds
        )
        return {
            "gateway_id": gateway_id,
            "org_id": org_id,
            "status": status.value,
            "health": health.status,
            "health_score": health.score,
            "last_seen": last_seen,
        }

    async def on_registered(self, event: GatewayRegistered) -> None:
        self._fan_out(
            event.org_id,
            "gateway.registered",
            {"gateway_id": event.gateway_id, "org_id": event.org_id, "created": event.created},
        )

    async def on_status_changed(self, event: GatewayStatusChanged) -> None:
        for change in event.changes:
            if change.org_id not in self._streams:
                continue
            try:
                status = GatewayStatus(change.status)
            except ValueError:
                continue
            self._fan_out(
                change.org_id,
                "gateway.status",
                self._status_payload(change.gateway_id, change.org_id, status, change.last_seen),
            )

    async def on_revoked(self, event: GatewayRevoked) -> None:
        if event.reason == "deleted":
            self._fan_out(
                event.org_id,
                "gateway.deleted",
                {"gateway_id": event.gateway_id, "org_id": event.org_id},
            )
        elif event.org_id in self._streams:
            # The event does not say when the gateway was last seen: look it up once, in the
            # background, so the bus is never held up by the database.
            task = asyncio.create_task(self._announce_deactivation(event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _announce_deactivation(self, event: GatewayRevoked) -> None:
        last_seen = None
        try:
            async with self._unit_of_work() as uow:
                rows = await repository.status_rows(uow.session, [event.gateway_id])
            last_seen = rows[0].last_seen if rows else None
        except Exception as exc:
            log.warning(
                "could not read a deactivated gateway's last contact",
                extra={"gateway_id": str(event.gateway_id), "error": type(exc).__name__},
            )
        self._fan_out(
            event.org_id,
            "gateway.status",
            self._status_payload(event.gateway_id, event.org_id, GatewayStatus.inactive, last_seen),
        )

    async def on_health_changed(self, event: GatewayHealthChanged) -> None:
        """``gateway.health`` for every transition; for those no status change announces (the
        sweep aged a silent gateway, a heartbeat brought a warning one back), also the
        ``gateway.status`` frame live views already patch from (looked up once, in the
        background)."""
        quiet: dict[uuid.UUID, uuid.UUID] = {}
        for change in event.changes:
            if change.org_id not in self._streams:
                continue
            self._fan_out(
                change.org_id,
                "gateway.health",
                {
                    "gateway_id": change.gateway_id,
                    "org_id": change.org_id,
                    "from": change.from_health,
                    "to": change.to_health,
                    "health_score": SCORES.get(change.to_health, 0),
                    "reason": change.reason,
                    "at": change.at,
                },
            )
            if change.reason in QUIET_REASONS:
                quiet[change.gateway_id] = change.org_id
        if quiet:
            task = asyncio.create_task(self._announce_quiet(quiet))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _announce_quiet(self, gateways: dict[uuid.UUID, uuid.UUID]) -> None:
        try:
            async with self._unit_of_work() as uow:
                rows = await repository.status_rows(uow.session, list(gateways))
        except Exception as exc:
            log.warning(
                "could not read gateways whose health changed",
                extra={"gateways": len(gateways), "error": type(exc).__name__},
            )
            return
        for row in rows:
            self._fan_out(
                row.org_id,
                "gateway.status",
                self._status_payload(row.gateway_id, row.org_id, row.status, row.last_seen),
            )

    async def on_changed(self, event: GatewayChanged) -> None:
        self._fan_out(
            event.org_id,
            "gateway.changed",
            {"gateway_id": event.gateway_id, "org_id": event.org_id},
        )

    async def on_config_changed(self, event: ConfigChanged) -> None:
        self._fan_out(
            event.org_id,
            "config.changed",
            {"org_id": event.org_id, "gateway_ids": list(event.gateway_ids)},
        )

    async def on_deployment_progressed(self, event: DeploymentProgressed) -> None:
        """Ids only: the browser refetches the deployment it shows (one read per viewer of that
        page, not one per event per stream here)."""
        self._fan_out(
            event.org_id,
            "deployment.progress",
            {"deployment_id": event.deployment_id, "org_id": event.org_id},
        )
