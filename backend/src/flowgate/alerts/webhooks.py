"""Webhook deliveries: the payload, one signed POST, and the sender draining the outbox.

Every replica runs a :class:`Sender`. Due rows of ``alert_notifications`` are claimed with a
lease (so no two replicas send the same row at once), sent after that claim commits, and their
outcome recorded: sent, or retried after ``backoff * 2**(attempts-1)`` seconds (at most 10
minutes) until ``FLOWGATE_ALERT_WEBHOOK_MAX_ATTEMPTS``, then failed. A replica that dies with
rows claimed leaves them to be retried when the claim lapses, so a delivery may (rarely) arrive
twice: receivers deduplicate by ``X-FlowGate-Delivery``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import or_, select, update

from flowgate import __version__, telemetry
from flowgate.alerts import signing
from flowgate.alerts.models import (
    Alert,
    AlertRule,
    DeliveryState,
    Notification,
    NotificationChannel,
)
from flowgate.core import background
from flowgate.core.background import BackgroundTask
from flowgate.core.db import utcnow
from flowgate.core.settings import Settings
from flowgate.core.uow import UnitOfWork

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

PAYLOAD_VERSION = 1
BATCH = 50
MAX_BACKOFF_SECONDS = 600.0
POLL_SECONDS = 1.0


def alert_payload(event: str, rule: AlertRule, alert: Alert) -> dict[str, Any]:
    """What a receiver gets for ``event`` (firing or resolved); see docs/alerting.md."""
    return {
        "version": PAYLOAD_VERSION,
        "event": event,
        "org_id": str(alert.org_id),
        "alert": {
            "id": str(alert.id),
            "state": alert.state.value,
            "rule": {"id": str(rule.id), "name": rule.name, "kind": rule.kind.value},
            "subject": alert.subject,
            "subject_name": alert.subject_name,
            "summary": alert.summary,
            "labels": alert.labels,
            "details": alert.details,
            "started_at": alert.started_at.isoformat(),
            "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        },
    }


def test_payload(channel: NotificationChannel) -> dict[str, Any]:
    return {
        "version": PAYLOAD_VERSION,
        "event": "test",
        "org_id": str(channel.org_id),
        "alert": None,
        "channel": {"id": str(channel.id), "name": channel.name},
    }


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None
    error: str | None


class Sender:
    def __init__(self, unit_of_work: Callable[[], UnitOfWork], settings: Settings) -> None:
        self._unit_of_work = unit_of_work
        self._settings = settings
        self.instance = uuid.uuid4().hex
        self._client: httpx.AsyncClient | None = None
        self._task = BackgroundTask("alert-sender")
        self._wake = asyncio.Event()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            import httpx  # here, not at import: every process (workers, the CLI) imports this

            self._client = httpx.AsyncClient(
                timeout=self._settings.alert_webhook_timeout_seconds,
                follow_redirects=False,
                headers={"User-Agent": f"FlowGate/{__version__}"},
            )
        return self._client

    def wake(self) -> None:
        """Deliver now (the evaluator queued notifications)."""
        self._wake.set()

    async def post(
        self,
        url: str,
        secret: str,
        payload: dict[str, Any],
        delivery_id: uuid.UUID,
        attempt: int,
    ) -> Outcome:
        """One signed POST; 2xx is delivered. Counted in :attr:`stats`."""
        timestamp = int(time.time())
        body = orjson.dumps(
            {**payload, "delivery_id": str(delivery_id), "attempt": attempt, "timestamp": timestamp}
        )
        headers = {
            "Content-Type": "application/json",
            signing.SIGNATURE_HEADER: signing.signature(secret, body),
            signing.TIMESTAMP_HEADER: str(timestamp),
            signing.EVENT_HEADER: str(payload.get("event")),
            signing.DELIVERY_HEADER: str(delivery_id),
        }
        import httpx

        try:
            response = await self.client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            telemetry.ALERT_NOTIFICATIONS.inc("failed")
            return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:300])
        if 200 <= response.status_code < 300:
            telemetry.ALERT_NOTIFICATIONS.inc("sent")
            return Outcome(True, response.status_code, None)
        telemetry.ALERT_NOTIFICATIONS.inc("failed")
        return Outcome(False, response.status_code, f"HTTP {response.status_code}")

    async def drain(self) -> int:
        """Send every due notification this replica can claim; returns how many were tried."""
        tried = 0
        while True:
            batch = await self._claim()
            if not batch:
                return tried
            outcomes = await asyncio.gather(
                *(
                    self.post(url, secret, n.payload, n.id, n.attempts + 1)
                    for n, url, secret in batch
                )
            )
            await self._record([n for n, _, _ in batch], outcomes)
            tried += len(batch)

    async def _claim(self) -> list[tuple[Notification, str, str]]:
        now = utcnow()
        free = or_(Notification.lease_until.is_(None), Notification.lease_until < now)
        hold = timedelta(seconds=self._settings.alert_webhook_timeout_seconds + 30)
        key = self._settings.signing_key
        async with self._unit_of_work() as uow:
            session = uow.session
            ids = list(
                await session.scalars(
                    select(Notification.id)
                    .where(
                        Notification.state == DeliveryState.pending,
                        Notification.next_attempt_at <= now,
                        free,
                    )
                    .order_by(Notification.next_attempt_at)
                    .limit(BATCH)
                )
            )
            if not ids:
                return []
            claimed = list(
                await session.scalars(
                    update(Notification)
                    .where(
                        Notification.id.in_(ids),
                        Notification.state == DeliveryState.pending,
                        free,
                    )
                    .values(lease_owner=self.instance, lease_until=now + hold)
                    .returning(Notification.id)
                    .execution_options(synchronize_session=False)
                )
            )
            if not claimed:
                return []
            rows = await session.execute(
                select(Notification, NotificationChannel.url, NotificationChannel.secret_salt)
                .join(NotificationChannel, NotificationChannel.id == Notification.channel_id)
                .where(Notification.id.in_(claimed))
                .execution_options(populate_existing=True)
            )
            return [
                (n, url, signing.channel_secret(key, salt)) for n, url, salt in rows.tuples().all()
            ]

    async def _record(self, batch: list[Notification], outcomes: list[Outcome]) -> None:
        now = utcnow()
        limit = self._settings.alert_webhook_max_attempts
        base = self._settings.alert_webhook_backoff_seconds
        async with self._unit_of_work() as uow:
            for notification, outcome in zip(batch, outcomes, strict=True):
                attempts = notification.attempts + 1
                values: dict[str, Any] = {
                    "attempts": attempts,
                    "last_status": outcome.status_code,
                    "last_error": outcome.error,
                    "lease_owner": None,
                    "lease_until": None,
                }
                if outcome.ok:
                    values.update(state=DeliveryState.sent, sent_at=now)
                elif attempts >= limit:
                    values.update(state=DeliveryState.failed)
                    telemetry.ALERT_NOTIFICATIONS.inc("abandoned")
                    log.warning(
                        "webhook delivery failed; giving up",
                        extra={
                            "notification_id": str(notification.id),
                            "channel_id": str(notification.channel_id),
                            "attempts": attempts,
                            "error": outcome.error,
                        },
                    )
                else:
                    delay = min(base * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS)
                    values.update(next_attempt_at=now + timedelta(seconds=delay))
                    log.info(
                        "webhook delivery failed; will retry",
                        extra={
                            "notification_id": str(notification.id),
                            "channel_id": str(notification.channel_id),
                            "attempts": attempts,
                            "retry_in_seconds": delay,
                            "error": outcome.error,
                        },
                    )
                await uow.session.execute(
                    update(Notification)
                    .where(
                        Notification.id == notification.id,
                        Notification.lease_owner == self.instance,
                    )
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=POLL_SECONDS)
            self._wake.clear()
            await background.step(self.drain, where="alert sender")

    def start(self) -> None:
        self._task.start(self._run)

    async def stop(self) -> None:
        await self._task.stop()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
