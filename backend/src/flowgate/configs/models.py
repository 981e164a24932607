"""Stored configurations: templates with numbered versions, deployments and their rollout
state, and the assignment of each gateway (what it should run)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from flowgate.core.db import Base, utcnow


class ConfigTemplate(Base):
    """A named collector configuration of an organisation; its content lives in versions.

    ``latest_version`` is the number of the newest version (None before the first). It is also
    the version counter: a new version takes ``latest_version + 1`` in one ``UPDATE`` of this
    row, which serialises concurrent additions on both databases.
    """

    __tablename__ = "config_templates"
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    latest_version: Mapped[int | None]
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConfigVersion(Base):
    """One immutable, numbered body of a template (1, 2, ... per template). Never updated;
    removed only with its template or organisation."""

    __tablename__ = "config_versions"
    __table_args__ = (UniqueConstraint("template_id", "version"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    template_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("config_templates.id", ondelete="CASCADE")
    )
    org_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int]
    config_yaml: Mapped[str] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(64))
    #: :func:`flowgate.configs.base.config_hash` of the body: what OpAMP agents receive.
    config_hash: Mapped[str] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeploymentState(enum.StrEnum):
    pending = "pending"
    rolling_out = "rolling_out"
    paused = "paused"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"
    rolled_back = "rolled_back"


#: States in which a deployment may still send versions (the rollout driver's work list).
ACTIVE_DEPLOYMENT_STATES = (DeploymentState.pending, DeploymentState.rolling_out)


class TargetState(enum.StrEnum):
    pending = "pending"  # its batch has not been sent yet
    sent = "sent"  # assigned: pushed over a WebSocket / waiting for the next poll or fetch
    applying = "applying"
    applied = "applied"
    failed = "failed"
    superseded = "superseded"  # a newer deployment took this gateway over


#: Target states the gateway can still move out of by reporting.
OPEN_TARGET_STATES = (TargetState.sent, TargetState.applying, TargetState.failed)


class Deployment(Base):
    """One decision to run a template version on a set of gateways, with its rollout plan.

    A rollback is a deployment too (``rollback_of``): each of its targets goes back to what it
    ran before the deployment it undoes, so its targets carry their own versions.
    """

    __tablename__ = "deployments"
    __table_args__ = (Index("ix_deployments_org_id_state", "org_id", "state"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    org_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    #: The template and version deployed (None for a rollback, whose targets differ).
    config_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("config_templates.id", ondelete="SET NULL"), index=True
    )
    config_version_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("config_versions.id", ondelete="SET NULL")
    )
    version: Mapped[int | None]
    target: Mapped[dict[str, Any]] = mapped_column(default=dict)
    strategy: Mapped[dict[str, Any]] = mapped_column(default=dict)
    auto_rollback: Mapped[bool] = mapped_column(default=False)
    state: Mapped[DeploymentState] = mapped_column(
        Enum(DeploymentState, name="deployment_state", native_enum=False, length=16),
        default=DeploymentState.pending,
    )
    #: Index of the batch most recently sent (0-based), and when it was sent.
    current_batch: Mapped[int] = mapped_column(default=0)
    batch_count: Mapped[int] = mapped_column(default=1)
    batch_started_at: Mapped[datetime | None]
    rollback_of: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("deployments.id", ondelete="SET NULL")
    )
    message: Mapped[str | None] = mapped_column(Text)
    #: Why the rollout stopped (failed / rolled back), shown to people.
    reason: Mapped[str | None] = mapped_column(Text)
    #: The replica driving this rollout now, until ``lease_until`` (see configs/rollout.py).
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    created_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeploymentTarget(Base):
    """One gateway of a deployment: its batch, its rollout state and what it ran before."""

    __tablename__ = "deployment_targets"
    __table_args__ = (
        Index("ix_deployment_targets_deployment_id_batch", "deployment_id", "batch"),
        Index("ix_deployment_targets_gateway_id_state", "gateway_id", "state"),
    )

    deployment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True
    )
    gateway_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("gateways.id", ondelete="CASCADE"), primary_key=True
    )
    #: The deployment's organisation, copied for scoped queries. Not a foreign key: the
    #: deployment and the gateway already cascade from the organisation, and a sixth check
    #: per row is most of what inserting 10k targets costs PostgreSQL (migration 0012).
    org_id: Mapped[uuid.UUID]
    batch: Mapped[int] = mapped_column(default=0)
    #: The version this gateway gets (None: the base configuration).
    to_version_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("config_versions.id", ondelete="SET NULL")
    )
    #: What it was assigned before this deployment reached it (for rollback).
    had_assignment: Mapped[bool] = mapped_column(default=False)
    previous_version_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("config_versions.id", ondelete="SET NULL")
    )
    state: Mapped[TargetState] = mapped_column(
        Enum(TargetState, name="deployment_target_state", native_enum=False, length=16),
        default=TargetState.pending,
    )
    error_message: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Assignment(Base):
    """The one configuration a gateway should run now. Written only by the deployments service.

    ``config_version_id`` None means "the base configuration" (a rollback to before any
    version); no row at all means FlowGate has never given this gateway a configuration.
    """

    __tablename__ = "assignments"

    gateway_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("gateways.id", ondelete="CASCADE"), primary_key=True
    )
    #: The gateway's organisation, copied for scoped queries; not a foreign key, as the
    #: gateway already cascades from the organisation (migration 0012).
    org_id: Mapped[uuid.UUID] = mapped_column(index=True)
    config_version_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("config_versions.id", ondelete="SET NULL"), index=True
    )
    deployment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("deployments.id", ondelete="SET NULL"), index=True
    )
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)
