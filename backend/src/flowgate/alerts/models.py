"""Alerting: rules, notification channels, alerts, silences, the notification outbox and the
evaluator's lease (see docs/alerting.md)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from flowgate.core.db import Base, utcnow


class RuleKind(enum.StrEnum):
    gateway_unhealthy = "gateway_unhealthy"
    fleet_unhealthy_percent = "fleet_unhealthy_percent"
    deployment_failed = "deployment_failed"
    token_expiring = "token_expiring"  # noqa: S105 (a rule kind, not a secret)


class AlertState(enum.StrEnum):
    firing = "firing"
    resolved = "resolved"


class DeliveryState(enum.StrEnum):
    pending = "pending"
    sent = "sent"
    failed = "failed"


class AlertRule(Base):
    __tablename__ = "alert_rules"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    org_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[RuleKind] = mapped_column(
        Enum(RuleKind, name="alert_rule_kind", native_enum=False, length=32)
    )
    #: Label selector of the gateway kinds (None: every gateway of the organisation).
    selector: Mapped[str | None] = mapped_column(Text)
    #: The kind's thresholds: for_minutes, percent, within_minutes or hours.
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Notification channels (ids, as strings) told when an alert of this rule fires/resolves.
    #: A JSON array (``flowgate db check`` knows from ``info``: it expects objects elsewhere).
    channel_ids: Mapped[list[str]] = mapped_column(default=list, info={"json": "array"})
    enabled: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class NotificationChannel(Base):
    """A webhook. Its signing secret is not stored: it is derived from the server's secret key
    and ``secret_salt`` (see :mod:`flowgate.alerts.signing`), and shown once at creation."""

    __tablename__ = "notification_channels"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    org_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16), default="webhook")
    url: Mapped[str] = mapped_column(Text)
    secret_salt: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Alert(Base):
    """One rule firing for one subject (a gateway, the selected fleet, a deployment, a token).

    ``open_key`` is ``"<rule id>:<subject>"`` while firing and NULL once resolved; its unique
    constraint makes a second firing alert for the same rule and subject impossible."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_org_id_started_at", "org_id", "started_at", "id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    rule_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("alert_rules.id", ondelete="CASCADE"), index=True
    )
    open_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    subject: Mapped[str] = mapped_column(String(64))
    subject_name: Mapped[str] = mapped_column(String(255))
    state: Mapped[AlertState] = mapped_column(
        Enum(AlertState, name="alert_state", native_enum=False, length=16)
    )
    summary: Mapped[str] = mapped_column(Text)
    #: The subject's labels (a gateway's), which silences' selectors match.
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    silenced: Mapped[bool] = mapped_column(default=False)
    #: A firing notification was queued (so its resolution is notified too).
    notified: Mapped[bool] = mapped_column(default=False)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]


class Silence(Base):
    __tablename__ = "alert_silences"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    org_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    #: Matchers (both must match when both are given): the alert's rule, and a label selector
    #: over the alert's subject labels.
    rule_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("alert_rules.id", ondelete="CASCADE")
    )
    selector: Mapped[str | None] = mapped_column(Text)
    comment: Mapped[str | None] = mapped_column(Text)
    starts_at: Mapped[datetime] = mapped_column(default=utcnow)
    ends_at: Mapped[datetime]
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notification(Base):
    """The outbox: one webhook delivery, written in the transaction that changed the alert and
    drained by every replica's sender (a row is claimed with a lease before it is sent)."""

    __tablename__ = "alert_notifications"
    __table_args__ = (Index("ix_alert_notifications_state_due", "state", "next_attempt_at"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    org_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    channel_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("notification_channels.id", ondelete="CASCADE"), index=True
    )
    alert_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("alerts.id", ondelete="SET NULL"), index=True
    )
    event: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[DeliveryState] = mapped_column(
        Enum(DeliveryState, name="alert_delivery_state", native_enum=False, length=16),
        default=DeliveryState.pending,
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status: Mapped[int | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class AlertLease(Base):
    """A named lease held by one replica at a time (the evaluator's: ``alerts-evaluator``)."""

    __tablename__ = "alert_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(64))
    until: Mapped[datetime | None]
