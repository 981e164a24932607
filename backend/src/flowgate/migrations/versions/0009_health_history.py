"""stored gateway health, its history, per-organisation counts, the health sweep's job row,
and a pg_trgm index for name search

Adds ``gateways.health`` (backfilled with the rule at the default thresholds, 60 s / 300 s; the
first health sweep corrects it for other thresholds), ``health_changed_at`` and
``health_reason``; the tables ``gateway_health_history``, ``gateway_counts`` (backfilled with a
COUNT per organisation, status and health), ``gateway_count_deltas`` and ``scheduled_jobs``; the
triggers of :mod:`flowgate.gateways.triggers`; and ``gateway_names`` (each gateway's name,
copied by a trigger) with, on PostgreSQL, the ``pg_trgm`` extension and a GIN trigram index on
it for name search (SQLite: a plain index of the same name).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 10:00:00
"""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

from flowgate.core.db import UTCDateTime
from flowgate.gateways import triggers

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

gateways = sa.table(
    "gateways",
    sa.column("id", sa.Uuid()),
    sa.column("org_id", sa.Uuid()),
    sa.column("status", sa.String()),
    sa.column("last_seen", UTCDateTime()),
    sa.column("health", sa.String()),
    sa.column("health_changed_at", UTCDateTime()),
    sa.column("health_reason", sa.String()),
)


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    with op.batch_alter_table("gateways", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("health", sa.String(length=16), nullable=False, server_default="unhealthy")
        )
        batch_op.add_column(sa.Column("health_changed_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("health_reason", sa.String(length=32), nullable=True))
    now = datetime.now(UTC)
    g = gateways.c
    rule = sa.case(
        (g.status.in_(("inactive", "error")), "offline"),
        (g.last_seen.is_(None), "unhealthy"),
        (sa.and_(g.status == "active", g.last_seen >= now - timedelta(seconds=60)), "healthy"),
        (g.last_seen >= now - timedelta(seconds=300), "warning"),
        else_="unhealthy",
    )
    op.execute(
        gateways.update().values(health=rule, health_changed_at=now, health_reason="migrated")
    )
    op.create_index(
        "ix_gateways_org_id_health", "gateways", ["org_id", "health", "name", "id"], unique=False
    )
    op.create_index(
        "ix_gateways_health_status", "gateways", ["health", "status", "last_seen"], unique=False
    )
    op.create_table(
        "gateway_names",
        sa.Column("gateway_id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["gateway_id"],
            ["gateways.id"],
            name=op.f("fk_gateway_names_gateway_id_gateways"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("gateway_id", name=op.f("pk_gateway_names")),
    )
    op.execute(
        "INSERT INTO gateway_names (gateway_id, org_id, name) SELECT id, org_id, name FROM gateways"
    )
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.create_index(
            "ix_gateway_names_name_trgm",
            "gateway_names",
            ["name"],
            unique=False,
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        )
    else:
        op.create_index("ix_gateway_names_name_trgm", "gateway_names", ["name"], unique=False)

    op.create_table(
        "gateway_health_history",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("gateway_id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("from_health", sa.String(length=16), nullable=True),
        sa.Column("to_health", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["gateway_id"],
            ["gateways.id"],
            name=op.f("fk_gateway_health_history_gateway_id_gateways"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_health_history")),
    )
    op.create_index(
        "ix_gateway_health_history_gateway_id_at",
        "gateway_health_history",
        ["gateway_id", "at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_gateway_health_history_org_id_at", "gateway_health_history", ["org_id", "at"]
    )
    op.create_index("ix_gateway_health_history_at", "gateway_health_history", ["at"])
    op.create_table(
        "gateway_counts",
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("health", sa.String(length=16), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "status", "health", name=op.f("pk_gateway_counts")),
    )
    op.create_table(
        "gateway_count_deltas",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("health", sa.String(length=16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_count_deltas")),
    )
    op.create_index("ix_gateway_count_deltas_org_id", "gateway_count_deltas", ["org_id"])
    if postgres:
        # Every health sweep deletes the deltas it folds (and rewrites a few count rows): have
        # autovacuum reclaim them after a thousand dead rows rather than after 20% of the
        # table, so the summary (which reads the deltas) never wades through dead ones.
        for table in ("gateway_count_deltas", "gateway_counts"):
            op.execute(
                f"ALTER TABLE {table} SET (autovacuum_vacuum_scale_factor = 0, "
                "autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_cost_delay = 0)"
            )
    op.create_table(
        "scheduled_jobs",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("next_run_at", UTCDateTime(), nullable=True),
        sa.Column("last_run_at", UTCDateTime(), nullable=True),
        sa.Column("last_run_by", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduled_jobs")),
    )
    op.execute(
        "INSERT INTO gateway_counts (org_id, status, health, n) "
        "SELECT org_id, status, health, COUNT(*) FROM gateways GROUP BY org_id, status, health"
    )
    triggers.create(bind)


def downgrade() -> None:
    triggers.drop(op.get_bind())
    op.drop_table("scheduled_jobs")
    op.drop_index("ix_gateway_count_deltas_org_id", table_name="gateway_count_deltas")
    op.drop_table("gateway_count_deltas")
    op.drop_table("gateway_counts")
    op.drop_index("ix_gateway_health_history_at", table_name="gateway_health_history")
    op.drop_index("ix_gateway_health_history_org_id_at", table_name="gateway_health_history")
    op.drop_index("ix_gateway_health_history_gateway_id_at", table_name="gateway_health_history")
    op.drop_table("gateway_health_history")
    op.drop_index("ix_gateway_names_name_trgm", table_name="gateway_names")
    op.drop_table("gateway_names")
    op.drop_index("ix_gateways_health_status", table_name="gateways")
    op.drop_index("ix_gateways_org_id_health", table_name="gateways")
    with op.batch_alter_table("gateways", schema=None) as batch_op:
        batch_op.drop_column("health_reason")
        batch_op.drop_column("health_changed_at")
        batch_op.drop_column("health")
    # The extension stays: other databases objects may use it, and it costs nothing.
