"""Health of a gateway: offline (inactive/error, 0), unhealthy (never seen or too old, 20),
warning (50) and healthy (active and recent, 100), with inclusive thresholds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flowgate.gateways.models import GatewayStatus

HEALTHY, WARNING, UNHEALTHY, OFFLINE = "healthy", "warning", "unhealthy", "offline"
HEALTH_STATES = (HEALTHY, WARNING, UNHEALTHY, OFFLINE)
SCORES = {HEALTHY: 100, WARNING: 50, UNHEALTHY: 20, OFFLINE: 0}


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
    """Precedence: inactive/error -> offline; never seen -> unhealthy; age <= healthy and
    active -> healthy; age <= warning -> warning; else unhealthy. Boundaries are inclusive."""
    age = (now - last_seen).total_seconds() if last_seen is not None else None
    if status in (GatewayStatus.inactive, GatewayStatus.error):
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
