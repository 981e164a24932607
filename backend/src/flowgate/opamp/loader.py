"""Coalesced database reads for a reconnect storm: one query answers many agents.

After a restart every known agent reconnects within seconds, and each needs its gateway row
twice: to check its OpAMP token at the upgrade (the identity cache is cold) and to restore its
state and desired configuration on its first message. One transaction per agent is a
thundering herd on the connection pool and the database. A :class:`Coalescer` reads the keys
asked for together, with one call of ``fetch`` inside one admission slot, and hands each waiter
its own value. It batches like a group commit: a key asked for while no read is running is read
at once (in the same event-loop pass as any others asked for then), so a lone reconnect waits
for nothing; keys asked for while a read runs gather and are read together when it ends, or as
soon as ``max_batch`` of them wait. The batch size follows the load, without a timer.

Waiters that were cancelled meanwhile (the agent went away) are skipped. A read that fails is
tried once more in the same slot before it fails its waiters: in a storm a whole batch of
agents hangs on one read, and a transient failure (a new pooled connection that took longer
than the connect timeout on a saturated event loop) would otherwise send hundreds of them away
for a Retry-After. A read that fails twice (the database is down) or finds no slot
(:class:`~flowgate.opamp.auth.Busy`) fails every waiter of that batch the way a single read
would have failed its one caller.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable, Mapping
from typing import Generic, TypeVar

from flowgate import telemetry

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: Keys per read: well below SQLite's bound-parameter limit, and one query stays short.
MAX_BATCH = 500

BATCHES = telemetry.Counter(
    "flowgate_opamp_batched_reads",
    "Coalesced database reads for reconnecting OpAMP agents (one transaction each), by what "
    "they read (identity: the token check; state: stored state and desired config)",
    ("read",),
    known=(("identity",), ("state",)),
)
BATCHED_KEYS = telemetry.Counter(
    "flowgate_opamp_batched_keys",
    "Gateways answered by coalesced reads, by what was read (see flowgate_opamp_batched_reads)",
    ("read",),
    known=(("identity",), ("state",)),
)

RETRIED = telemetry.Counter(
    "flowgate_opamp_batched_reads_retried",
    "Coalesced reads for reconnecting OpAMP agents that failed once and were tried again, by "
    "what they read (see flowgate_opamp_batched_reads)",
    ("read",),
    known=(("identity",), ("state",)),
)

Slot = Callable[[], contextlib.AbstractAsyncContextManager[None]]


class Coalescer(Generic[K, V]):
    """Batch concurrent lookups by key; ``fetch`` returns the values found (a key it leaves
    out resolves to None: no such row)."""

    def __init__(
        self,
        name: str,
        fetch: Callable[[list[K]], Awaitable[Mapping[K, V]]],
        slot: Slot,
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._name = name
        self._fetch = fetch
        self._slot = slot
        self._max_batch = max_batch
        self._pending: dict[K, list[asyncio.Future[V | None]]] = {}
        self._scheduled = False
        self._reading = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def get(self, key: K) -> V | None:
        """The value for ``key``, read together with whatever else is asked for meanwhile."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[V | None] = loop.create_future()
        self._pending.setdefault(key, []).append(future)
        if len(self._pending) >= self._max_batch:
            self._dispatch()
        elif not self._reading and not self._scheduled:
            self._scheduled = True  # after this pass of the loop: its other callers join
            loop.call_soon(self._dispatch)
        return await future

    def _dispatch(self) -> None:
        """Start reading what is pending; keys asked for from now on gather for the next read."""
        self._scheduled = False
        batch, self._pending = self._pending, {}
        if batch:
            self._reading += 1
            task = asyncio.get_running_loop().create_task(self._read(batch))
            self._tasks.add(task)  # keep a reference until it is done
            task.add_done_callback(self._tasks.discard)

    async def _read(self, batch: dict[K, list[asyncio.Future[V | None]]]) -> None:
        try:
            await self._resolve(batch)
        finally:
            self._reading -= 1
            if self._pending and not self._reading and not self._scheduled:
                self._dispatch()  # what gathered meanwhile

    async def _resolve(self, batch: dict[K, list[asyncio.Future[V | None]]]) -> None:
        try:
            async with self._slot():
                keys = list(batch)
                try:
                    found = await self._fetch(keys)
                except Exception:
                    RETRIED.inc(self._name)
                    found = await self._fetch(keys)
        except asyncio.CancelledError:  # the server is shutting down
            for futures in batch.values():
                for future in futures:
                    future.cancel()
            raise
        except Exception as exc:
            for futures in batch.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
            return
        BATCHES.inc(self._name)
        BATCHED_KEYS.inc(self._name, amount=len(batch))
        for key, futures in batch.items():
            value = found.get(key)
            for future in futures:
                if not future.done():
                    future.set_result(value)
