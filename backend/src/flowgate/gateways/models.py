"""Gateways: the managed collectors, one row each."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from flowgate.core.db import Base, utcnow
from flowgate.gateways.labels import KEY_MAX, STORED_VALUE_MAX


class GatewayStatus(enum.StrEnum):
    registered = "registered"
    active = "active"
    inactive = "inactive"
    error = "error"


class Gateway(Base):
    __tablename__ = "gateways"
    __table_args__ = (
        UniqueConstraint("org_id", "instance_id"),
        Index("ix_gateways_org_id_name_id", "org_id", "name", "id"),
        Index("ix_gateways_org_id_status", "org_id", "status", "last_seen"),
        # The list's health filter walks this in (name, id) order; the sweep finds gateways
        # whose stored health is out of step with the rule through the second one.
        Index("ix_gateways_org_id_health", "org_id", "health", "name", "id"),
        Index("ix_gateways_health_status", "health", "status", "last_seen"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    instance_id: Mapped[str] = mapped_column(String(255), index=True)
    org_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(255))
    status: Mapped[GatewayStatus] = mapped_column(
        Enum(GatewayStatus, name="gateway_status", native_enum=False, length=16),
        default=GatewayStatus.registered,
    )
    last_seen: Mapped[datetime | None] = mapped_column(index=True)
    #: The stored health (flowgate.gateways.health): written with every change of status or
    #: last_seen, and aged by the health sweep; when it last changed and why (the reason the
    #: trigger copies into ``gateway_health_history``).
    health: Mapped[str] = mapped_column(String(16), default="unhealthy", server_default="unhealthy")
    health_changed_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    health_reason: Mapped[str | None] = mapped_column(String(32), default="registered")
    #: Start of the current run of contact (uptime is measured from here).
    active_since: Mapped[datetime | None]
    current_config_version: Mapped[int | None]
    #: SHA-256 digest of the current OpAMP JWT (the seed's column; the JWT is never stored).
    opamp_token: Mapped[str | None] = mapped_column(String(64))
    registration_token_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("registration_tokens.id", ondelete="SET NULL")
    )
    #: Version info, capabilities, metrics and what else the agent reports (the seed's JSONB).
    extra_metadata: Mapped[dict[str, Any]] = mapped_column(default=dict)
    hostname: Mapped[str | None] = mapped_column(String(255))
    ip_address: Mapped[str | None] = mapped_column(String(64))
    #: The effective labels (what selectors match and the API shows): ``agent_labels`` minus
    #: the keys people hid, overlaid by ``manual_labels``; mirrored row by row in
    #: ``gateway_labels`` by the repository, in the same transaction.
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Labels the gateway reports: REST registration labels, OpAMP ``flowgate.label.*``.
    agent_labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: Labels people set with PATCH; a None value hides the agent's label of that key.
    manual_labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    #: How the gateway talks to us: "rest", "opamp-ws" or "opamp-http".
    transport: Mapped[str] = mapped_column(String(16), default="rest")
    #: Hex OpAMP instance_uid of a native agent.
    opamp_instance_uid: Mapped[str | None] = mapped_column(String(32), unique=True)
    #: The sans-I/O core's AgentState as JSON (description, health, effective config, ...).
    opamp_state: Mapped[dict[str, Any] | None]
    #: ``opamp_state.available_components.hash``, kept beside it (written with it by the
    #: presence flush): a deployment reads the hash of every target, and the state it comes
    #: from is tens of KiB for a Collector that lists its components. Text: the agent chooses
    #: the hash's length.
    components_hash: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class GatewayLabel(Base):
    """One effective label of one gateway: what selectors query, through two covering
    indexes: (org_id, key, value, gateway_id) for the rows of one value, and (org_id, key,
    gateway_id) for the rows of a key whatever their value, in gateway order, so that two broad
    requirements are merged rather than hashed (migration 0013)."""

    __tablename__ = "gateway_labels"
    __table_args__ = (
        Index("ix_gateway_labels_org_id_key_value", "org_id", "key", "value", "gateway_id"),
        Index("ix_gateway_labels_org_id_key_gateway_id", "org_id", "key", "gateway_id"),
        # SQLite: rows live in the primary-key B-tree, so checking one gateway's label reads
        # its value without a second lookup (3-5x faster counts of several requirements).
        {"sqlite_with_rowid": False},
    )

    gateway_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("gateways.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(KEY_MAX), primary_key=True)
    #: The gateway's organisation, copied so a selector never has to join ``gateways``.
    org_id: Mapped[uuid.UUID]
    value: Mapped[str] = mapped_column(String(STORED_VALUE_MAX))


#: BIGINT ids that autoincrement on SQLite too (there only INTEGER PRIMARY KEY does).
_BigId = BigInteger().with_variant(Integer(), "sqlite")


class GatewayHealthTransition(Base):
    """One health transition of one gateway (``from_health`` None: the gateway was created).
    Written by a database trigger on ``gateways`` whenever ``health`` changes, so history and
    stored health can never disagree; pruned after ``FLOWGATE_HEALTH_HISTORY_DAYS``."""

    __tablename__ = "gateway_health_history"
    __table_args__ = (
        Index("ix_gateway_health_history_gateway_id_at", "gateway_id", "at", "id"),
        Index("ix_gateway_health_history_org_id_at", "org_id", "at"),
        Index("ix_gateway_health_history_at", "at"),
    )

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    gateway_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("gateways.id", ondelete="CASCADE"))
    org_id: Mapped[uuid.UUID]
    from_health: Mapped[str | None] = mapped_column(String(16))
    to_health: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[datetime]


class GatewayName(Base):
    """Each gateway's name, copied by a trigger on ``gateways`` (insert, rename), for name
    search: the pg_trgm GIN index lives here, not on ``gateways``, because every heartbeat
    flush rewrites a ``gateways`` row (a new row version, so new entries in every index of that
    table), which would fill a GIN index's pending list and slow each search down until
    vacuum. Names change rarely."""

    __tablename__ = "gateway_names"
    __table_args__ = (
        # PostgreSQL: a pg_trgm GIN index for ILIKE '%...%' (migration 0009); SQLite: a plain
        # index (a substring search scans there anyway).
        Index(
            "ix_gateway_names_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
    )

    gateway_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("gateways.id", ondelete="CASCADE"), primary_key=True
    )
    org_id: Mapped[uuid.UUID]
    name: Mapped[str] = mapped_column(String(255))


class GatewayCount(Base):
    """How many of an organisation's gateways have this status and stored health, as of the
    last compaction of :class:`GatewayCountDelta` (the summary adds the deltas)."""

    __tablename__ = "gateway_counts"

    org_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    health: Mapped[str] = mapped_column(String(16), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger())


class GatewayCountDelta(Base):
    """+1/-1 per (organisation, status, health) written by triggers on ``gateways`` (insert,
    delete, a change of status or health): append-only, so concurrent writers never contend;
    the health sweep folds them into :class:`GatewayCount`."""

    __tablename__ = "gateway_count_deltas"
    __table_args__ = (Index("ix_gateway_count_deltas_org_id", "org_id"),)

    id: Mapped[int] = mapped_column(_BigId, primary_key=True, autoincrement=True)
    org_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(16))
    health: Mapped[str] = mapped_column(String(16))
    n: Mapped[int]


class ScheduledJob(Base):
    """A fleet-wide periodic job (the health sweep): whoever claims the row when
    ``next_run_at`` has passed runs it, in the same transaction, so it runs once per interval
    across every replica."""

    __tablename__ = "scheduled_jobs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_run_at: Mapped[datetime | None]
    last_run_at: Mapped[datetime | None]
    last_run_by: Mapped[str | None] = mapped_column(String(64))
