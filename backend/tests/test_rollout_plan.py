"""The staged rollout planner: cumulative sizes, canaries first, a stable order, every target
exactly once."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowgate.deployments.plan import PlanError, batch_size, plan

IDS = [uuid.UUID(int=i) for i in range(1, 21)]


def test_counts_and_percentages_are_cumulative() -> None:
    batches = plan(IDS, [1, "10%", "50%", "100%"])
    assert [len(b) for b in batches] == [1, 1, 8, 10]
    assert [g for b in batches for g in b] == IDS


def test_a_plan_short_of_everyone_gets_a_final_batch() -> None:
    assert [len(b) for b in plan(IDS, [2, "25%"])] == [2, 3, 15]


def test_sizes_that_do_not_grow_are_skipped() -> None:
    assert [len(b) for b in plan(IDS, [5, 3, "20%", 20])] == [5, 15]


def test_canaries_go_first_and_count_towards_later_batches() -> None:
    canary = [IDS[7], IDS[3]]
    batches = plan(IDS, [1, "50%", "100%"], canary)
    assert batches[0] == [IDS[3], IDS[7]]  # in the stable order
    assert [len(b) for b in batches] == [2, 8, 10]
    assert not set(batches[0]) & {g for b in batches[1:] for g in b}


@pytest.mark.parametrize("spec", [0, -1, "0%", "101%", "ten", "10", True, "%"])
def test_bad_specs_are_refused_with_the_reason(spec: Any) -> None:
    with pytest.raises(PlanError):
        batch_size(spec, 10)


def test_percentages_round_up() -> None:
    assert batch_size("10%", 5) == 1 and batch_size("34%", 3) == 2 and batch_size("100%", 7) == 7


@given(
    n=st.integers(1, 60),
    specs=st.lists(
        st.one_of(st.integers(1, 80), st.integers(1, 100).map(lambda p: f"{p}%")),
        min_size=1,
        max_size=6,
    ),
    canaries=st.sets(st.integers(0, 59), max_size=5),
)
def test_every_target_exactly_once_and_the_order_is_kept(
    n: int, specs: list[int | str], canaries: set[int]
) -> None:
    ids = IDS_BIG[:n]
    canary = [ids[i] for i in sorted(canaries) if i < n]
    batches = plan(ids, specs, canary)
    flat = [g for b in batches for g in b]
    assert sorted(flat) == sorted(ids) and len(flat) == n
    assert all(batches)
    rest = [g for b in (batches[1:] if canary else batches) for g in b]
    assert rest == [g for g in ids if g not in set(canary)]


IDS_BIG = [uuid.UUID(int=i) for i in range(1, 61)]
