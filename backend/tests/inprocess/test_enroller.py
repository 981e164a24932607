"""The enroller's admission (flowgate.opamp.enroller), in this process: past its queue limit
an agent is refused with how long the queue should take to drain."""

from __future__ import annotations

import asyncio
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
    assert after.value.seconds is not None
    assert 0.15 < after.value.seconds < 2, after.value.seconds
    for _ in range(3):
        releases.put_nowait(None)
    assert await asyncio.gather(*submitted) == [i * 2 for i in range(8)]
