"""Health of a gateway: the one definition, as a Python rule and as the same rule in SQL.

Age = now - last_seen. Precedence: status inactive or error -> offline (score 0); never seen ->
unhealthy (20); age <= healthy threshold and status active -> healthy (100); age <= warning
threshold -> warning (50); else unhealthy (20). Boundaries are inclusive. Thresholds are the
settings ``FLOWGATE_HEALTH_HEALTHY_SECONDS`` (60) and ``FLOWGATE_HEALTH_WARNING_SECONDS`` (300).

The rule is also *stored* (``gateways.health``): every write that changes status or last_seen
sets it with :func:`health_case` in the same UPDATE, and the health sweep
(:mod:`flowgate.gateways.sweep`) rewrites every row :func:`out_of_step` finds, so the stored
value is the rule as of the last sweep (at most ``FLOWGATE_HEALTH_SWEEP_SECONDS`` old). Each
change of the stored value is recorded in ``gateway_health_history`` by a database trigger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, case, literal_column, or_

from flowgate.gateways.models import Gateway, GatewayStatus

HEALTHY, WARNING, UNHEALTHY, OFFLINE = "healthy", "warning", "unhealthy", "offline"
HEALTH_STATES = (HEALTHY, WARNING, UNHEALTHY, OFFLINE)
SCORES = {HEALTHY: 100, WARNING: 50, UNHEALTHY: 20, OFFLINE: 0}
#: Statuses in which a gateway is offline whatever it last reported.
OFFLINE_STATUSES = frozenset({GatewayStatus.inactive, GatewayStatus.error})


@dataclass(frozen=True)
class Health:
    status: str
    score: int
    seconds_since_last_seen: float | None


def compute_health(
    status: GatewayStatus,
    last_seen: datetime | None,
    now: datetime,
    healthy_seconds: float = 60,
    warning_seconds: float = 300,
) -> Health:
    age = (now - last_seen).total_seconds() if last_seen is not None else None
    if status in OFFLINE_STATUSES:
        state = OFFLINE
    elif age is None:
        state = UNHEALTHY
    elif age <= healthy_seconds and status == GatewayStatus.active:
        state = HEALTHY
    elif age <= warning_seconds:
        state = WARNING
    else:
        state = UNHEALTHY
    return Health(state, SCORES[state], age)


def health_condition(
    state: str, now: datetime, healthy_seconds: float, warning_seconds: float
) -> Any:
    """SQL for "the gateway is in ``state``", mirroring :func:`compute_health` exactly."""
    healthy_after = now - timedelta(seconds=healthy_seconds)
    warning_after = now - timedelta(seconds=warning_seconds)
    offline = Gateway.status.in_(sorted(OFFLINE_STATUSES))
    is_healthy = and_(Gateway.status == GatewayStatus.active, Gateway.last_seen >= healthy_after)
    if state == OFFLINE:
        return offline
    if state == HEALTHY:
        return is_healthy
    if state == WARNING:
        return and_(~offline, Gateway.last_seen >= warning_after, ~is_healthy)
    if state == UNHEALTHY:
        return and_(~offline, or_(Gateway.last_seen.is_(None), Gateway.last_seen < warning_after))
    raise ValueError(f"unknown health state {state!r}")


# -- the rule in SQL, over any status and last_seen expressions --------------------------------


def health_case(
    status: Any, last_seen: Any, now: datetime, healthy_seconds: float, warning_seconds: float
) -> Any:
    """SQL CASE giving the health of ``status`` and ``last_seen`` (columns, or bind parameters
    carrying new values) at ``now``, exactly as :func:`compute_health` does."""
    healthy_after = now - timedelta(seconds=healthy_seconds)
    warning_after = now - timedelta(seconds=warning_seconds)
    # Comparisons, not IN (...): an expanding IN cannot be part of an executemany. The fixed
    # strings are SQL literals, not parameters: in a presence flush's executemany every
    # parameter is sent (and processed) once per row.
    offline = or_(*(status == _sql(s) for s in sorted(OFFLINE_STATUSES)))
    return case(
        (offline, _sql(OFFLINE)),
        (last_seen.is_(None), _sql(UNHEALTHY)),
        (and_(status == _sql(GatewayStatus.active), last_seen >= healthy_after), _sql(HEALTHY)),
        (last_seen >= warning_after, _sql(WARNING)),
        else_=_sql(UNHEALTHY),
    )


def _sql(value: str) -> Any:
    """A string constant as an SQL literal (the states and statuses are fixed identifiers)."""
    assert value.isidentifier()
    return literal_column(f"'{value}'", String(16))


def out_of_step(now: datetime, healthy_seconds: float, warning_seconds: float) -> Any:
    """SQL for "the stored ``health`` differs from the rule at ``now``", written as a flat OR of
    (health = h AND status = s [AND a last_seen range]) terms, each one range of the index on
    (health, status, last_seen), so the sweep reads only the rows it rewrites."""
    healthy_after = now - timedelta(seconds=healthy_seconds)
    warning_after = now - timedelta(seconds=warning_seconds)
    h, s, seen = Gateway.health, Gateway.status, Gateway.last_seen
    offline = sorted(OFFLINE_STATUSES)
    online = sorted(set(GatewayStatus) - OFFLINE_STATUSES)
    terms: list[Any] = []

    def add(health: str, statuses: list[GatewayStatus], *conditions: Any) -> None:
        for status in statuses:
            base = [h == health, s == status]
            if not conditions:
                terms.append(and_(*base))
            for condition in conditions:
                terms.append(and_(*base, condition))

    never, stale, old = seen.is_(None), seen < healthy_after, seen < warning_after
    active = [GatewayStatus.active]
    # (No "health not in HEALTH_STATES" term: it is no index range and would make the whole
    # condition a table scan; only the writers and the sweep store health.)
    add(HEALTHY, sorted(set(GatewayStatus) - {GatewayStatus.active}))
    add(HEALTHY, active, never, stale)
    add(WARNING, offline)
    add(WARNING, online, never, old)
    add(WARNING, active, seen >= healthy_after)
    add(UNHEALTHY, offline)
    add(UNHEALTHY, online, seen >= warning_after)
    add(OFFLINE, online)
    return or_(*terms)
