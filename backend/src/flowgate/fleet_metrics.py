"""The fleet gauges of ``/metrics``: computed in the background, served from memory.

At most once per ``FLOWGATE_METRICS_FLEET_SECONDS`` the trigger-maintained counts
(:func:`flowgate.gateways.queries.fleet_counts`) are read by organisation, status and health;
a scrape only formats the cached numbers, so it costs the same at 10 or 100k gateways.
Every replica computes the same numbers: aggregate with ``max by (org)``, never ``sum``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import select

from flowgate.core import background
from flowgate.core.background import BackgroundTask
from flowgate.core.uow import UnitOfWork
from flowgate.gateways import queries
from flowgate.gateways.health import SCORES
from flowgate.orgs.models import Organization

log = logging.getLogger(__name__)


#: (org id, org name, status, health) -> gateways
FleetCounts = dict[tuple[uuid.UUID, str, str, str], int]


class FleetGauges(Collector):
    """The fleet gauges, recomputed in the background and served from memory."""

    def __init__(self, unit_of_work: Callable[[], UnitOfWork], seconds: float) -> None:
        self._unit_of_work = unit_of_work
        self.seconds = seconds
        self.counts: FleetCounts = {}
        self.computed_at: float | None = None
        #: How long the last computation took (the grouped query and the org names).
        self.last_duration = 0.0
        self._task = BackgroundTask("metrics-fleet-gauges")

    async def refresh(self) -> None:
        started = time.perf_counter()
        async with self._unit_of_work() as uow:
            rows = await queries.fleet_counts(uow.session)
            names = dict(
                (await uow.session.execute(select(Organization.id, Organization.name))).all()
            )
        self.counts = {
            (org, names.get(org, str(org)), status.value, health): n
            for org, status, health, n in rows
        }
        self.computed_at = time.monotonic()
        self.last_duration = time.perf_counter() - started

    async def _run(self) -> None:
        while True:
            await background.step(self.refresh, where="metrics fleet gauges")
            await asyncio.sleep(self.seconds)

    def start(self) -> None:
        self._task.start(self._run)

    async def stop(self) -> None:
        await self._task.stop()

    def collect(self) -> Iterator[Metric]:
        gateways = GaugeMetricFamily(
            "flowgate_gateways",
            "Gateways by organisation, status and health (fleet-wide; same on every replica)",
            labels=["org_id", "org", "status", "health"],
        )
        score = GaugeMetricFamily(
            "flowgate_gateway_health_score_average",
            "Average health score (0-100) of the organisation's gateways (fleet-wide)",
            labels=["org_id", "org"],
        )
        totals: dict[tuple[uuid.UUID, str], list[int]] = {}
        for (org_id, org, status, health), n in sorted(self.counts.items()):
            gateways.add_metric([str(org_id), org, status, health], n)
            acc = totals.setdefault((org_id, org), [0, 0])
            acc[0] += n
            acc[1] += n * SCORES[health]
        for (org_id, org), (n, points) in sorted(totals.items()):
            score.add_metric([str(org_id), org], points / n if n else 0)
        yield gateways
        yield score
        age = time.monotonic() - self.computed_at if self.computed_at is not None else -1
        yield GaugeMetricFamily(
            "flowgate_fleet_gauges_age_seconds",
            "Seconds since the fleet gauges were computed (-1: not yet)",
            value=age,
        )
        yield GaugeMetricFamily(
            "flowgate_fleet_gauges_duration_seconds",
            "How long computing the fleet gauges took last time",
            value=self.last_duration,
        )
