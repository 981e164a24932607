"""Prometheus metrics at ``/metrics`` (docs/observability.md).

- This replica's internals, read from live state at scrape time (no hot-path cost).
- Its counters (:mod:`flowgate.telemetry`): in memory, per replica; sum them in PromQL.
- Fleet gauges (gateways by organisation, status and health; average health score): computed
  by :class:`flowgate.fleet_metrics.FleetGauges` in the background, at most once per
  ``FLOWGATE_METRICS_FLEET_SECONDS``, with one grouped query, and served from that cache — a
  scrape never touches the database, however large the fleet. Every replica computes the same
  numbers; aggregate them with ``max by (org)``, not ``sum``.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from flowgate import telemetry
from flowgate.fleet import gcstats

if TYPE_CHECKING:
    from flowgate.runtime import Runtime

log = logging.getLogger(__name__)


#: ``gc.get_freeze_count()`` walks the whole permanent generation (~50 ms in a running server
#: on 2 cores): read it at most this often, not on every scrape.
FROZEN_COUNT_SECONDS = 60.0
_frozen: list[float] = [0.0, -FROZEN_COUNT_SECONDS]  # value, when read (monotonic)


def _frozen_objects() -> float:
    now = time.monotonic()
    if now - _frozen[1] >= FROZEN_COUNT_SECONDS:
        _frozen[:] = [float(gc.get_freeze_count()), now]
    return _frozen[0]


class RuntimeCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def describe(self) -> list[Metric]:
        # Not collect() at registration, before the server started (and froze anything).
        return []

    def collect(self) -> Iterator[Metric]:
        stats = self.runtime.presence.stats
        agents = self.runtime.agents
        yield GaugeMetricFamily(
            "flowgate_opamp_websocket_connections",
            "Open OpAMP WebSocket connections on this replica",
            value=agents.connections,
        )
        yield GaugeMetricFamily(
            "flowgate_opamp_agents",
            "Native OpAMP agents with hot state on this replica",
            value=len(agents.agents),
        )
        yield CounterMetricFamily(
            "flowgate_presence_flushes", "Batched presence writes", value=stats.flushes
        )
        yield CounterMetricFamily(
            "flowgate_presence_rows", "Gateway rows written by presence flushes", value=stats.rows
        )
        yield CounterMetricFamily(
            "flowgate_presence_statements",
            "UPDATE statements issued by presence flushes (one per column set)",
            value=stats.statements,
        )
        collections = CounterMetricFamily(
            "flowgate_gc_collections", "Garbage collections", labels=["generation"]
        )
        seconds = CounterMetricFamily(
            "flowgate_gc_pause_seconds", "Time spent in garbage collection", labels=["generation"]
        )
        longest = GaugeMetricFamily(
            "flowgate_gc_pause_max_seconds", "Longest collection", labels=["generation"]
        )
        for generation in range(3):
            label = [str(generation)]
            collections.add_metric(label, gcstats.STATS.collections[generation])
            seconds.add_metric(label, gcstats.STATS.seconds[generation])
            longest.add_metric(label, gcstats.STATS.max_seconds[generation])
        yield collections
        yield seconds
        yield longest
        yield GaugeMetricFamily(
            "flowgate_gc_frozen_objects",
            "Objects in the permanent generation (FLOWGATE_GC_FREEZE_SECONDS; read once a minute)",
            value=_frozen_objects(),
        )
        yield CounterMetricFamily(
            "flowgate_presence_flush_failures", "Presence flushes that failed", value=stats.failures
        )


class TelemetryCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        yield from telemetry.families()


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def build_registry(runtime: Runtime) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(RuntimeCollector(runtime))
    registry.register(TelemetryCollector())
    registry.register(runtime.fleet_gauges)
    registry.register(runtime.alerts.collector())
    return registry
