"""Prometheus metrics of alerting on this replica (registered by ``flowgate.metrics``)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from flowgate.alerts.evaluator import Evaluator
from flowgate.alerts.webhooks import DeliveryStats


class AlertsCollector(Collector):
    def __init__(self, stats: DeliveryStats, evaluator: Evaluator) -> None:
        self.stats = stats
        self.evaluator = evaluator

    def collect(self) -> Iterator[Metric]:
        notifications = CounterMetricFamily(
            "flowgate_alert_notifications",
            "Webhook delivery attempts by this replica, by result (failed: an attempt that "
            "failed; abandoned: a notification given up after its last attempt)",
            labels=["result"],
        )
        notifications.add_metric(["sent"], self.stats.sent)
        notifications.add_metric(["failed"], self.stats.failed)
        notifications.add_metric(["abandoned"], self.stats.abandoned)
        yield notifications
        yield CounterMetricFamily(
            "flowgate_alert_evaluations",
            "Alert rule evaluations run by this replica (one replica at a time holds the lease)",
            value=self.evaluator.evaluations,
        )
