"""Background work of a running server: one named task per service, and steps that fail
without ending their loop.

Every loop (presence flush, rollout driver and reports, health sweep, alert evaluator and
sender, audit pruner, fleet gauges) runs in a :class:`BackgroundTask` and wraps each pass in
:func:`step`, so a database outage is counted once per outage by the tracker and anything else
is logged with its traceback, the same way everywhere.

A stop (shutdown) cancels a loop between passes, never inside one: each pass runs
:func:`shielded`. Cancelling asyncpg's ``executemany`` while it is still sending rows (a
presence flush of 10k gateways) leaves the connection waiting for a reply PostgreSQL will
never send; the process then hangs on SIGTERM with the transaction open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from flowgate.core import outage

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a stop waits for the pass that is running to finish before it gives up on it.
PASS_GRACE_SECONDS = 15.0


class BackgroundTask:
    """One asyncio task, started once and stopped (cancelled and awaited) on shutdown."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if self._task is None:
            self._task = asyncio.create_task(run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


async def shielded(work: Awaitable[T]) -> T:
    """Await ``work`` to its end even when the caller is cancelled meanwhile: the cancellation
    is raised once the work is done, or after :data:`PASS_GRACE_SECONDS` (the work is then
    left running, not cancelled half-way, and the process is stopping anyway)."""
    inner = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(inner)
    except asyncio.CancelledError:
        done, _ = await asyncio.wait({inner}, timeout=PASS_GRACE_SECONDS)
        if not done:
            log.warning("stopped without waiting for background work that did not finish")
        elif not inner.cancelled() and inner.exception() is not None:
            log.warning("background work failed while stopping", exc_info=inner.exception())
        raise


async def step(work: Callable[[], Awaitable[object]], *, where: str) -> bool:
    """Run one pass of background work (:func:`shielded`); False when it failed (and was
    reported)."""
    try:
        await shielded(work())
    except Exception as exc:
        if outage.is_unavailable(exc):  # logged once per outage, by the tracker
            outage.tracker.failed(exc, where=where, request=False)
        else:
            log.exception("background work failed", extra={"where": where})
        return False
    return True
