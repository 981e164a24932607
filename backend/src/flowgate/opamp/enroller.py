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
UNAVAILABLE), as :class:`~flowgate.opamp.auth.Admission` does for other database work. The
refusal carries how long the queue should take to drain at the rate it has been served since
the backlog began, so refused agents are told to come back in a few seconds, not after the
configured ceiling (``FLOWGATE_OPAMP_RETRY_AFTER_SECONDS``, 30 s) while the server idles.
"""

from __future__ import annotations

import asyncio
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
        #: Since when the queue has been draining without a pause, and how many it served.
        self._busy_since = 0.0
        self._served = 0

    async def submit(self, item: T) -> R:
        """``item``'s result once its batch has committed; raises its error, or :class:`Busy`
        when too many agents are waiting already."""
        if len(self._queue) >= self._max_queued:
            raise Busy(self.drain_seconds())
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._task is None:
            self._busy_since, self._served = time.monotonic(), 0
            self._task = asyncio.create_task(self._drain())
        return await future

    def drain_seconds(self) -> float:
        """How long the agents waiting now should take to be enrolled, at the rate they have
        been since the queue last was empty. Before the first batch of that stretch is done,
        as if every batch took as long as that one has so far."""
        elapsed = time.monotonic() - self._busy_since
        if not self._served:
            return (len(self._queue) / self._max_batch + 1) * elapsed
        return len(self._queue) * elapsed / self._served

    async def _drain(self) -> None:
        try:
            while self._queue:
                if len(self._queue) < self._max_batch and self._wait > 0:
                    await asyncio.sleep(self._wait)  # let the rest of a burst arrive
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                try:
                    await self._one(batch)
                except asyncio.CancelledError:
                    self._queue[:0] = batch
                    raise
                self._served += len(batch)
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
