"""The event bus: post-commit events to every subscriber on every replica.

:meth:`Bus.publish` hands events to this replica's subscribers at once and, when
``FLOWGATE_REDIS_URL`` is set, publishes them on one Redis channel so every other replica hands
them to its own subscribers too (each event is delivered once per replica; a replica ignores
what it published itself). Without Redis the bus is in-process only, which is correct for one
server process and nothing else (the server refuses several processes without Redis).

Subscribers are idempotent cache drops and socket closes, so a duplicate or late event is
harmless; a Redis outage loses cross-replica events for its duration, and the caches they would
have dropped expire on their own (identity cache TTL) while the presence flush's credential
guard keeps stale writes out of the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import orjson

from flowgate.core.background import BackgroundTask
from flowgate.core.events import Event, event_from_json

log = logging.getLogger(__name__)

CHANNEL = "flowgate:events"
E = TypeVar("E", bound=Event)
Handler = Callable[[Any], Awaitable[None]]


class Bus:
    def __init__(self, redis_url: str | None = None) -> None:
        self._handlers: dict[type[Event], list[Handler]] = {}
        self._redis_url = redis_url
        self._redis: Any = None
        self._listener = BackgroundTask("bus-redis-listener")
        self._instance = uuid.uuid4().hex
        self.published = 0
        self.received = 0

    @property
    def distributed(self) -> bool:
        return bool(self._redis_url)

    def subscribe(self, kind: type[E], handler: Callable[[E], Awaitable[None]]) -> None:
        self._handlers.setdefault(kind, []).append(handler)

    async def publish(self, events: Sequence[Event]) -> None:
        """Deliver here, then to the other replicas (one Redis message for the batch)."""
        if not events:
            return
        for event in events:
            await self._dispatch(event)
        self.published += len(events)
        if self._redis is None:
            return
        payload = orjson.dumps({"origin": self._instance, "events": [e.to_json() for e in events]})
        try:
            await self._redis.publish(CHANNEL, payload)
        except Exception:
            log.exception("could not publish events to redis", extra={"events": len(events)})

    async def _dispatch(self, event: Event) -> None:
        for handler in self._handlers.get(type(event), ()):
            try:
                await handler(event)
            except Exception:
                log.exception("event handler failed", extra={"event": event.kind})

    async def start(self) -> None:
        if not self._redis_url:
            return
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(self._redis_url)
        ready = asyncio.Event()
        self._listener.start(lambda: self._listen(ready))
        # Serve only once subscribed, so no event published after start-up is missed.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready.wait(), timeout=5)

    async def _listen(self, ready: asyncio.Event) -> None:
        while True:
            try:
                pubsub = self._redis.pubsub()
                await pubsub.subscribe(CHANNEL)
                ready.set()
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await self._receive(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("redis listener failed; reconnecting in 1 s")
                await asyncio.sleep(1)

    async def _receive(self, data: bytes) -> None:
        try:
            body = orjson.loads(data)
            if body.get("origin") == self._instance:
                return
            events = [event_from_json(e) for e in body.get("events") or ()]
        except (ValueError, TypeError, AttributeError):
            log.warning("ignored a malformed bus message")
            return
        self.received += len(events)
        for event in events:
            await self._dispatch(event)

    async def stop(self) -> None:
        await self._listener.stop()
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
