"""Request and response shapes of the alerting API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flowgate.alerts.models import AlertState, DeliveryState, RuleKind
from flowgate.core.schemas import RequestBody
from flowgate.gateways.selectors import MAX_LENGTH, SelectorError, parse

#: The threshold each kind takes, its default (None: required) and its bounds.
PARAMS: dict[RuleKind, tuple[str, float | None, float, float]] = {
    RuleKind.gateway_unhealthy: ("for_minutes", 5, 0, 7 * 24 * 60),
    RuleKind.fleet_unhealthy_percent: ("percent", None, 0, 99.999),
    RuleKind.deployment_failed: ("within_minutes", 60, 1, 7 * 24 * 60),
    RuleKind.token_expiring: ("hours", 24, 0.01, 365 * 24),
}
PARAM_NAMES = ("for_minutes", "percent", "within_minutes", "hours")
SELECTOR_KINDS = (RuleKind.gateway_unhealthy, RuleKind.fleet_unhealthy_percent)
MAX_CHANNELS = 20


def _check_selector(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parse(value)
    except SelectorError as exc:
        raise ValueError(exc.detail) from None
    return value


class AlertRuleIn(RequestBody):
    """A rule. ``selector`` applies to the gateway kinds; each kind takes one threshold:
    ``gateway_unhealthy``: ``for_minutes`` (default 5), ``fleet_unhealthy_percent``:
    ``percent`` (required; fires when more than this share is unhealthy or offline),
    ``deployment_failed``: ``within_minutes`` (default 60; how long the alert fires after the
    failure), ``token_expiring``: ``hours`` (default 24)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    kind: RuleKind
    selector: str | None = Field(default=None, max_length=MAX_LENGTH)
    for_minutes: float | None = None
    percent: float | None = None
    within_minutes: float | None = None
    hours: float | None = None
    channel_ids: list[uuid.UUID] = Field(default_factory=list, max_length=MAX_CHANNELS)
    enabled: bool = True

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        return _check_selector(value)

    @model_validator(mode="after")
    def _params(self) -> AlertRuleIn:
        name, default, low, high = PARAMS[self.kind]
        for other in PARAM_NAMES:
            if other != name and getattr(self, other) is not None:
                raise ValueError(f"{other} does not apply to kind {self.kind.value} (use {name})")
        if self.selector is not None and self.kind not in SELECTOR_KINDS:
            raise ValueError(f"selector does not apply to kind {self.kind.value}")
        value = getattr(self, name)
        if value is None:
            if default is None:
                raise ValueError(f"{name} is required for kind {self.kind.value}")
            setattr(self, name, default)
        elif not low <= value <= high:
            raise ValueError(f"{name} must be between {low:g} and {high:g}")
        if len(set(self.channel_ids)) != len(self.channel_ids):
            raise ValueError("channel_ids has duplicates")
        return self

    def params(self) -> dict[str, Any]:
        name = PARAMS[self.kind][0]
        return {name: getattr(self, name)}


class AlertRulePatch(RequestBody):
    """Fields to change (the kind cannot change); the result is checked like a new rule."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    selector: str | None = Field(default=None, max_length=MAX_LENGTH)
    for_minutes: float | None = None
    percent: float | None = None
    within_minutes: float | None = None
    hours: float | None = None
    channel_ids: list[uuid.UUID] | None = Field(default=None, max_length=MAX_CHANNELS)
    enabled: bool | None = None


class AlertRuleOut(BaseModel):
    id: uuid.UUID
    org_id: uuid.UUID
    name: str
    kind: RuleKind
    selector: str | None
    for_minutes: float | None = None
    percent: float | None = None
    within_minutes: float | None = None
    hours: float | None = None
    channel_ids: list[uuid.UUID]
    enabled: bool
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("url must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ValueError("url must not carry credentials (the signature authenticates us)")
    return value


class ChannelIn(RequestBody):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    url: str = Field(min_length=1, max_length=2048, description="receives the webhook POSTs")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value)


class ChannelPatch(RequestBody):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    url: str | None = Field(default=None, min_length=1, max_length=2048)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)


class ChannelOut(BaseModel):
    id: uuid.UUID
    org_id: uuid.UUID
    name: str
    kind: str
    url: str
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class ChannelCreated(ChannelOut):
    secret: str = Field(
        description="Signs every delivery (X-FlowGate-Signature). Shown once, never again."
    )


class DeliveryOut(BaseModel):
    id: uuid.UUID
    channel_id: uuid.UUID
    alert_id: uuid.UUID | None
    event: str
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class ChannelTestResult(BaseModel):
    delivered: bool
    status_code: int | None
    error: str | None


class AlertOut(BaseModel):
    id: uuid.UUID
    org_id: uuid.UUID
    rule_id: uuid.UUID
    rule_name: str
    kind: RuleKind
    subject: str
    subject_name: str
    state: AlertState
    summary: str
    labels: dict[str, Any]
    details: dict[str, Any]
    silenced: bool
    notified: bool
    started_at: datetime
    resolved_at: datetime | None


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None


class SilenceIn(RequestBody):
    """Suppresses notifications of matching alerts from ``starts_at`` (default: now) until
    ``ends_at``. Matchers: ``rule_id`` and/or ``selector`` (over the alert's subject labels; an
    empty selector matches every alert); at least one is required."""

    model_config = ConfigDict(extra="forbid")

    rule_id: uuid.UUID | None = None
    selector: str | None = Field(default=None, max_length=MAX_LENGTH)
    comment: str | None = Field(default=None, max_length=1000)
    starts_at: datetime | None = None
    ends_at: datetime

    @field_validator("selector")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        return _check_selector(value)

    @model_validator(mode="after")
    def _window(self) -> SilenceIn:
        if self.rule_id is None and self.selector is None:
            raise ValueError("a silence needs rule_id or selector")
        for name in ("starts_at", "ends_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} needs a time zone (e.g. 2026-12-01T12:00:00Z)")
        if self.starts_at is not None and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class SilenceOut(BaseModel):
    id: uuid.UUID
    org_id: uuid.UUID
    rule_id: uuid.UUID | None
    selector: str | None
    comment: str | None
    starts_at: datetime
    ends_at: datetime
    active: bool
    created_by: uuid.UUID | None
    created_at: datetime
