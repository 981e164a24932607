"""Request and response shapes of the deployments API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flowgate.core.schemas import RequestBody
from flowgate.deployments.plan import PlanError, batch_size


class TargetSpec(RequestBody):
    """Exactly one of: explicit gateways, a label selector, or every gateway of the org."""

    model_config = ConfigDict(extra="forbid")
    gateway_ids: list[uuid.UUID] | None = Field(default=None, min_length=1, max_length=100_000)
    selector: str | None = Field(default=None, max_length=4096)
    all: Literal[True] | None = None

    @model_validator(mode="after")
    def _one(self) -> TargetSpec:
        given = [k for k in ("gateway_ids", "selector", "all") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError('target needs exactly one of "gateway_ids", "selector" or "all"')
        return self

    def as_json(self) -> dict[str, Any]:
        if self.gateway_ids is not None:
            return {"gateway_ids": [str(g) for g in self.gateway_ids]}
        if self.selector is not None:
            return {"selector": self.selector}
        return {"all": True}


class AllAtOnce(RequestBody):
    model_config = ConfigDict(extra="forbid")
    type: Literal["all-at-once"] = "all-at-once"


class Staged(RequestBody):
    model_config = ConfigDict(extra="forbid")
    type: Literal["staged"]
    batches: list[int | str] = Field(
        min_length=1,
        max_length=20,
        description='cumulative sizes: counts (1) or percentages ("10%"); the last batch '
        "always completes the rollout",
    )
    max_failed: int = Field(default=0, ge=0, description="failed gateways tolerated")
    batch_timeout_seconds: int = Field(default=300, ge=1, le=7 * 86400)
    canary_selector: str | None = Field(
        default=None, max_length=4096, description="gateways matching it form the first batch"
    )

    @field_validator("batches")
    @classmethod
    def _batches(cls, value: list[int | str]) -> list[int | str]:
        for spec in value:
            try:
                batch_size(spec, 100)
            except PlanError as exc:
                raise ValueError(str(exc)) from None
        return value


Strategy = Annotated[AllAtOnce | Staged, Field(discriminator="type")]


class DeploymentCreate(RequestBody):
    config_id: uuid.UUID
    version: int | None = Field(default=None, ge=1, description="default: the newest version")
    target: TargetSpec
    strategy: Strategy = Field(default_factory=AllAtOnce)
    auto_rollback: bool = False
    message: str | None = Field(default=None, max_length=1000)


class DeploymentCounts(BaseModel):
    total: int = 0
    pending: int = 0
    sent: int = 0
    applying: int = 0
    applied: int = 0
    failed: int = 0
    superseded: int = 0


class DeploymentOut(BaseModel):
    id: uuid.UUID
    org_id: uuid.UUID
    config_id: uuid.UUID | None
    config_name: str | None
    version: int | None
    target: dict[str, Any]
    strategy: dict[str, Any]
    auto_rollback: bool
    state: str
    reason: str | None
    current_batch: int = Field(description="1-based number of the batch sent most recently")
    batch_count: int
    rollback_of: uuid.UUID | None
    message: str | None
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    counts: DeploymentCounts


class DeploymentPage(BaseModel):
    items: list[DeploymentOut]
    next_cursor: str | None


class DeploymentTargetOut(BaseModel):
    gateway_id: uuid.UUID
    name: str
    batch: int = Field(description="1-based batch number")
    state: str
    error_message: str | None
    updated_at: datetime


class DeploymentTargetPage(BaseModel):
    items: list[DeploymentTargetOut]
    next_cursor: str | None


class GatewayDeploymentOut(BaseModel):
    """A deployment that touched one gateway, with that gateway's state in it."""

    deployment: DeploymentOut
    batch: int = Field(description="1-based batch number of the gateway")
    state: str
    error_message: str | None
    updated_at: datetime


class GatewayDeploymentPage(BaseModel):
    items: list[GatewayDeploymentOut]
    next_cursor: str | None
