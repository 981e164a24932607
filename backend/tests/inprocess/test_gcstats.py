"""The garbage collector tuning of flowgate.fleet.gcstats, in this process."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from flowgate.fleet import gcstats


@pytest.fixture
def collector() -> Iterator[None]:
    saved = gcstats.STATS.freeze_after_full
    installed = gcstats.STATS.callback in gc.callbacks
    gc.unfreeze()
    yield
    gcstats.STATS.freeze_after_full = saved
    if not installed:
        gc.callbacks.remove(gcstats.STATS.callback)
    gc.unfreeze()


def _survivors() -> list[object]:
    return [[i] for i in range(5_000)]  # tracked objects that outlive a collection


def test_survivors_of_a_full_collection_are_frozen_when_freezing_is_on(collector: None) -> None:
    gcstats.install()
    gcstats.STATS.freeze_after_full = True
    kept = _survivors()
    full = gcstats.STATS.collections[2]
    gc.collect()
    assert gcstats.STATS.collections[2] == full + 1  # measured
    assert gc.get_freeze_count() >= len(kept)  # and what survived it is frozen


def test_nothing_is_frozen_when_freezing_is_off(collector: None) -> None:
    gcstats.install()
    gcstats.STATS.freeze_after_full = False
    _survivors()
    gc.collect()
    assert gc.get_freeze_count() == 0
