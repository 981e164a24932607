"""Prometheus metrics of alerting on this replica (registered by ``flowgate.metrics``).

Webhook attempts are counted in :data:`flowgate.telemetry.ALERT_NOTIFICATIONS`
(``flowgate_alert_notifications_total{result=sent|failed|abandoned}``), with the other
counters; this adds the evaluations this replica ran.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from flowgate.alerts.evaluator import Evaluator


class AlertsCollector(Collector):
    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(
            "flowgate_alert_evaluations",
            "Alert rule evaluations run by this replica (one replica at a time holds the lease)",
            value=self.evaluator.evaluations,
        )
