"""Coalescing of concurrent enrolments: many agents, one transaction.

A fleet starting at once presents one registration token thousands of times a second. Enrolled
one by one, every enrolment is its own transaction and takes the token's row lock to count its
use, so the fleet queues on that lock (45-60 enrolments/s on one worker, see
docs/benchmarks.md). :class:`Enroller` collects the enrolments that arrive while a batch is
running (or within ``FLOWGATE_OPAMP_ENROL_BATCH_WAIT_SECONDS`` of an idle moment), up to
``FLOWGATE_OPAMP_ENROL_BATCH_MAX``, and hands them to one call of its ``run`` function
(:meth:`flowgate.opamp.store.AgentStore.enrol_batch`, which owns the database work); each
caller gets its own result or error back. One batch runs at a time per process, which is also
the admission control of enrolments: past ``FLOWGATE_OPAMP_MAX_QUEUED`` waiting agents,
:class:`~flowgate.opamp.auth.Busy` tells an agent to retry later (503 + Retry-After, or
UNAVAILABLE), as :class:`~flowgate.opamp.auth.Admission` does for other database work.

Each refusal carries when that agent should come back (:meth:`Enroller.come_back_in`): after
the queue ahead of it and after every agent refused before it, at the best rate recent batches
were served. Refused agents are so given successive slots and return at about the rate the
server enrols, not all together and not in a trickle. Measured (docs/benchmarks.md,
"Enrolment storms"): when every agent refused in a burst was told the queue's drain time at
the average rate since the backlog began (which counted the slow batches of the connect storm),
5,720 agents refused within three seconds were told 13-29 s, came back spread over half a
minute, and were enrolled one to ten per batch at a third of the rate the server had shown.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from flowgate import telemetry
from flowgate.opamp.auth import Busy

log = logging.getLogger(__name__)

BATCHES = telemetry.Counter(
    "flowgate_opamp_enrolment_batches",
    "Batches of OpAMP enrolments run (one transaction for the new agents of each)",
)
BATCHED = telemetry.Counter(
    "flowgate_opamp_enrolments_batched",
    "OpAMP enrolments that went through a batch (see flowgate_opamp_enrolment_batches)",
)

T = TypeVar("T")
R = TypeVar("R")

#: How many recent batches :meth:`Enroller.rate` looks at.
RATES_KEPT = 8
#: A batch is taken to last at least this long (a rate from a clock tick is no rate).
MIN_BATCH_SECONDS = 0.001

#: What ``run`` answers per item, in order: the item's result or the error its caller gets.
Run = Callable[[list[T]], Awaitable[Sequence[R | Exception]]]


class Enroller(Generic[T, R]):
    def __init__(self, run: Run[T, R], max_batch: int, wait_seconds: float, max_queued: int):
        self._run = run
        self._max_batch = max_batch
        self._wait = wait_seconds
        self._max_queued = max_queued
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None
        #: Batches run (this enroller's part of :data:`BATCHES`, for benchmarks).
        self.batches = 0
        #: When the batch running now began; the rates (agents/s) of the last few batches.
        self._batch_began = 0.0
        self._rates: collections.deque[float] = collections.deque(maxlen=RATES_KEPT)
        #: The end of the last slot given to a refused agent (time.monotonic()).
        self._slots_until = 0.0

    async def submit(self, item: T) -> R:
        """``item``'s result once its batch has committed; raises its error, or :class:`Busy`
        when too many agents are waiting already."""
        if len(self._queue) >= self._max_queued:
            raise Busy(self.come_back_in())
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._task is None:
            self._batch_began = time.monotonic()  # gathering counts as the batch's time
            self._task = asyncio.create_task(self._drain())
        return await future

    def rate(self) -> float:
        """Agents per second this enroller can take: the best of its last few batches (a
        batch slowed down by a connect storm around it says little of the next). Before any
        batch is done, as if the one running took as long as it has so far."""
        if self._rates:
            return max(self._rates)
        return self._max_batch / max(time.monotonic() - self._batch_began, MIN_BATCH_SECONDS)

    def come_back_in(self) -> float:
        """Seconds until a refused agent's slot: after the queue ahead of it and after the
        slots already given, one slot per agent at :meth:`rate`. Each call takes a slot."""
        now = time.monotonic()
        rate = self.rate()
        start = max(now + len(self._queue) / rate, self._slots_until)
        self._slots_until = start + 1 / rate
        return start - now

    async def _drain(self) -> None:
        try:
            while self._queue:
                if len(self._queue) < self._max_batch and self._wait > 0:
                    await asyncio.sleep(self._wait)  # let the rest of a burst arrive
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                self._batch_began = time.monotonic()
                try:
                    await self._one(batch)
                except asyncio.CancelledError:
                    self._queue[:0] = batch
                    raise
                took = time.monotonic() - self._batch_began
                self._rates.append(len(batch) / max(took, MIN_BATCH_SECONDS))
        except asyncio.CancelledError:  # shutting down: nobody will answer these
            for _, future in self._queue:
                future.cancel()
            self._queue.clear()
            raise
        finally:
            self._task = None

    async def _one(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        self.batches += 1
        BATCHES.inc()
        BATCHED.inc(amount=len(batch))
        try:
            results: Sequence[R | Exception] = await self._run([item for item, _ in batch])
        except Exception as exc:  # the batch's transaction failed: every caller gets why
            results = [exc] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # the caller went away (its connection closed)
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
