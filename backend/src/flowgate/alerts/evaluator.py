"""The alert evaluator: every ``FLOWGATE_ALERT_INTERVAL_SECONDS``, the replica holding the
evaluator's lease evaluates every rule of every organisation, in one transaction.

For each rule it finds the subjects the rule holds for now, then: a subject without a firing
alert gets one (at most one firing alert per rule and subject: ``alerts.open_key`` is unique);
a firing alert whose subject no longer matches is resolved. Notifications (one per channel of
the rule) go into the outbox in the same transaction: one when an alert fires (or, if it fired
while silenced, when the silence ends), one when a notified alert resolves. The sender delivers
them after the commit. Evaluating and queueing under the lease in one transaction is what
makes both happen exactly once across replicas.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.alerts import leases
from flowgate.alerts.models import (
    Alert,
    AlertRule,
    AlertState,
    DeliveryState,
    Notification,
    NotificationChannel,
    RuleKind,
    Silence,
)
from flowgate.alerts.webhooks import alert_payload
from flowgate.configs.models import ConfigTemplate, Deployment, DeploymentState
from flowgate.core import background
from flowgate.core.background import BackgroundTask
from flowgate.core.db import utcnow
from flowgate.core.errors import DomainError
from flowgate.core.settings import Settings
from flowgate.core.uow import UnitOfWork
from flowgate.gateways import repository
from flowgate.gateways.selectors import Selector, parse
from flowgate.tokens.models import RegistrationToken

log = logging.getLogger(__name__)

LEASE_NAME = "alerts-evaluator"
#: Most alerts one rule raises in one evaluation (say, gateways unhealthy at once).
MAX_SUBJECTS = 1000


@dataclass
class Finding:
    """A subject a rule holds for now."""

    name: str
    summary: str
    labels: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    evaluated: int = 0
    fired: int = 0
    resolved: int = 0
    queued: int = 0


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never seen"
    seconds = int((now - moment).total_seconds())
    if seconds < 120:
        return f"last seen {seconds} s ago"
    return f"last seen {seconds // 60} min ago"


async def find(
    session: AsyncSession, rule: AlertRule, settings: Settings, now: datetime
) -> tuple[dict[str, Finding], bool]:
    """(subject -> finding, whether the list was cut at MAX_SUBJECTS) for one rule."""
    params = rule.params or {}
    selector: Selector | None = parse(rule.selector) if rule.selector else None
    health = repository.HealthRule(
        now, settings.health_healthy_seconds, settings.health_warning_seconds
    )
    found: dict[str, Finding] = {}
    if rule.kind == RuleKind.gateway_unhealthy:
        minutes = float(params.get("for_minutes", 5))
        rows = await repository.alert_unhealthy_gateways(
            session, rule.org_id, selector, health, minutes * 60, MAX_SUBJECTS
        )
        for row in rows:
            found[str(row.gateway_id)] = Finding(
                name=row.name,
                summary=f"Gateway {row.name} is {row.health} ({_ago(row.last_seen, now)})",
                labels=row.labels,
                details={
                    "gateway_id": str(row.gateway_id),
                    "health": row.health,
                    "last_seen": row.last_seen.isoformat() if row.last_seen else None,
                },
            )
        return found, len(rows) >= MAX_SUBJECTS
    if rule.kind == RuleKind.fleet_unhealthy_percent:
        percent = float(params["percent"])
        total, bad = await repository.alert_unhealthy_share(session, rule.org_id, selector, health)
        if total and bad * 100 > percent * total:
            share = bad * 100 / total
            found["fleet"] = Finding(
                name=rule.selector or "all gateways",
                summary=f"{bad} of {total} gateways ({share:.1f} %) are unhealthy or offline "
                f"(more than {percent:g} %)",
                details={"total": total, "unhealthy": bad, "percent": round(share, 3)},
            )
        return found, False
    if rule.kind == RuleKind.deployment_failed:
        since = now - timedelta(minutes=float(params.get("within_minutes", 60)))
        deployments = await session.execute(
            select(
                Deployment.id,
                Deployment.state,
                Deployment.reason,
                Deployment.version,
                Deployment.rollback_of,
                Deployment.updated_at,
                ConfigTemplate.name,
            )
            .outerjoin(ConfigTemplate, ConfigTemplate.id == Deployment.config_id)
            .where(
                Deployment.org_id == rule.org_id,
                Deployment.state.in_((DeploymentState.failed, DeploymentState.rolled_back)),
                Deployment.updated_at >= since,
            )
            .order_by(Deployment.updated_at.desc())
            .limit(MAX_SUBJECTS)
        )
        for did, state, reason, version, rollback_of, updated, config in deployments.tuples().all():
            what = (
                f"{config} v{version}"
                if config
                else ("a rollback" if rollback_of else "a deployment")
            )
            verb = "failed" if state == DeploymentState.failed else "was rolled back"
            found[str(did)] = Finding(
                name=f"deployment {str(did)[:8]}",
                summary=f"Deployment of {what} {verb}" + (f": {reason}" if reason else ""),
                details={
                    "deployment_id": str(did),
                    "state": state.value,
                    "reason": reason,
                    "config_name": config,
                    "version": version,
                    "at": updated.isoformat(),
                },
            )
        return found, False
    if rule.kind == RuleKind.token_expiring:
        until = now + timedelta(hours=float(params.get("hours", 24)))
        tokens = await session.scalars(
            select(RegistrationToken)
            .where(
                RegistrationToken.org_id == rule.org_id,
                RegistrationToken.is_active.is_(True),
                RegistrationToken.revoked_at.is_(None),
                RegistrationToken.expires_at > now,
                RegistrationToken.expires_at <= until,
            )
            .order_by(RegistrationToken.expires_at)
            .limit(MAX_SUBJECTS)
        )
        for token in tokens:
            if token.max_uses is not None and token.use_count >= token.max_uses:
                continue  # used up: it will never enrol anything again
            left = (token.expires_at - now).total_seconds() / 3600
            found[str(token.id)] = Finding(
                name=token.name,
                summary=f"Registration token {token.name} expires in {left:.1f} h "
                f"({token.expires_at.isoformat()})",
                details={"token_id": str(token.id), "expires_at": token.expires_at.isoformat()},
            )
        return found, False
    raise ValueError(f"unknown rule kind {rule.kind!r}")


def _silenced(rule: AlertRule, labels: dict[str, Any], silences: list[Silence]) -> bool:
    for silence in silences:
        if silence.rule_id is not None and silence.rule_id != rule.id:
            continue
        if silence.selector is not None:
            try:
                if not parse(silence.selector).matches(labels):
                    continue
            except DomainError:
                continue  # a selector that no longer parses matches nothing
        return True
    return False


def _queue(
    session: AsyncSession,
    rule: AlertRule,
    alert: Alert,
    event: str,
    channels: set[uuid.UUID],
    now: datetime,
) -> int:
    wanted = [uuid.UUID(c) for c in rule.channel_ids or []]
    targets = [c for c in wanted if c in channels]
    if not targets:
        return 0
    payload = alert_payload(event, rule, alert)
    for channel_id in targets:
        session.add(
            Notification(
                id=uuid.uuid4(),
                org_id=alert.org_id,
                channel_id=channel_id,
                alert_id=alert.id,
                event=event,
                payload=payload,
                state=DeliveryState.pending,
                attempts=0,
                next_attempt_at=now,
            )
        )
    return len(targets)


async def evaluate(session: AsyncSession, settings: Settings, now: datetime) -> Result:
    """Evaluate every rule once (the caller holds the lease and commits)."""
    result = Result()
    rules = list(await session.scalars(select(AlertRule).order_by(AlertRule.created_at)))
    silences: dict[uuid.UUID, list[Silence]] = {}
    for silence in await session.scalars(
        select(Silence).where(Silence.starts_at <= now, Silence.ends_at > now)
    ):
        silences.setdefault(silence.org_id, []).append(silence)
    channels: dict[uuid.UUID, set[uuid.UUID]] = {}
    for cid, org_id in (
        await session.execute(select(NotificationChannel.id, NotificationChannel.org_id))
    ).tuples():
        channels.setdefault(org_id, set()).add(cid)
    firing: dict[uuid.UUID, dict[str, Alert]] = {}
    for open_alert in await session.scalars(select(Alert).where(Alert.state == AlertState.firing)):
        firing.setdefault(open_alert.rule_id, {})[open_alert.subject] = open_alert
    for rule in rules:
        result.evaluated += 1
        org_silences = silences.get(rule.org_id, [])
        org_channels = channels.get(rule.org_id, set())
        open_alerts = firing.get(rule.id, {})
        try:
            found, truncated = (
                await find(session, rule, settings, now) if rule.enabled else ({}, False)
            )
        except (DomainError, ValueError):
            # A rule stored before a rule of the language changed (say, its selector): skip
            # it, leaving its alerts as they are, rather than stop every other rule.
            log.exception("alert rule cannot be evaluated", extra={"rule_id": str(rule.id)})
            continue
        notify: list[Alert] = []
        for subject, finding in found.items():
            alert = open_alerts.pop(subject, None)
            silenced = _silenced(rule, finding.labels, org_silences)
            if alert is None:
                alert = Alert(
                    id=uuid.uuid4(),
                    org_id=rule.org_id,
                    rule_id=rule.id,
                    open_key=f"{rule.id}:{subject}",
                    subject=subject,
                    subject_name=finding.name[:255],
                    state=AlertState.firing,
                    summary=finding.summary,
                    labels=finding.labels,
                    details=finding.details,
                    silenced=silenced,
                    notified=False,
                    started_at=now,
                )
                session.add(alert)
                result.fired += 1
            if alert.silenced != silenced:
                alert.silenced = silenced
            if not alert.notified and not silenced:
                alert.notified = True
                notify.append(alert)
        if notify:
            await session.flush()  # the alert rows before their notifications
            for alert in notify:
                result.queued += _queue(session, rule, alert, "firing", org_channels, now)
        if truncated:
            continue  # unseen subjects may be beyond the cut: resolve nothing this time
        for alert in open_alerts.values():
            alert.state = AlertState.resolved
            alert.resolved_at = now
            alert.open_key = None
            result.resolved += 1
            if alert.notified:
                result.queued += _queue(session, rule, alert, "resolved", org_channels, now)
    await session.flush()
    return result


class Evaluator:
    """Runs :func:`evaluate` on a schedule, under the evaluator's lease."""

    def __init__(
        self,
        unit_of_work: Callable[[], UnitOfWork],
        settings: Settings,
        on_queued: Callable[[], None],
    ) -> None:
        self._unit_of_work = unit_of_work
        self._settings = settings
        self._on_queued = on_queued
        self.instance = uuid.uuid4().hex
        self.interval = settings.alert_interval_seconds
        #: Long enough to survive a slow evaluation, short enough for a quick takeover.
        self.lease_seconds = max(3 * self.interval, 10.0)
        self.evaluations = 0
        self._task = BackgroundTask("alert-evaluator")

    async def tick(self) -> Result | None:
        """Evaluate once if this replica holds (or can take) the lease; None otherwise."""
        async with self._unit_of_work() as uow:
            now = utcnow()
            if not await leases.claim(
                uow.session, LEASE_NAME, self.instance, now, self.lease_seconds
            ):
                return None
            result = await evaluate(uow.session, self._settings, now)
            if result.queued:
                uow.after_commit(self._on_queued)
        self.evaluations += 1
        if result.fired or result.resolved:
            log.info(
                "alerts evaluated",
                extra={"fired": result.fired, "resolved": result.resolved, "queued": result.queued},
            )
        return result

    async def _run(self) -> None:
        while True:
            await background.step(self.tick, where="alert evaluator")
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        self._task.start(self._run)

    async def stop(self) -> None:
        """Stop, and hand the lease back so another replica takes over at once."""
        await self._task.stop()
        try:
            async with self._unit_of_work() as uow:
                await leases.release(uow.session, LEASE_NAME, self.instance)
        except Exception:
            log.warning("could not release the alert evaluator's lease; it lapses on its own")
