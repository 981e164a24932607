from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowgate.core.schemas import RequestBody
from flowgate.orgs.models import Role

_EMAIL = r"^[^@\s]{1,64}@[^@\s]{1,255}$"

#: A new password: at least 8 characters (stored as an argon2 hash).
NewPassword = Annotated[str, Field(min_length=8, max_length=1024)]


class LoginRequest(RequestBody):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret


class OrgRole(BaseModel):
    id: uuid.UUID
    name: str
    role: Role


class Me(BaseModel):
    id: uuid.UUID | None
    email: str | None
    is_superuser: bool
    api_key_id: uuid.UUID | None = None
    organizations: list[OrgRole]


class SessionOut(BaseModel):
    """The answer to a browser sign-in: who signed in (as ``GET /auth/me``)."""

    user: Me


class OrgCreate(RequestBody):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._ -]*$")


class OrgOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    name: str
    created_at: datetime


class UserCreate(RequestBody):
    email: str = Field(max_length=320, pattern=_EMAIL)
    password: NewPassword | None = Field(
        default=None,
        description="Required for a new user; omit it to add an existing user to the org",
    )
    role: Role = Role.viewer

    @field_validator("email")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()


class PasswordChange(RequestBody):
    current_password: str = Field(max_length=1024)
    new_password: NewPassword


class PasswordReset(RequestBody):
    new_password: NewPassword


class RoleUpdate(RequestBody):
    role: Role


class MemberOut(BaseModel):
    id: uuid.UUID
    email: str
    role: Role
    is_active: bool
    created_at: datetime


class ApiKeyCreate(RequestBody):
    name: str = Field(min_length=1, max_length=100)
    role: Role = Role.viewer


class ApiKeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    org_id: uuid.UUID
    name: str
    prefix: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The API key. Shown once; only its digest is stored.")
