"""The coalesced reads of flowgate.opamp.loader, in this process: batching, one retry of a
failed read, and failures handed to every waiter."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping

import pytest

from flowgate.opamp.loader import RETRIED, Coalescer


@contextlib.asynccontextmanager
async def free_slot() -> AsyncIterator[None]:
    yield


class Flaky:
    """A fetch that fails its first ``failures`` calls, then answers key * 10."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[list[int]] = []

    async def __call__(self, keys: list[int]) -> Mapping[int, int]:
        self.calls.append(keys)
        await asyncio.sleep(0)
        if len(self.calls) <= self.failures:
            raise ConnectionError("connect timed out")
        return {key: key * 10 for key in keys if key != 3}


async def test_keys_asked_for_together_are_read_in_one_call() -> None:
    fetch = Flaky(failures=0)
    reads = Coalescer("identity", fetch, free_slot)
    values = await asyncio.gather(*(reads.get(key) for key in (1, 2, 3, 2)))
    assert values == [10, 20, None, 20]  # 3 is not found; 2 asked twice, read once
    assert fetch.calls == [[1, 2, 3]]


async def test_a_read_that_fails_once_is_tried_again_and_answers_every_waiter() -> None:
    fetch = Flaky(failures=1)
    reads = Coalescer("identity", fetch, free_slot)
    retried = RETRIED.get("identity")
    values = await asyncio.gather(*(reads.get(key) for key in range(5)))
    assert values == [0, 10, 20, None, 40]
    assert fetch.calls == [[0, 1, 2, 3, 4]] * 2
    assert RETRIED.get("identity") == retried + 1


async def test_a_read_that_fails_twice_fails_every_waiter_of_its_batch() -> None:
    fetch = Flaky(failures=2)
    reads = Coalescer("state", fetch, free_slot)
    results = await asyncio.gather(*(reads.get(key) for key in range(4)), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert len(fetch.calls) == 2
    assert await reads.get(7) == 70  # the next read starts afresh


async def test_no_slot_fails_the_batch_without_reading() -> None:
    class Busy(Exception):
        pass

    @contextlib.asynccontextmanager
    async def full() -> AsyncIterator[None]:
        raise Busy()
        yield  # pragma: no cover

    fetch = Flaky(failures=0)
    reads = Coalescer("state", fetch, full)
    with pytest.raises(Busy):
        await reads.get(1)
    assert fetch.calls == []
