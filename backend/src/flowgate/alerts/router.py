"""The alerting API: rules, notification channels, silences and alerts (docs/alerting.md).

Viewers read; operators write. Everything is scoped to the request's organisation.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Annotated

import orjson
from fastapi import Depends, Query, Request, Response, status
from sqlalchemy import select, tuple_

from flowgate.alerts import service, signing
from flowgate.alerts.models import (
    Alert,
    AlertRule,
    AlertState,
    Notification,
    NotificationChannel,
    Silence,
)
from flowgate.alerts.runner import Alerting
from flowgate.alerts.schemas import (
    AlertOut,
    AlertPage,
    AlertRuleIn,
    AlertRuleOut,
    AlertRulePatch,
    ChannelCreated,
    ChannelIn,
    ChannelOut,
    ChannelPatch,
    ChannelTestResult,
    DeliveryOut,
    SilenceIn,
    SilenceOut,
)
from flowgate.alerts.webhooks import test_payload
from flowgate.auth.principal import OperatorAccess, ViewerAccess
from flowgate.core.db import utcnow
from flowgate.core.deps import SessionDep, SettingsDep, UowDep
from flowgate.core.errors import DomainError
from flowgate.core.routing import api_router

rules_router = api_router(prefix="/api/v1/alert-rules", tags=["alerting"])
channels_router = api_router(prefix="/api/v1/notification-channels", tags=["alerting"])
silences_router = api_router(prefix="/api/v1/silences", tags=["alerting"])
alerts_router = api_router(prefix="/api/v1/alerts", tags=["alerting"])
routers = (rules_router, channels_router, silences_router, alerts_router)


async def _alerting(request: Request) -> Alerting:
    alerting: Alerting = request.app.state.alerts
    return alerting


AlertingDep = Annotated[Alerting, Depends(_alerting)]


# -- rules -----------------------------------------------------------------------------------


@rules_router.post("", operation_id="create_alert_rule", status_code=status.HTTP_201_CREATED)
async def create_alert_rule(body: AlertRuleIn, access: OperatorAccess, uow: UowDep) -> AlertRuleOut:
    await service.check_channels(uow.session, access.org_id, body.channel_ids)
    now = utcnow()
    rule = AlertRule(
        id=uuid.uuid4(),
        org_id=access.org_id,
        name=body.name,
        kind=body.kind,
        selector=body.selector,
        params=body.params(),
        channel_ids=[str(c) for c in body.channel_ids],
        enabled=body.enabled,
        created_by=access.principal.actor_id,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(rule)
    await uow.session.flush()
    return service.render_rule(rule)


@rules_router.get("", operation_id="list_alert_rules")
async def list_alert_rules(access: ViewerAccess, session: SessionDep) -> list[AlertRuleOut]:
    rules = await session.scalars(
        select(AlertRule)
        .where(AlertRule.org_id == access.org_id)
        .order_by(AlertRule.created_at, AlertRule.id)
    )
    return [service.render_rule(r) for r in rules]


@rules_router.get("/{rule_id}", operation_id="get_alert_rule")
async def get_alert_rule(
    rule_id: uuid.UUID, access: ViewerAccess, session: SessionDep
) -> AlertRuleOut:
    return service.render_rule(await service.rule(session, access.org_id, rule_id))


@rules_router.patch("/{rule_id}", operation_id="update_alert_rule")
async def update_alert_rule(
    rule_id: uuid.UUID, body: AlertRulePatch, access: OperatorAccess, uow: UowDep
) -> AlertRuleOut:
    """Change a rule (not its kind). Its firing alerts are re-evaluated on the next run."""
    rule = await service.rule(uow.session, access.org_id, rule_id)
    fields = service.rule_fields(rule)
    changes = body.model_dump(exclude_unset=True)
    if changes.get("name", "") is None or changes.get("enabled", False) is None:
        raise service.Invalid("name and enabled cannot be null")
    if "channel_ids" in changes and changes["channel_ids"] is None:
        changes["channel_ids"] = []
    fields.update(changes)
    merged = service.checked(fields)
    await service.check_channels(uow.session, access.org_id, merged.channel_ids)
    rule.name = merged.name
    rule.selector = merged.selector
    rule.params = merged.params()
    rule.channel_ids = [str(c) for c in merged.channel_ids]
    rule.enabled = merged.enabled
    rule.updated_at = utcnow()
    await uow.session.flush()
    return service.render_rule(rule)


@rules_router.delete(
    "/{rule_id}", operation_id="delete_alert_rule", status_code=status.HTTP_204_NO_CONTENT
)
async def delete_alert_rule(rule_id: uuid.UUID, access: OperatorAccess, uow: UowDep) -> Response:
    """Delete a rule with its alerts and silences (queued notifications are still sent)."""
    rule = await service.rule(uow.session, access.org_id, rule_id)
    await uow.session.delete(rule)
    await uow.session.flush()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- notification channels -------------------------------------------------------------------


def _channel_out(channel: NotificationChannel) -> ChannelOut:
    return ChannelOut(
        id=channel.id,
        org_id=channel.org_id,
        name=channel.name,
        kind=channel.kind,
        url=channel.url,
        created_by=channel.created_by,
        created_at=channel.created_at,
        updated_at=channel.updated_at,
    )


@channels_router.post(
    "", operation_id="create_notification_channel", status_code=status.HTTP_201_CREATED
)
async def create_notification_channel(
    body: ChannelIn, access: OperatorAccess, uow: UowDep, settings: SettingsDep
) -> ChannelCreated:
    """A webhook. The answer holds its signing secret, shown this once only."""
    now = utcnow()
    channel = NotificationChannel(
        id=uuid.uuid4(),
        org_id=access.org_id,
        name=body.name,
        kind="webhook",
        url=body.url,
        secret_salt=signing.new_salt(),
        created_by=access.principal.actor_id,
        created_at=now,
        updated_at=now,
    )
    uow.session.add(channel)
    await uow.session.flush()
    secret = signing.channel_secret(settings.signing_key, channel.secret_salt)
    return ChannelCreated(**_channel_out(channel).model_dump(), secret=secret)


@channels_router.get("", operation_id="list_notification_channels")
async def list_notification_channels(access: ViewerAccess, session: SessionDep) -> list[ChannelOut]:
    channels = await session.scalars(
        select(NotificationChannel)
        .where(NotificationChannel.org_id == access.org_id)
        .order_by(NotificationChannel.created_at, NotificationChannel.id)
    )
    return [_channel_out(c) for c in channels]


@channels_router.get("/{channel_id}", operation_id="get_notification_channel")
async def get_notification_channel(
    channel_id: uuid.UUID, access: ViewerAccess, session: SessionDep
) -> ChannelOut:
    return _channel_out(await service.channel(session, access.org_id, channel_id))


@channels_router.patch("/{channel_id}", operation_id="update_notification_channel")
async def update_notification_channel(
    channel_id: uuid.UUID, body: ChannelPatch, access: OperatorAccess, uow: UowDep
) -> ChannelOut:
    channel = await service.channel(uow.session, access.org_id, channel_id)
    if body.name is not None:
        channel.name = body.name
    if body.url is not None:
        channel.url = body.url
    channel.updated_at = utcnow()
    await uow.session.flush()
    return _channel_out(channel)


@channels_router.delete(
    "/{channel_id}",
    operation_id="delete_notification_channel",
    status_code=status.HTTP_204_NO_CONTENT,
)
async def delete_notification_channel(
    channel_id: uuid.UUID, access: OperatorAccess, uow: UowDep
) -> Response:
    """Delete a channel, its queued deliveries, and its place in every rule."""
    session = uow.session
    channel = await service.channel(session, access.org_id, channel_id)
    for rule in await session.scalars(select(AlertRule).where(AlertRule.org_id == access.org_id)):
        if str(channel.id) in (rule.channel_ids or []):
            rule.channel_ids = [c for c in rule.channel_ids if c != str(channel.id)]
    await session.delete(channel)
    await session.flush()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@channels_router.get("/{channel_id}/deliveries", operation_id="list_channel_deliveries")
async def list_channel_deliveries(
    channel_id: uuid.UUID,
    access: ViewerAccess,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[DeliveryOut]:
    """The channel's newest queued, sent and failed notifications, with their last attempt's
    outcome (test deliveries are not queued, so not listed)."""
    channel = await service.channel(session, access.org_id, channel_id)
    rows = await session.scalars(
        select(Notification)
        .where(Notification.channel_id == channel.id)
        .order_by(Notification.created_at.desc(), Notification.id.desc())
        .limit(limit)
    )
    return [
        DeliveryOut(
            id=n.id,
            channel_id=n.channel_id,
            alert_id=n.alert_id,
            event=n.event,
            state=n.state,
            attempts=n.attempts,
            next_attempt_at=n.next_attempt_at,
            last_status=n.last_status,
            last_error=n.last_error,
            created_at=n.created_at,
            sent_at=n.sent_at,
        )
        for n in rows
    ]


@channels_router.post("/{channel_id}/test", operation_id="test_notification_channel")
async def test_notification_channel(
    channel_id: uuid.UUID,
    access: OperatorAccess,
    session: SessionDep,
    settings: SettingsDep,
    alerting: AlertingDep,
) -> ChannelTestResult:
    """Send one signed ``test`` delivery now (one attempt, no retries) and say how it went."""
    channel = await service.channel(session, access.org_id, channel_id)
    secret = signing.channel_secret(settings.signing_key, channel.secret_salt)
    outcome = await alerting.sender.post(
        channel.url, secret, test_payload(channel), uuid.uuid4(), 1
    )
    return ChannelTestResult(
        delivered=outcome.ok, status_code=outcome.status_code, error=outcome.error
    )


# -- silences --------------------------------------------------------------------------------


def _silence_out(silence: Silence) -> SilenceOut:
    now = utcnow()
    return SilenceOut(
        id=silence.id,
        org_id=silence.org_id,
        rule_id=silence.rule_id,
        selector=silence.selector,
        comment=silence.comment,
        starts_at=silence.starts_at,
        ends_at=silence.ends_at,
        active=silence.starts_at <= now < silence.ends_at,
        created_by=silence.created_by,
        created_at=silence.created_at,
    )


@silences_router.post("", operation_id="create_silence", status_code=status.HTTP_201_CREATED)
async def create_silence(body: SilenceIn, access: OperatorAccess, uow: UowDep) -> SilenceOut:
    now = utcnow()
    starts = body.starts_at or now
    if body.ends_at <= max(starts, now):
        raise service.Invalid("ends_at must be in the future and after starts_at")
    if body.rule_id is not None:
        rule = await uow.session.get(AlertRule, body.rule_id)
        if rule is None or rule.org_id != access.org_id:
            raise service.Invalid(f"rule_id: no such alert rule: {body.rule_id}")
    silence = Silence(
        id=uuid.uuid4(),
        org_id=access.org_id,
        rule_id=body.rule_id,
        selector=body.selector,
        comment=body.comment,
        starts_at=starts,
        ends_at=body.ends_at,
        created_by=access.principal.actor_id,
        created_at=now,
    )
    uow.session.add(silence)
    await uow.session.flush()
    return _silence_out(silence)


@silences_router.get("", operation_id="list_silences")
async def list_silences(
    access: ViewerAccess, session: SessionDep, active: bool | None = None
) -> list[SilenceOut]:
    """Newest first; ``active=true``: only those in force now, ``false``: the others."""
    query = select(Silence).where(Silence.org_id == access.org_id)
    now = utcnow()
    if active is True:
        query = query.where(Silence.starts_at <= now, Silence.ends_at > now)
    elif active is False:
        query = query.where((Silence.starts_at > now) | (Silence.ends_at <= now))
    rows = await session.scalars(query.order_by(Silence.created_at.desc()).limit(500))
    return [_silence_out(s) for s in rows]


@silences_router.delete(
    "/{silence_id}", operation_id="delete_silence", status_code=status.HTTP_204_NO_CONTENT
)
async def delete_silence(silence_id: uuid.UUID, access: OperatorAccess, uow: UowDep) -> Response:
    """End a silence (notifications of alerts still firing go out on the next evaluation)."""
    silence = await service.silence(uow.session, access.org_id, silence_id)
    await uow.session.delete(silence)
    await uow.session.flush()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- alerts ----------------------------------------------------------------------------------


def _alert_out(alert: Alert, rule: AlertRule) -> AlertOut:
    return AlertOut(
        id=alert.id,
        org_id=alert.org_id,
        rule_id=alert.rule_id,
        rule_name=rule.name,
        kind=rule.kind,
        subject=alert.subject,
        subject_name=alert.subject_name,
        state=alert.state,
        summary=alert.summary,
        labels=alert.labels or {},
        details=alert.details or {},
        silenced=alert.silenced,
        notified=alert.notified,
        started_at=alert.started_at,
        resolved_at=alert.resolved_at,
    )


def _decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        started, aid = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return datetime.fromisoformat(str(started)), uuid.UUID(str(aid))
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise DomainError("Invalid cursor") from None


@alerts_router.get("", operation_id="list_alerts")
async def list_alerts(
    access: ViewerAccess,
    session: SessionDep,
    state: AlertState | None = None,
    rule_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> AlertPage:
    """Newest first, keyset-paged (``next_cursor``)."""
    query = (
        select(Alert, AlertRule)
        .join(AlertRule, AlertRule.id == Alert.rule_id)
        .where(Alert.org_id == access.org_id)
    )
    if state is not None:
        query = query.where(Alert.state == state)
    if rule_id is not None:
        query = query.where(Alert.rule_id == rule_id)
    if cursor:
        query = query.where(tuple_(Alert.started_at, Alert.id) < _decode(cursor))
    rows = (
        (
            await session.execute(
                query.order_by(Alert.started_at.desc(), Alert.id.desc()).limit(limit + 1)
            )
        )
        .tuples()
        .all()
    )
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more and rows:
        last = rows[-1][0]
        raw = orjson.dumps([last.started_at.isoformat(), str(last.id)])
        next_cursor = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return AlertPage(items=[_alert_out(a, r) for a, r in rows], next_cursor=next_cursor)


@alerts_router.get("/{alert_id}", operation_id="get_alert")
async def get_alert(alert_id: uuid.UUID, access: ViewerAccess, session: SessionDep) -> AlertOut:
    alert = await service.alert(session, access.org_id, alert_id)
    rule = await session.get(AlertRule, alert.rule_id)
    assert rule is not None  # alerts go with their rule
    return _alert_out(alert, rule)
