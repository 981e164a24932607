"""The enroller's admission (flowgate.opamp.enroller), in this process: past its queue limit
an agent is refused with when to come back, one slot per refused agent after the queue."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence

import pytest

from flowgate.opamp.auth import Busy
from flowgate.opamp.enroller import Enroller


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_refusal_says_how_long_the_queue_takes_to_drain() -> None:
    releases: asyncio.Queue[None] = asyncio.Queue()

    async def run(items: list[int]) -> Sequence[int | Exception]:
        await releases.get()  # each batch takes as long as the test says
        return [item * 2 for item in items]

    enroller: Enroller[int, int] = Enroller(run, max_batch=2, wait_seconds=0, max_queued=4)
    submitted = [asyncio.ensure_future(enroller.submit(i)) for i in range(2)]
    await settle()  # the first batch (0, 1) is running
    submitted += [asyncio.ensure_future(enroller.submit(i)) for i in range(2, 6)]
    await settle()  # four waiting: the queue is full
    with pytest.raises(Busy) as before:
        await enroller.submit(99)
    # Nothing served yet: as if each of the three batches (two waiting, one running) took as
    # long as the running one has so far, a moment.
    assert before.value.seconds is not None and 0 <= before.value.seconds < 0.5

    await asyncio.sleep(0.1)
    releases.put_nowait(None)  # the first batch took ~0.1 s
    await settle()  # (2, 3) running, (4, 5) waiting
    submitted += [asyncio.ensure_future(enroller.submit(i)) for i in range(6, 8)]
    await settle()
    with pytest.raises(Busy) as after:
        await enroller.submit(100)
    # Four waiting, served at 2 per ~0.1 s: about 0.2 s (more on a slow machine, never 30 s).
    # The earlier refusal's slot (a moment after it) is long past: this one is not behind it.
    assert after.value.seconds is not None
    assert 0.15 < after.value.seconds < 2, after.value.seconds
    for _ in range(3):
        releases.put_nowait(None)
    assert await asyncio.gather(*submitted) == [i * 2 for i in range(8)]


async def test_agents_refused_together_get_successive_slots_at_the_best_recent_rate() -> None:
    releases: asyncio.Queue[None] = asyncio.Queue()

    async def run(items: list[int]) -> Sequence[int | Exception]:
        await releases.get()
        return items

    enroller: Enroller[int, int] = Enroller(run, max_batch=2, wait_seconds=0, max_queued=2)
    submitted = [asyncio.ensure_future(enroller.submit(i)) for i in range(2)]
    await settle()
    await asyncio.sleep(0.1)
    releases.put_nowait(None)  # the first batch: 2 in ~0.1 s, ~20/s
    await settle()
    submitted += [asyncio.ensure_future(enroller.submit(i)) for i in range(2, 4)]
    await settle()
    await asyncio.sleep(0.5)
    releases.put_nowait(None)  # the second: 2 in ~0.5 s (a storm around it), ~4/s
    await settle()
    submitted += [asyncio.ensure_future(enroller.submit(i)) for i in range(4, 6)]
    await settle()  # (4, 5) running
    submitted += [asyncio.ensure_future(enroller.submit(i)) for i in range(6, 8)]
    await settle()  # (6, 7) waiting: the queue is full

    slots = []
    for refused in range(3):
        with pytest.raises(Busy) as busy:
            await enroller.submit(100 + refused)
        assert busy.value.seconds is not None
        slots.append(busy.value.seconds)
    # The first comes back once the two waiting are enrolled at the better rate (~0.1 s, not
    # the ~0.5 s of the slow batch); each next one a slot (1/rate) later, not all at once.
    assert 0.09 < slots[0] < 0.14, slots  # the mean of the two rates would say ~0.17 s
    gaps = [later - earlier for earlier, later in itertools.pairwise(slots)]
    assert all(0.04 < gap < 0.07 for gap in gaps), slots  # 1/20 s
    assert abs(gaps[0] - gaps[1]) < 0.01, slots

    await asyncio.sleep(slots[-1] + 0.1)  # every slot given is past: start after the queue
    with pytest.raises(Busy) as later:
        await enroller.submit(200)
    assert later.value.seconds is not None and abs(later.value.seconds - slots[0]) < 0.05

    for _ in range(2):
        releases.put_nowait(None)
    assert await asyncio.gather(*submitted) == list(range(8))


async def test_a_refusal_before_the_first_batch_began_is_a_moment_not_the_uptime() -> None:
    async def run(items: list[int]) -> Sequence[int | Exception]:
        return items

    # The first agent waits for the rest of its burst (wait_seconds) and fills the queue.
    enroller: Enroller[int, int] = Enroller(run, max_batch=2, wait_seconds=0.3, max_queued=1)
    first = asyncio.ensure_future(enroller.submit(1))
    await settle()
    with pytest.raises(Busy) as busy:
        await enroller.submit(2)
    # No batch has run: as if the one gathering took as long as it has so far, a moment.
    assert busy.value.seconds is not None and 0 <= busy.value.seconds < 0.5, busy.value.seconds
    assert await first == 1
