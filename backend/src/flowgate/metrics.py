"""Prometheus metrics of this replica, read from live state at scrape time (no hot-path cost)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from flowgate.fleet import gcstats

if TYPE_CHECKING:
    from flowgate.runtime import Runtime


class RuntimeCollector(Collector):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

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
            "flowgate_opamp_messages",
            "AgentToServer messages processed",
            value=agents.messages,
        )
        yield CounterMetricFamily(
            "flowgate_presence_flushes", "Batched presence writes", value=stats.flushes
        )
        yield CounterMetricFamily(
            "flowgate_presence_rows", "Gateway rows written by presence flushes", value=stats.rows
        )
        yield CounterMetricFamily(
            "flowgate_presence_statements",
            "UPDATE statements (executemany batches) issued by presence flushes",
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
            "Objects in the permanent generation (FLOWGATE_GC_FREEZE_SECONDS)",
            value=gc.get_freeze_count(),
        )
        yield CounterMetricFamily(
            "flowgate_presence_flush_failures", "Presence flushes that failed", value=stats.failures
        )


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def build_registry(runtime: Runtime) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(RuntimeCollector(runtime))
    registry.register(runtime.alerts.collector())
    return registry
