"""Registration tokens: what a gateway presents once to enrol."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from flowgate.core.db import Base, utcnow


class RegistrationToken(Base):
    __tablename__ = "registration_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    org_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    #: SHA-256 hex digest of the token (the seed's column); the token itself is never stored.
    token: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime]
    is_active: Mapped[bool] = mapped_column(default=True)
    #: 1 = single use (the seed's default, set by the service); None = unlimited. No column
    #: default: the ORM would apply it to an explicit None and make "unlimited" single-use.
    max_uses: Mapped[int | None]
    use_count: Mapped[int] = mapped_column(default=0)
    last_used_at: Mapped[datetime | None]
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
