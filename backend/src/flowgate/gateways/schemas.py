from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from flowgate.core import jsonsafe
from flowgate.core.schemas import RequestBody
from flowgate.gateways.labels import MAX_LABELS, check_labels
from flowgate.gateways.models import GatewayStatus

INSTANCE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,254}$"


def _storable(value: Any, what: str) -> Any:
    """A ``mode="before"`` check of a free-form part that is stored as JSON: the raw input,
    before pydantic builds models from it, against :data:`jsonsafe.VALUE`. The 422 then reads
    ``metrics: nested deeper than 32 levels at metrics.a.a…``."""
    try:
        jsonsafe.check(value, what, jsonsafe.VALUE)
    except jsonsafe.UnsafeJSON as exc:
        raise PydanticCustomError("unsafe_json", "{problem}", {"problem": exc.problem}) from None
    return value


def _check_labels(value: dict[str, str] | None) -> dict[str, str] | None:
    """Kubernetes label rules (see flowgate.gateways.labels), at most 200 labels."""
    if value is not None:
        check_labels(value)
    return value


class RegistrationMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")
    version: str | None = Field(default=None, max_length=100)
    otel_version: str | None = Field(default=None, max_length=100)
    capabilities: list[str] = Field(default_factory=list, max_length=64)
    #: Merged under the top-level ``labels`` (which win).
    labels: dict[str, str] | None = None

    _labels = field_validator("labels")(_check_labels)


class GatewayRegister(RequestBody):
    name: str = Field(min_length=1, max_length=255)
    instance_id: str = Field(pattern=INSTANCE_ID_PATTERN)
    hostname: str | None = Field(default=None, max_length=255)
    ip_address: str | None = Field(default=None, max_length=64)
    labels: dict[str, str] = Field(default_factory=dict)
    metadata: RegistrationMetadata = Field(default_factory=RegistrationMetadata)

    @field_validator("labels", "metadata", mode="before")
    @classmethod
    def _json(cls, value: Any, info: ValidationInfo) -> Any:
        return _storable(value, str(info.field_name))

    _labels = field_validator("labels")(_check_labels)

    @model_validator(mode="after")
    def _merged_labels(self) -> GatewayRegister:
        if len({**(self.metadata.labels or {}), **self.labels}) > MAX_LABELS:
            raise ValueError(f"labels and metadata.labels together: at most {MAX_LABELS} labels")
        return self


class GatewayRegistrationResponse(BaseModel):
    id: uuid.UUID
    name: str
    instance_id: str
    org_id: uuid.UUID
    status: GatewayStatus
    opamp_token: str
    opamp_endpoint: str
    created_at: datetime


class HeartbeatMetrics(BaseModel):
    model_config = ConfigDict(extra="allow")
    logs_processed: int | None = Field(default=None, ge=0)
    errors: int | None = Field(default=None, ge=0)
    latency_ms: float | None = Field(default=None, ge=0)


class ConfigStatusReport(BaseModel):
    status: str = Field(pattern=r"^(applied|applying|failed)$")
    error_message: str | None = Field(default=None, max_length=4096)
    config_version: int | None = Field(default=None, ge=0)
    #: The ``config_hash`` of the configuration this status is about, as
    #: ``GET /api/v1/opamp/config/{instance_id}`` gave it. Versions are numbered per template,
    #: so only the hash says which configuration it is; with it, the version is not used.
    config_hash: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class HeartbeatRequest(RequestBody):
    version: str | None = Field(default=None, max_length=100)
    otel_version: str | None = Field(default=None, max_length=100)
    #: Stored in a 32-bit column (gateways.current_config_version).
    config_version: int | None = Field(default=None, ge=0, le=2**31 - 1)
    metrics: HeartbeatMetrics | None = None
    config_status: ConfigStatusReport | None = None

    @field_validator("metrics", "config_status", mode="before")
    @classmethod
    def _json(cls, value: Any, info: ValidationInfo) -> Any:
        return _storable(value, str(info.field_name))


class HeartbeatResponse(BaseModel):
    status: str = "ok"
    gateway_id: uuid.UUID


class HealthOut(BaseModel):
    status: str
    last_seen: datetime | None
    seconds_since_last_seen: int | None
    uptime_seconds: int | None
    health_score: int


class VersionOut(BaseModel):
    agent_version: str | None
    otel_version: str | None
    capabilities: list[str]


class ConfigStatusOut(BaseModel):
    status: str
    error_message: str | None = None
    config_version: int | None = None
    config_hash: str | None = None


class EffectiveConfigOut(BaseModel):
    config_yaml: str
    content_type: str | None = None
    updated_at: datetime | None = None


class ConfigOut(BaseModel):
    """The configuration the gateway should run (its assignment), and what it reports."""

    config_yaml: str
    config_version: int | None = Field(description="the template version (None: base config)")
    deployment_id: uuid.UUID | None = Field(description="the deployment that assigned it")
    config_id: uuid.UUID | None = None
    config_name: str | None = None
    last_updated: datetime | None
    source: str = Field(
        description='"remote" (a deployed template version) or "base" (the fallback)'
    )
    config_hash: str
    applied_config_version: int | None = None
    remote_config_status: ConfigStatusOut | None = None
    effective: EffectiveConfigOut | None = None
    drift: bool = Field(
        default=False,
        description="the agent reported applying the desired config, but the effective config "
        "it reports differs from it",
    )


class OwnTelemetryOut(BaseModel):
    """Numbers derived from the Collector's own metrics (OTLP, ``own_metrics`` offer).
    Totals are cumulative counts over all signals; rates are per second over the last
    points received (empty until two exports arrived). ``in_metrics``: the status's
    ``metrics`` (the seed's ``logs_processed``, ``errors``, ``latency_ms``) come from these
    numbers, because they are newer than the REST heartbeat's ``metrics``."""

    in_metrics: bool
    accepted: int | None = None
    refused: int | None = None
    sent: int | None = None
    send_failed: int | None = None
    accepted_per_second: float | None = None
    refused_per_second: float | None = None
    sent_per_second: float | None = None
    send_failed_per_second: float | None = None
    cpu_percent: float | None = None
    memory_rss_bytes: int | None = None
    heap_alloc_bytes: int | None = None
    uptime_seconds: float | None = None
    window_seconds: float | None = None
    last_updated: datetime


class MetricsOut(BaseModel):
    """The seed's metrics: from the REST heartbeat's ``metrics`` or the Collector's own
    telemetry, whichever arrived last."""

    logs_processed: int | None
    errors: int | None
    latency_ms: float | None
    last_updated: datetime | None


class AgentOut(BaseModel):
    """What a native OpAMP agent reported about itself (absent for REST-only gateways)."""

    instance_uid: str | None
    transport: str
    identifying_attributes: dict[str, Any]
    non_identifying_attributes: dict[str, Any]
    component_health: dict[str, Any] | None
    available_components: dict[str, Any] | None
    custom_capabilities: list[str]
    connected: bool


class StatusOut(BaseModel):
    gateway_id: uuid.UUID
    instance_id: str
    name: str
    status: GatewayStatus
    health: HealthOut
    version: VersionOut
    config: ConfigOut
    metrics: MetricsOut
    agent: AgentOut | None = None
    #: From the Collector's own metrics (absent until it sent some).
    own_telemetry: OwnTelemetryOut | None = None


class GatewayHealthSummary(BaseModel):
    status: str
    health_score: int


class GatewayOut(BaseModel):
    id: uuid.UUID
    instance_id: str
    org_id: uuid.UUID
    name: str
    status: GatewayStatus
    health: GatewayHealthSummary
    last_seen: datetime | None
    hostname: str | None
    ip_address: str | None
    labels: dict[str, Any]
    transport: str
    agent_version: str | None
    current_config_version: int | None
    opamp_instance_uid: str | None
    created_at: datetime


class FleetSummary(BaseModel):
    total: int
    by_status: dict[str, int]
    by_health: dict[str, int]


class GatewayPage(BaseModel):
    items: list[GatewayOut]
    next_cursor: str | None
    summary: FleetSummary


class GatewayUpdate(RequestBody):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    labels: dict[str, str] | None = Field(
        default=None,
        description="Replaces the labels people set; afterwards the gateway's labels are "
        "exactly these (agent-reported labels never override them)",
    )

    @field_validator("labels", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        return _storable(value, "labels")

    _labels = field_validator("labels")(_check_labels)


class GatewayCount(BaseModel):
    count: int


class RemoteConfigPush(RequestBody):
    config_yaml: str = Field(min_length=1, max_length=512 * 1024)
    content_type: Literal["text/yaml", "application/json"] = Field(
        default="text/yaml",
        description="text/yaml: a collector configuration (checked before it is stored); "
        "application/json: a JSON object, for OpAMP agents that take JSON configuration",
    )


class RemoteConfigOut(BaseModel):
    gateway_id: uuid.UUID
    config_version: int
    config_hash: str
    created_at: datetime
    config_id: uuid.UUID = Field(description="the gateway's own template (gateway:<instance_id>)")
    deployment_id: uuid.UUID
    delivery: str = Field(description='"pushed" (sent over a live WebSocket), "queued" otherwise')


class HealthTransitionOut(BaseModel):
    """One change of a gateway's stored health (``from`` null: the gateway was created)."""

    model_config = ConfigDict(populate_by_name=True)

    from_: str | None = Field(alias="from", serialization_alias="from")
    to: str
    reason: str | None = Field(
        description="heartbeat, connected, disconnected, silent (no contact within the "
        "threshold), deactivated, registered, reconciled, migrated"
    )
    at: datetime


class HealthHistoryPage(BaseModel):
    gateway_id: uuid.UUID
    items: list[HealthTransitionOut]
    next_cursor: str | None


class FleetHealthPoint(BaseModel):
    """How many of the organisation's gateways had each health at ``end`` (the end of the
    bucket [start, end); the last bucket ends now)."""

    start: datetime
    end: datetime
    healthy: int
    warning: int
    unhealthy: int
    offline: int
    total: int
    transitions: int


class FleetHealthHistory(BaseModel):
    org_id: uuid.UUID
    since: datetime
    step_seconds: int
    points: list[FleetHealthPoint]
