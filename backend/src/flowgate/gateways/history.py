"""Health history reads: one gateway's transitions (keyset pages) and the organisation's
fleet series (counts per health per time bucket), reconstructed from the transitions.

The series is computed backwards from the present: the stored counts now (exact, maintained by
triggers), then each bucket's transitions undone (its ``to`` loses one, its ``from`` gains one),
so it needs no snapshot and stays right after old transitions are pruned. Gateways deleted
since are not in it (their history went with them).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import uuid
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.core.db import utcnow
from flowgate.core.errors import DomainError
from flowgate.core.settings import Settings
from flowgate.gateways import repository
from flowgate.gateways.health import HEALTH_STATES
from flowgate.gateways.schemas import (
    FleetHealthHistory,
    FleetHealthPoint,
    HealthHistoryPage,
    HealthTransitionOut,
)

#: Most buckets one fleet series may have.
MAX_POINTS = 1000
_STEP = re.compile(r"^([1-9][0-9]{0,8})([smhd]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class InvalidQuery(DomainError):
    status_code = 422
    detail = "Invalid query"


def parse_step(raw: str) -> int:
    """``300``, ``300s``, ``5m``, ``1h``, ``1d`` -> seconds."""
    match = _STEP.match(raw.strip())
    if match is None:
        raise InvalidQuery(
            f"step: {raw!r} is not a duration: a whole number of seconds, or a number with "
            "s, m, h or d (e.g. 300, 5m, 1h)"
        )
    return int(match.group(1)) * _UNIT[match.group(2)]


def check_since(since: datetime, settings: Settings, now: datetime) -> datetime:
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    if since > now:
        raise InvalidQuery("since: must not be in the future")
    oldest = now - timedelta(days=settings.health_history_days)
    if since < oldest - timedelta(minutes=1):
        raise InvalidQuery(
            f"since: health history is kept for {settings.health_history_days:g} days "
            f"(FLOWGATE_HEALTH_HISTORY_DAYS); the oldest since is {oldest.isoformat()}"
        )
    return since


def _encode(at: datetime, row_id: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([at.isoformat(), row_id])).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, row_id = orjson.loads(raw)
        when = datetime.fromisoformat(str(at))
        if when.tzinfo is None or not isinstance(row_id, int):
            raise ValueError(at)
        return when, row_id
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise DomainError("Invalid cursor") from None


async def gateway_history(
    session: AsyncSession,
    org_id: uuid.UUID,
    gateway_id: uuid.UUID,
    *,
    since: datetime | None,
    limit: int,
    cursor: str | None,
) -> HealthHistoryPage:
    await repository.get(session, org_id, gateway_id)  # 404 for another org's gateway
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    after = _decode(cursor) if cursor else None
    rows = await repository.health_history(
        session, org_id, gateway_id, since=since, limit=limit + 1, after=after
    )
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        HealthTransitionOut(from_=c.from_health, to=c.to_health, reason=c.reason, at=c.at)
        for _, c in rows
    ]
    next_cursor = _encode(rows[-1][1].at, rows[-1][0]) if more and rows else None
    return HealthHistoryPage(gateway_id=gateway_id, items=items, next_cursor=next_cursor)


async def fleet_history(
    session: AsyncSession,
    settings: Settings,
    org_id: uuid.UUID,
    *,
    since: datetime | None,
    step: str | None,
) -> FleetHealthHistory:
    now = utcnow()
    since = check_since(since or now - timedelta(hours=24), settings, now)
    step_seconds = parse_step(step) if step is not None else 3600
    span = (now - since).total_seconds()
    buckets = max(1, math.ceil(span / step_seconds))
    if buckets > MAX_POINTS:
        raise InvalidQuery(
            f"step: {step_seconds} s over {int(span)} s makes {buckets} buckets; at most "
            f"{MAX_POINTS} (use a larger step or a later since)"
        )
    current = dict.fromkeys(HEALTH_STATES, 0)
    for _, health, n in await repository.counts(session, org_id):
        if health in current:
            current[health] += n
    # undo[b][h]: what undoing bucket b's transitions adds to health h.
    undo: dict[int, dict[str, int]] = {}
    moves: dict[int, int] = {}
    for bucket, from_health, to_health, n in await repository.health_transition_buckets(
        session, org_id, since, step_seconds
    ):
        delta = undo.setdefault(min(bucket, buckets - 1), dict.fromkeys(HEALTH_STATES, 0))
        if to_health in delta:
            delta[to_health] -= n
        if from_health in delta:
            delta[from_health] += n
        moves[min(bucket, buckets - 1)] = moves.get(min(bucket, buckets - 1), 0) + n
    points: list[FleetHealthPoint] = []
    state = dict(current)
    for k in range(buckets - 1, -1, -1):
        start = since + timedelta(seconds=k * step_seconds)
        end = min(start + timedelta(seconds=step_seconds), now)
        points.append(
            FleetHealthPoint(
                start=start,
                end=end,
                **state,
                total=sum(state.values()),
                transitions=moves.get(k, 0),
            )
        )
        for health, d in undo.get(k, {}).items():
            state[health] += d
    points.reverse()
    return FleetHealthHistory(org_id=org_id, since=since, step_seconds=step_seconds, points=points)
