"""Alert rules, channels, silences and alerts of one organisation: reads scoped to it (another
organisation's object is a 404) and the checks a change must pass."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from flowgate.alerts.models import Alert, AlertRule, NotificationChannel, Silence
from flowgate.alerts.schemas import PARAM_NAMES, AlertRuleIn, AlertRuleOut
from flowgate.core.db import Base
from flowgate.core.errors import DomainError, NotFound

M = TypeVar("M", bound=Base)


class Invalid(DomainError):
    status_code = 422


def invalid(exc: ValidationError) -> Invalid:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        message = str(err.get("msg", "")).removeprefix("Value error, ")
        parts.append(f"{loc}: {message}" if loc else message)
    return Invalid("; ".join(parts) or "Invalid request")


async def get(
    session: AsyncSession, model: type[M], org_id: uuid.UUID, object_id: uuid.UUID, what: str
) -> M:
    found = await session.get(model, object_id)
    if found is None or getattr(found, "org_id", None) != org_id:
        raise NotFound(f"{what} not found")
    return found


async def rule(session: AsyncSession, org_id: uuid.UUID, rule_id: uuid.UUID) -> AlertRule:
    return await get(session, AlertRule, org_id, rule_id, "Alert rule")


async def channel(
    session: AsyncSession, org_id: uuid.UUID, channel_id: uuid.UUID
) -> NotificationChannel:
    return await get(session, NotificationChannel, org_id, channel_id, "Notification channel")


async def silence(session: AsyncSession, org_id: uuid.UUID, silence_id: uuid.UUID) -> Silence:
    return await get(session, Silence, org_id, silence_id, "Silence")


async def alert(session: AsyncSession, org_id: uuid.UUID, alert_id: uuid.UUID) -> Alert:
    return await get(session, Alert, org_id, alert_id, "Alert")


async def check_channels(
    session: AsyncSession, org_id: uuid.UUID, channel_ids: list[uuid.UUID]
) -> None:
    if not channel_ids:
        return
    known = set(
        await session.scalars(
            select(NotificationChannel.id).where(
                NotificationChannel.org_id == org_id, NotificationChannel.id.in_(channel_ids)
            )
        )
    )
    missing = [str(c) for c in channel_ids if c not in known]
    if missing:
        raise Invalid(f"channel_ids: no such notification channel: {', '.join(missing)}")


def rule_fields(rule: AlertRule) -> dict[str, Any]:
    """The rule as the fields of :class:`AlertRuleIn` (to merge a patch into)."""
    fields: dict[str, Any] = {
        "name": rule.name,
        "kind": rule.kind,
        "selector": rule.selector,
        "channel_ids": list(rule.channel_ids or []),
        "enabled": rule.enabled,
    }
    fields.update({k: v for k, v in (rule.params or {}).items() if k in PARAM_NAMES})
    return fields


def checked(fields: dict[str, Any]) -> AlertRuleIn:
    try:
        return AlertRuleIn.model_validate(fields)
    except ValidationError as exc:
        raise invalid(exc) from None


def render_rule(rule: AlertRule) -> AlertRuleOut:
    return AlertRuleOut(
        id=rule.id,
        org_id=rule.org_id,
        name=rule.name,
        kind=rule.kind,
        selector=rule.selector,
        channel_ids=[uuid.UUID(c) for c in rule.channel_ids or []],
        enabled=rule.enabled,
        created_by=rule.created_by,
        created_at=rule.created_at,
        updated_at=rule.updated_at,
        **{k: v for k, v in (rule.params or {}).items() if k in PARAM_NAMES},
    )
