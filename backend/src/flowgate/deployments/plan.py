"""Which gateways a staged rollout sends to, batch by batch (pure; no I/O).

``batches`` lists cumulative sizes: each entry is how many of the targets have been sent the
version once that batch is out, as an absolute count (``5``) or a share of the targets
(``"10%"``, rounded up). Sizes that do not grow are skipped, and the last batch always
completes the rollout (a plan ending below 100 % gets a final batch with the rest).

Order: gateways matching the canary selector form the first batch (whatever its size); the
rest are filled in a stable order, by gateway name and then id, so a plan computed twice for the
same targets is the same plan.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Sequence

_PERCENT = re.compile(r"^\s*(\d{1,3}(?:\.\d+)?)\s*%\s*$")


class PlanError(ValueError):
    """A batch specification that cannot be used (the message says which and why)."""


def batch_size(spec: int | str, total: int) -> int:
    """Cumulative size for one batch spec over ``total`` targets (at least 1, at most total)."""
    if isinstance(spec, bool):
        raise PlanError('a batch is a count (1, 5) or a percentage ("10%")')
    if isinstance(spec, int):
        if spec < 1:
            raise PlanError(f"batch size {spec} must be at least 1")
        return min(spec, total)
    match = _PERCENT.match(spec)
    if match is None:
        raise PlanError(f'batch {spec!r} is neither a count nor a percentage like "10%"')
    share = float(match.group(1))
    if not 0 < share <= 100:
        raise PlanError(f"batch {spec!r} must be more than 0% and at most 100%")
    return max(1, min(total, math.ceil(total * share / 100)))


def plan(
    ordered: Sequence[uuid.UUID],
    batches: Sequence[int | str],
    canary: Sequence[uuid.UUID] = (),
) -> list[list[uuid.UUID]]:
    """Split ``ordered`` (the targets, already in the stable order) into batches."""
    total = len(ordered)
    if total == 0:
        return []
    if not batches:
        raise PlanError("a staged rollout needs at least one batch")
    sizes = [batch_size(spec, total) for spec in batches]
    canary_set = set(canary)
    first = [g for g in ordered if g in canary_set]
    rest = [g for g in ordered if g not in canary_set]
    out: list[list[uuid.UUID]] = []
    sent = 0
    if first:
        out.append(first)
        sent = len(first)
    queue = iter(rest)
    for size in [*sizes, total]:
        if size <= sent:
            continue
        batch = [next(queue) for _ in range(size - sent)]
        out.append(batch)
        sent = size
    return out
