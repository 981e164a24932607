"""Health of a gateway: the one definition, as a Python rule and as the same rule in SQL.

Age = now - last_seen. Precedence: status inactive or error -> offline (score 0); never seen ->
unhealthy (20); age <= healthy threshold and status active -> healthy (100); age <= warning
threshold -> warning (50); else unhealthy (20). Boundaries are inclusive. Thresholds are the
settings ``FLOWGATE_HEALTH_HEALTHY_SECONDS`` (60) and ``FLOWGATE_HEALTH_WARNING_SECONDS`` (300).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_

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
