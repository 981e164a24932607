from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from flowgate.core.schemas import RequestBody


class RegistrationTokenCreate(RequestBody):
    name: str = Field(min_length=1, max_length=200)
    expires_in_days: int | None = Field(
        default=None,
        ge=1,
        le=3650,
        description="Days until it expires; default: FLOWGATE_REGISTRATION_TOKEN_DEFAULT_DAYS",
    )
    max_uses: int | None = Field(
        default=1, ge=1, le=1_000_000, description="1 = single use (default); null = unlimited"
    )


class RegistrationTokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    org_id: uuid.UUID
    name: str
    expires_at: datetime
    is_active: bool
    max_uses: int | None
    use_count: int
    last_used_at: datetime | None
    created_by: uuid.UUID | None
    created_at: datetime
    revoked_at: datetime | None


class RegistrationTokenCreated(RegistrationTokenOut):
    token: str = Field(description="The registration token. Shown once; only its digest is kept.")
