"""Where live native-OpAMP connections are found, so a config change reaches them now.

A connection handler registers a callback for its gateway; :meth:`Hub.config_changed` invokes it
on this replica and publishes the event on the bus so other replicas do the same for the
connections they hold (Redis pub/sub when ``FLOWGATE_REDIS_URL`` is set, in-process otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

Listener = Callable[[], Awaitable[bool]]
Closer = Callable[[], Awaitable[None]]
CHANNEL = "flowgate:config-changed"


class Hub:
    def __init__(self, redis_url: str | None = None) -> None:
        self._listeners: dict[uuid.UUID, Listener] = {}
        self._closers: dict[uuid.UUID, Closer] = {}
        self._redis_url = redis_url
        self._redis: Any = None
        self._task: asyncio.Task[None] | None = None
        self._instance = uuid.uuid4().hex

    def register(self, gateway_id: uuid.UUID, listener: Listener, closer: Closer) -> None:
        self._listeners[gateway_id] = listener
        self._closers[gateway_id] = closer

    def unregister(self, gateway_id: uuid.UUID, listener: Listener) -> None:
        if self._listeners.get(gateway_id) is listener:
            del self._listeners[gateway_id]
            self._closers.pop(gateway_id, None)

    async def disconnect(self, gateway_id: uuid.UUID) -> None:
        """Close this replica's live connection of a gateway (deactivated or deleted)."""
        closer = self._closers.get(gateway_id)
        if closer is not None:
            try:
                await closer()
            except Exception:
                log.exception("closing a connection failed", extra={"gateway_id": str(gateway_id)})

    def is_connected(self, gateway_id: uuid.UUID) -> bool:
        return gateway_id in self._listeners

    @property
    def connected(self) -> int:
        return len(self._listeners)

    async def _deliver_local(self, gateway_id: uuid.UUID) -> bool:
        listener = self._listeners.get(gateway_id)
        if listener is None:
            return False
        try:
            return await listener()
        except Exception:
            log.exception("push to a live connection failed", extra={"gateway_id": str(gateway_id)})
            return False

    async def config_changed(self, gateway_id: uuid.UUID) -> bool:
        """Tell whoever holds the gateway's connection. True when it was pushed from here."""
        pushed = await self._deliver_local(gateway_id)
        if self._redis is not None and not pushed:
            try:
                await self._redis.publish(CHANNEL, f"{self._instance}:{gateway_id}")
            except Exception:
                log.exception("could not publish config change to redis")
        return pushed

    async def start(self) -> None:
        if not self._redis_url:
            return
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(self._redis_url)
        self._task = asyncio.create_task(self._listen(), name="hub-redis-listener")

    async def _listen(self) -> None:
        while True:
            try:
                pubsub = self._redis.pubsub()
                await pubsub.subscribe(CHANNEL)
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    origin, _, raw = message["data"].decode().partition(":")
                    if origin == self._instance:
                        continue
                    with contextlib.suppress(ValueError):
                        await self._deliver_local(uuid.UUID(raw))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("redis listener failed; reconnecting in 2 s")
                await asyncio.sleep(2)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._redis is not None:
            await self._redis.aclose()
