"""The fleet list: keyset pages, filters and the summary counts, all from the database.

Items, filters and summary all use the *stored* health (``gateways.health``), so they always
agree (no in-memory overlay on one of them, no rule evaluated at a different moment). The
summary reads the per-organisation counts the triggers maintain (``gateway_counts`` plus
``gateway_count_deltas``), never a scan of the fleet. Staleness: ``last_seen``, versions and
metrics are at most one presence flush old (``FLOWGATE_FLUSH_INTERVAL_SECONDS``); status
changes are flushed at once; health that changes only with time (a silent gateway going
healthy -> warning -> unhealthy) at most one health sweep old (``FLOWGATE_HEALTH_SWEEP_SECONDS``).
The per-gateway views (``GET /gateways/{id}``, ``/health``, ``/status``) evaluate the rule at
read time.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from datetime import datetime

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.core.db import utcnow
from flowgate.core.errors import DomainError
from flowgate.core.settings import Settings
from flowgate.gateways import repository
from flowgate.gateways.health import HEALTH_STATES, SCORES
from flowgate.gateways.models import Gateway, GatewayStatus
from flowgate.gateways.schemas import FleetSummary, GatewayHealthSummary, GatewayOut
from flowgate.gateways.views import gateway_out


def encode_cursor(name: str, gateway_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([name, str(gateway_id)])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        name, gid = orjson.loads(raw)
        if "\x00" in str(name):  # never a stored name, and PostgreSQL cannot compare it
            raise ValueError(name)
        return str(name), uuid.UUID(str(gid))
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise DomainError("Invalid cursor") from None


def _rule(settings: Settings) -> repository.HealthRule:
    return repository.HealthRule(
        utcnow(), settings.health_healthy_seconds, settings.health_warning_seconds
    )


async def list_gateways(
    session: AsyncSession,
    settings: Settings,
    org_id: uuid.UUID,
    filters: repository.ListFilter,
    *,
    limit: int,
    cursor: str | None,
) -> tuple[list[GatewayOut], str | None]:
    """One keyset page ordered by (name, id); stays O(page) however large the fleet."""
    rule = _rule(settings)
    after = decode_cursor(cursor) if cursor else None
    rows = await repository.page(session, org_id, filters, rule, limit=limit + 1, after=after)
    more = len(rows) > limit
    rows = rows[:limit]
    items = [_listed(settings, g, rule.now) for g in rows]
    next_cursor = encode_cursor(rows[-1].name, rows[-1].id) if more and rows else None
    return items, next_cursor


def _listed(settings: Settings, gateway: Gateway, now: datetime) -> GatewayOut:
    item = gateway_out(settings, gateway, now)
    item.health = GatewayHealthSummary(
        status=gateway.health, health_score=SCORES.get(gateway.health, 0)
    )
    return item


class SummaryCache:
    """Fleet counts per organisation, kept for ``FLOWGATE_SUMMARY_CACHE_SECONDS`` (0 = off)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._entries: dict[uuid.UUID, tuple[float, FleetSummary]] = {}

    def get(self, org_id: uuid.UUID) -> FleetSummary | None:
        cached = self._entries.get(org_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return None

    def put(self, org_id: uuid.UUID, summary: FleetSummary) -> None:
        if self.seconds > 0:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[org_id] = (time.monotonic() + self.seconds, summary)

    def invalidate(self, org_id: uuid.UUID) -> None:
        self._entries.pop(org_id, None)


async def fleet_summary(
    session: AsyncSession, settings: Settings, cache: SummaryCache, org_id: uuid.UUID
) -> FleetSummary:
    """Counts by status and stored health, from the maintained per-organisation counts."""
    cached = cache.get(org_id)
    if cached is not None:
        return cached
    by_status = {s.value: 0 for s in GatewayStatus}
    by_health = dict.fromkeys(HEALTH_STATES, 0)
    total = 0
    for status, health, count in await repository.counts(session, org_id):
        by_status[status.value] += count
        by_health[health] += count
        total += count
    summary = FleetSummary(total=total, by_status=by_status, by_health=by_health)
    cache.put(org_id, summary)
    return summary


async def fleet_counts(session: AsyncSession) -> list[tuple[uuid.UUID, GatewayStatus, str, int]]:
    """Counts by organisation, status and health over the whole fleet, from the maintained
    counts (the fleet gauges of ``/metrics``, computed in the background)."""
    return await repository.counts_by_org(session)
