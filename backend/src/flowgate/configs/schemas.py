"""Request and response shapes of the configuration template API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from flowgate.core.schemas import RequestBody

#: Version numbers are 32-bit columns; anything larger cannot name a version.
MAX_VERSION = 2**31 - 1
#: The same bound as a per-gateway push (``PUT /api/v1/gateways/{id}/remote-config``).
MAX_CONFIG_CHARS = 512 * 1024

TemplateName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)
]
Description = Annotated[str, Field(max_length=2000)]
ContentType = Literal["text/yaml", "application/json"]


class ConfigCreate(RequestBody):
    name: TemplateName = Field(description="Unique in the organisation")
    description: Description | None = None


class ConfigUpdate(RequestBody):
    """Only the fields present change; ``description: null`` clears it."""

    name: TemplateName | None = None
    description: Description | None = None

    @model_validator(mode="after")
    def _name_not_null(self) -> Self:
        if "name" in self.model_fields_set and self.name is None:
            raise ValueError("name cannot be null")
        return self


class ConfigTemplateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    org_id: uuid.UUID
    name: str
    description: str | None
    latest_version: int | None = Field(description="Newest version number; null before the first")
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class VersionCreate(RequestBody):
    config_yaml: str = Field(min_length=1, max_length=MAX_CONFIG_CHARS)
    content_type: ContentType = Field(
        default="text/yaml",
        description="text/yaml: a collector configuration (checked before it is stored); "
        "application/json: a JSON object, for OpAMP agents that take JSON configuration",
    )
    message: Annotated[str, Field(max_length=2000)] | None = Field(
        default=None, description="What changed and why, like a commit message"
    )


class VersionSummary(BaseModel):
    """A version without its body (list items)."""

    id: uuid.UUID
    config_id: uuid.UUID
    version: int
    content_type: str
    config_hash: str = Field(description="SHA-256 (hex) that OpAMP agents receive as config_hash")
    message: str | None
    created_by: uuid.UUID | None
    created_at: datetime


class VersionOut(VersionSummary):
    config_yaml: str


class VersionPage(BaseModel):
    items: list[VersionSummary] = Field(description="Newest first")
    next_before: int | None = Field(
        description="Pass as `before` for the next (older) page; null on the last page"
    )


class DiffOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    from_version: int = Field(serialization_alias="from")
    to_version: int = Field(serialization_alias="to")
    diff: str = Field(description="Unified diff from `v{from}` to `v{to}`; empty when equal")
