"""Alerting's background parts on one replica: the evaluator (under a lease, so one replica
evaluates at a time) and the webhook sender (on every replica, claiming outbox rows)."""

from __future__ import annotations

from collections.abc import Callable

from flowgate.alerts.evaluator import Evaluator
from flowgate.alerts.metrics import AlertsCollector
from flowgate.alerts.webhooks import Sender
from flowgate.core.settings import Settings
from flowgate.core.uow import UnitOfWork


class Alerting:
    def __init__(self, unit_of_work: Callable[[], UnitOfWork], settings: Settings) -> None:
        self.sender = Sender(unit_of_work, settings)
        self.evaluator = Evaluator(unit_of_work, settings, on_queued=self.sender.wake)

    def start(self) -> None:
        self.sender.start()
        self.evaluator.start()

    async def stop(self) -> None:
        await self.evaluator.stop()
        await self.sender.stop()

    def collector(self) -> AlertsCollector:
        return AlertsCollector(self.evaluator)
