"""FlowGate's own counters: plain integers in memory, bumped where things happen, exported at
``/metrics`` by :mod:`flowgate.metrics` (rendered ``<name>_total``).

Each replica counts what it did itself; sum them across replicas in PromQL (``sum by
(reason) (rate(...))``). Bumping one is a dictionary update: no lock, no I/O, cheap on the
OpAMP hot path (the event loop is single-threaded).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily


class Counter:
    """A counter family with fixed label names; ``inc("a", "b")`` bumps one labelled series."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: tuple[str, ...] = (),
        known: tuple[tuple[str, ...], ...] = (),
    ) -> None:
        """``known``: label values exported from the start at 0, so a replica that has not
        seen one yet still has the series (``rate()`` and sums over replicas need it)."""
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self.values: dict[tuple[str, ...], float] = dict.fromkeys(known, 0)
        ALL.append(self)

    def inc(self, *labels: str, amount: float = 1) -> None:
        assert len(labels) == len(self.labels), self.name
        self.values[labels] = self.values.get(labels, 0) + amount

    def get(self, *labels: str) -> float:
        return self.values.get(labels, 0)

    def family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(self.name, self.documentation, labels=list(self.labels))
        for labels, value in sorted(self.values.items()):
            family.add_metric(list(labels), value)
        if not self.labels and not self.values:
            family.add_metric([], 0)
        return family


ALL: list[Counter] = []

HEARTBEATS = Counter(
    "flowgate_heartbeats_received",
    "REST heartbeats received (POST /api/v1/opamp/heartbeat/{instance_id}), accepted or not",
)
HEARTBEATS_REFUSED = Counter(
    "flowgate_heartbeats_refused",
    "REST heartbeats refused, by reason (invalid_token, instance_mismatch)",
    ("reason",),
)
REGISTRATIONS = Counter(
    "flowgate_registrations",
    "Gateway enrolments, by transport (rest, opamp) and outcome (created, reregistered)",
    ("transport", "outcome"),
)
OPAMP_MESSAGES = Counter(
    "flowgate_opamp_messages",
    "AgentToServer messages processed, by transport (ws, http)",
    ("transport",),
)
DEPLOYMENTS_CREATED = Counter("flowgate_deployments_created", "Deployments created")
DEPLOYMENTS_FINISHED = Counter(
    "flowgate_deployments_finished",
    "Deployments that ended, by state (completed, failed, rolled_back, cancelled)",
    ("state",),
)
ROLLOUT_TARGETS = Counter(
    "flowgate_rollout_targets",
    "Gateways that reported the outcome of a rollout, by result (applied, failed)",
    ("result",),
)
ALERT_NOTIFICATIONS = Counter(
    "flowgate_alert_notifications",
    "Webhook delivery attempts, by result (sent; failed: an attempt that failed; abandoned: a "
    "notification given up after its last attempt)",
    ("result",),
    known=(("sent",), ("failed",), ("abandoned",)),
)
AUTH_FAILURES = Counter(
    "flowgate_auth_failures",
    "Requests refused for a missing or invalid credential, by credential (bearer, password, "
    "session, registration_token, opamp)",
    ("credential",),
)
AUDIT_ENTRIES = Counter(
    "flowgate_audit_entries",
    "Audit log entries written, by result (success, denied, failed)",
    ("result",),
)


def families() -> Iterator[CounterMetricFamily]:
    for counter in ALL:
        yield counter.family()
