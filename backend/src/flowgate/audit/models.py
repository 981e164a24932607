"""The audit log table: append-only (the database refuses updates; only retention deletes)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from flowgate.core.db import Base, JSONType

#: SQLite makes only an ``INTEGER PRIMARY KEY`` an auto-incrementing rowid.
AuditId = BigInteger().with_variant(Integer(), "sqlite")


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_org_id_id", "org_id", "id"),
        Index("ix_audit_log_at", "at"),
        # The database refuses UPDATEs: `flowgate db check` leaves it alone (what it serves
        # from an undecodable value is an empty detail, like everywhere else).
        {"info": {"append_only": True}},
    )

    #: Increasing: the keyset of ``GET /api/v1/audit`` (newest first).
    id: Mapped[int] = mapped_column(AuditId, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    #: No foreign keys: an entry outlives the organisation, user or object it names.
    org_id: Mapped[uuid.UUID | None]
    actor_kind: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[uuid.UUID | None]
    actor_label: Mapped[str | None] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(100))
    object_type: Mapped[str | None] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(64))
    result: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int]
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONType)


class AuditLease(Base):
    """One row: which replica prunes the log (a lease renewed each run, like rollouts')."""

    __tablename__ = "audit_lease"

    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(64))
    until: Mapped[datetime | None]
    pruned_at: Mapped[datetime | None]
