"""deployments, their per-gateway rollout state, and assignments; per-gateway remote configs
become one template per gateway

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 10:00:00

Every gateway that had configurations pushed with ``PUT /api/v1/gateways/{id}/remote-config``
gets a template named ``gateway:<instance_id>`` holding the same numbered versions (same ids,
bodies and hashes), a completed deployment of its newest version, and an assignment to it; the
``gateway_remote_configs`` table then goes. The downgrade recreates the table from those
templates (what other templates assigned is lost, as that schema cannot hold it).
"""

import hashlib
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from flowgate.core.db import JSONType, UTCDateTime

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _template_name(instance_id: str) -> str:
    name = f"gateway:{instance_id}"
    if len(name) <= 200:
        return name
    return f"gateway:{hashlib.sha256(instance_id.encode()).hexdigest()[:32]}"


remote = sa.table(
    "gateway_remote_configs",
    sa.column("id", sa.Uuid()),
    sa.column("gateway_id", sa.Uuid()),
    sa.column("org_id", sa.Uuid()),
    sa.column("version", sa.BigInteger()),
    sa.column("config_yaml", sa.Text()),
    sa.column("content_type", sa.String()),
    sa.column("config_hash", sa.String()),
    sa.column("created_by", sa.Uuid()),
    sa.column("created_at", UTCDateTime()),
)
gateways = sa.table(
    "gateways",
    sa.column("id", sa.Uuid()),
    sa.column("instance_id", sa.String()),
    sa.column("current_config_version", sa.Integer()),
)
templates = sa.table(
    "config_templates",
    sa.column("id", sa.Uuid()),
    sa.column("org_id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("description", sa.Text()),
    sa.column("latest_version", sa.Integer()),
    sa.column("created_by", sa.Uuid()),
    sa.column("created_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)
versions = sa.table(
    "config_versions",
    sa.column("id", sa.Uuid()),
    sa.column("template_id", sa.Uuid()),
    sa.column("org_id", sa.Uuid()),
    sa.column("version", sa.Integer()),
    sa.column("config_yaml", sa.Text()),
    sa.column("content_type", sa.String()),
    sa.column("config_hash", sa.String()),
    sa.column("message", sa.Text()),
    sa.column("created_by", sa.Uuid()),
    sa.column("created_at", UTCDateTime()),
)
deployments = sa.table(
    "deployments",
    sa.column("id", sa.Uuid()),
    sa.column("org_id", sa.Uuid()),
    sa.column("config_id", sa.Uuid()),
    sa.column("config_version_id", sa.Uuid()),
    sa.column("version", sa.Integer()),
    sa.column("target", JSONType),
    sa.column("strategy", JSONType),
    sa.column("auto_rollback", sa.Boolean()),
    sa.column("state", sa.String()),
    sa.column("current_batch", sa.Integer()),
    sa.column("batch_count", sa.Integer()),
    sa.column("batch_started_at", UTCDateTime()),
    sa.column("message", sa.Text()),
    sa.column("created_by", sa.Uuid()),
    sa.column("created_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)
targets = sa.table(
    "deployment_targets",
    sa.column("deployment_id", sa.Uuid()),
    sa.column("gateway_id", sa.Uuid()),
    sa.column("org_id", sa.Uuid()),
    sa.column("batch", sa.Integer()),
    sa.column("to_version_id", sa.Uuid()),
    sa.column("had_assignment", sa.Boolean()),
    sa.column("state", sa.String()),
    sa.column("updated_at", UTCDateTime()),
)
assignments = sa.table(
    "assignments",
    sa.column("gateway_id", sa.Uuid()),
    sa.column("org_id", sa.Uuid()),
    sa.column("config_version_id", sa.Uuid()),
    sa.column("deployment_id", sa.Uuid()),
    sa.column("assigned_at", UTCDateTime()),
)


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("config_id", sa.Uuid(), nullable=True),
        sa.Column("config_version_id", sa.Uuid(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("target", JSONType, nullable=False),
        sa.Column("strategy", JSONType, nullable=False),
        sa.Column("auto_rollback", sa.Boolean(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "rolling_out",
                "paused",
                "completed",
                "failed",
                "cancelled",
                "rolled_back",
                name="deployment_state",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("current_batch", sa.Integer(), nullable=False),
        sa.Column("batch_count", sa.Integer(), nullable=False),
        sa.Column("batch_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rollback_of", sa.Uuid(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["config_id"],
            ["config_templates.id"],
            name=op.f("fk_deployments_config_id_config_templates"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["config_version_id"],
            ["config_versions.id"],
            name=op.f("fk_deployments_config_version_id_config_versions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_deployments_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_deployments_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rollback_of"],
            ["deployments.id"],
            name=op.f("fk_deployments_rollback_of_deployments"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
    )
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deployments_config_id"), ["config_id"], unique=False)
        batch_op.create_index("ix_deployments_org_id_state", ["org_id", "state"], unique=False)
        batch_op.create_index(batch_op.f("ix_deployments_org_id"), ["org_id"], unique=False)
    op.create_table(
        "deployment_targets",
        sa.Column("deployment_id", sa.Uuid(), nullable=False),
        sa.Column("gateway_id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("batch", sa.Integer(), nullable=False),
        sa.Column("to_version_id", sa.Uuid(), nullable=True),
        sa.Column("had_assignment", sa.Boolean(), nullable=False),
        sa.Column("previous_version_id", sa.Uuid(), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "sent",
                "applying",
                "applied",
                "failed",
                "superseded",
                name="deployment_target_state",
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_deployment_targets_deployment_id_deployments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["gateway_id"],
            ["gateways.id"],
            name=op.f("fk_deployment_targets_gateway_id_gateways"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_deployment_targets_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["previous_version_id"],
            ["config_versions.id"],
            name=op.f("fk_deployment_targets_previous_version_id_config_versions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["to_version_id"],
            ["config_versions.id"],
            name=op.f("fk_deployment_targets_to_version_id_config_versions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("deployment_id", "gateway_id", name=op.f("pk_deployment_targets")),
    )
    with op.batch_alter_table("deployment_targets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_deployment_targets_deployment_id_batch", ["deployment_id", "batch"], unique=False
        )
        batch_op.create_index(
            "ix_deployment_targets_gateway_id_state", ["gateway_id", "state"], unique=False
        )
    op.create_table(
        "assignments",
        sa.Column("gateway_id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("config_version_id", sa.Uuid(), nullable=True),
        sa.Column("deployment_id", sa.Uuid(), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["config_version_id"],
            ["config_versions.id"],
            name=op.f("fk_assignments_config_version_id_config_versions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployments.id"],
            name=op.f("fk_assignments_deployment_id_deployments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["gateway_id"],
            ["gateways.id"],
            name=op.f("fk_assignments_gateway_id_gateways"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_assignments_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("gateway_id", name=op.f("pk_assignments")),
    )
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_assignments_config_version_id"), ["config_version_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_assignments_deployment_id"), ["deployment_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_assignments_org_id"), ["org_id"], unique=False)
    _carry_remote_configs_over()
    with op.batch_alter_table("gateway_remote_configs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gateway_remote_configs_gateway_id"))
        batch_op.drop_index(batch_op.f("ix_gateway_remote_configs_org_id"))
    op.drop_table("gateway_remote_configs")


def _carry_remote_configs_over() -> None:
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(
            remote.c.id,
            remote.c.gateway_id,
            remote.c.org_id,
            remote.c.version,
            remote.c.config_yaml,
            remote.c.content_type,
            remote.c.config_hash,
            remote.c.created_by,
            remote.c.created_at,
            gateways.c.instance_id,
            gateways.c.current_config_version,
        )
        .join(gateways, gateways.c.id == remote.c.gateway_id)
        .order_by(remote.c.gateway_id, remote.c.version)
    ).all()
    by_gateway: dict[uuid.UUID, list[Any]] = {}
    for row in rows:
        by_gateway.setdefault(row.gateway_id, []).append(row)
    now = datetime.now(UTC)
    for gateway_id, history in by_gateway.items():
        first, newest = history[0], history[-1]
        template_id = uuid.uuid4()
        conn.execute(
            templates.insert().values(
                id=template_id,
                org_id=first.org_id,
                name=_template_name(str(first.instance_id)),
                description="Pushed to this gateway with PUT /api/v1/gateways/{id}/remote-config",
                latest_version=int(newest.version),
                created_by=first.created_by,
                created_at=first.created_at,
                updated_at=newest.created_at,
            )
        )
        conn.execute(
            versions.insert(),
            [
                {
                    "id": r.id,
                    "template_id": template_id,
                    "org_id": r.org_id,
                    "version": int(r.version),
                    "config_yaml": r.config_yaml,
                    "content_type": r.content_type,
                    "config_hash": r.config_hash,
                    "message": None,
                    "created_by": r.created_by,
                    "created_at": r.created_at,
                }
                for r in history
            ],
        )
        deployment_id = uuid.uuid4()
        applied = newest.current_config_version == newest.version
        conn.execute(
            deployments.insert().values(
                id=deployment_id,
                org_id=newest.org_id,
                config_id=template_id,
                config_version_id=newest.id,
                version=int(newest.version),
                target={"gateway_ids": [str(gateway_id)]},
                strategy={"type": "all-at-once"},
                auto_rollback=False,
                state="completed" if applied else "rolling_out",
                current_batch=0,
                batch_count=1,
                batch_started_at=newest.created_at,
                message="carried over from the gateway's pushed configuration",
                created_by=newest.created_by,
                created_at=newest.created_at,
                updated_at=now,
            )
        )
        conn.execute(
            targets.insert().values(
                deployment_id=deployment_id,
                gateway_id=gateway_id,
                org_id=newest.org_id,
                batch=0,
                to_version_id=newest.id,
                had_assignment=False,
                state="applied" if applied else "sent",
                updated_at=now,
            )
        )
        conn.execute(
            assignments.insert().values(
                gateway_id=gateway_id,
                org_id=newest.org_id,
                config_version_id=newest.id,
                deployment_id=deployment_id,
                assigned_at=newest.created_at,
            )
        )


def downgrade() -> None:
    op.create_table(
        "gateway_remote_configs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("gateway_id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("config_yaml", sa.Text(), nullable=False),
        sa.Column("content_type", sa.String(length=64), nullable=False),
        sa.Column("config_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.id"],
            name=op.f("fk_gateway_remote_configs_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["gateway_id"],
            ["gateways.id"],
            name=op.f("fk_gateway_remote_configs_gateway_id_gateways"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organizations.id"],
            name=op.f("fk_gateway_remote_configs_org_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_remote_configs")),
        sa.UniqueConstraint(
            "gateway_id", "version", name=op.f("uq_gateway_remote_configs_gateway_id")
        ),
    )
    with op.batch_alter_table("gateway_remote_configs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_gateway_remote_configs_gateway_id"), ["gateway_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_gateway_remote_configs_org_id"), ["org_id"], unique=False
        )
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(gateways.c.id, gateways.c.instance_id, templates.c.id.label("template_id"))
        .join(assignments, assignments.c.gateway_id == gateways.c.id)
        .join(versions, versions.c.id == assignments.c.config_version_id)
        .join(templates, templates.c.id == versions.c.template_id)
    ).all()
    for row in rows:
        if _template_name(str(row.instance_id)) != _template_name_of(conn, row.template_id):
            continue
        history = conn.execute(
            sa.select(versions).where(versions.c.template_id == row.template_id)
        ).all()
        conn.execute(
            remote.insert(),
            [
                {
                    "id": v.id,
                    "gateway_id": row.id,
                    "org_id": v.org_id,
                    "version": v.version,
                    "config_yaml": v.config_yaml,
                    "content_type": v.content_type,
                    "config_hash": v.config_hash,
                    "created_by": v.created_by,
                    "created_at": v.created_at,
                }
                for v in history
            ],
        )
    op.drop_table("assignments")
    op.drop_table("deployment_targets")
    op.drop_table("deployments")


def _template_name_of(conn: sa.Connection, template_id: uuid.UUID) -> str:
    return str(conn.scalar(sa.select(templates.c.name).where(templates.c.id == template_id)))
