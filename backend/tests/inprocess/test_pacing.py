"""Work that arrives in storms must not hold the event loop: the lean WebSocket's pacer
(flowgate.opamp.websocket._Pacer) and the rollout reports' back-to-back flushes
(flowgate.configs.reports.RolloutReports).

A deployment to 10,000 agents puts 10,000 status reports in one read of the sockets. Before
the pacer, their handlers all ran in one turn of the loop (about two seconds on two cores), and
the reports' flush, the presence flush and API requests waited for the last of them."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid

from flowgate.configs.models import TargetState
from flowgate.configs.reports import Report, RolloutReports
from flowgate.opamp import websocket


async def test_a_storm_of_messages_leaves_the_loop_turns_in_between() -> None:
    loop = asyncio.get_running_loop()
    pacer = websocket._Pacer(loop)
    storm = 10 * websocket.HANDLERS_PER_TURN
    handled: list[int] = []
    seen_by_others: list[int] = []

    async def handle(n: int) -> None:
        handled.append(n)

    def arrive() -> None:  # what one read of many sockets does
        for n in range(storm):
            pacer.start(lambda n=n: loop.create_task(handle(n)).add_done_callback(tasks.discard))
        loop.call_soon(lambda: seen_by_others.append(len(handled)))  # anything else

    tasks: set[asyncio.Task[None]] = set()
    loop.call_soon(arrive)
    for _ in range(1000):
        await asyncio.sleep(0)
        if len(handled) == storm:
            break
    assert handled == list(range(storm)), "every message handled once, in arrival order"
    assert seen_by_others, "the other callback ran"
    # It got its turn after the first turn's handlers, not after the whole storm.
    assert seen_by_others[0] <= 2 * websocket.HANDLERS_PER_TURN


async def test_the_pacer_starts_at_once_while_under_its_budget() -> None:
    pacer = websocket._Pacer(asyncio.get_running_loop())
    started: list[int] = []
    for n in range(3):
        pacer.start(lambda n=n: started.append(n))
    assert started == [0, 1, 2]  # no turn waited for


class TimedReports(RolloutReports):
    """Reports whose flush takes ``duration`` and records when it started (no database)."""

    def __init__(self, interval: float, duration: float, fail: bool = False) -> None:
        super().__init__(lambda: None, interval)  # type: ignore[arg-type,return-value]
        self.duration = duration
        self.fail = fail
        self.starts: list[tuple[float, int]] = []

    async def flush(self) -> int:
        batch = len(self._pending)
        if not batch:
            return 0
        self.starts.append((time.monotonic(), batch))
        await asyncio.sleep(self.duration)
        if self.fail:
            return 0  # what a failed flush returns; its reports stay pending
        for gid in list(self._pending)[:batch]:
            del self._pending[gid]
        return batch


def report() -> Report:
    return Report(uuid.uuid4(), TargetState.applied, config_hash="ab")


async def test_reports_that_arrive_during_a_flush_are_written_right_after_it() -> None:
    reports = TimedReports(interval=0.3, duration=0.3)
    reports.start()
    try:
        reports.record(report())
        await asyncio.sleep(0.4)  # the first flush (after the 0.3 s gathering) is writing
        reports.record(report())
        reports.record(report())
        for _ in range(100):
            if len(reports.starts) == 2:
                break
            await asyncio.sleep(0.02)
        (first, n1), (second, n2) = reports.starts
        assert (n1, n2) == (1, 2)
        # The backlog waited for the first flush only, not for another gathering interval.
        assert second - first < 0.3 + 0.15
    finally:
        await reports._task.stop()


async def test_after_a_failed_flush_the_next_waits_for_the_interval() -> None:
    reports = TimedReports(interval=0.3, duration=0.0, fail=True)
    reports.start()
    try:
        reports.record(report())
        await asyncio.sleep(1.0)
        starts = [at for at, _ in reports.starts]
        assert 1 <= len(starts) <= 3, "no retry loop without a pause"
        assert all(b - a >= 0.25 for a, b in itertools.pairwise(starts))
    finally:
        await reports._task.stop()
