"""gateway labels in two layers, and the gateway_labels table label selectors query

Adds ``gateways.agent_labels`` (what the gateway reports) and ``gateways.manual_labels`` (what
people set; a null value hides an agent label), keeps ``gateways.labels`` as the effective set,
and mirrors it row by row in ``gateway_labels`` (indexed on org_id, key, value, gateway_id; on
PostgreSQL with extended statistics on key and value).

Backfill: the existing labels stay exactly as they are. A REST gateway's are recorded as its
agent labels (they came with its registration, and a re-registration replaced them, as it still
does); any other gateway's as people's (only a PATCH could set them).

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("gateways", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("agent_labels", JSON, nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(
            sa.Column("manual_labels", JSON, nullable=False, server_default=sa.text("'{}'"))
        )
    op.execute("UPDATE gateways SET agent_labels = labels WHERE transport = 'rest'")
    op.execute("UPDATE gateways SET manual_labels = labels WHERE transport <> 'rest'")
    with op.batch_alter_table("gateways", schema=None) as batch_op:
        batch_op.alter_column("agent_labels", server_default=None)
        batch_op.alter_column("manual_labels", server_default=None)

    op.create_table(
        "gateway_labels",
        sa.Column("gateway_id", sa.Uuid(), nullable=False),
        sa.Column("key", sa.String(length=317), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["gateway_id"],
            ["gateways.id"],
            name=op.f("fk_gateway_labels_gateway_id_gateways"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("gateway_id", "key", name=op.f("pk_gateway_labels")),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_gateway_labels_org_id_key_value",
        "gateway_labels",
        ["org_id", "key", "value", "gateway_id"],
        unique=False,
    )
    if op.get_bind().dialect.name == "postgresql":
        # A value belongs to its key (prod is a value of env, not of region): without these
        # statistics the planner multiplies the two selectivities, underestimates a
        # selector's matches several times over and picks slow plans for the list.
        op.execute(
            "CREATE STATISTICS st_gateway_labels_key_value (mcv, dependencies) "
            "ON key, value FROM gateway_labels"
        )
        op.execute(
            "INSERT INTO gateway_labels (gateway_id, org_id, key, value) "
            "SELECT g.id, g.org_id, l.key, l.value FROM gateways g, jsonb_each_text(g.labels) l"
        )
    else:
        op.execute(
            "INSERT INTO gateway_labels (gateway_id, org_id, key, value) "
            "SELECT g.id, g.org_id, l.key, l.value FROM gateways g, json_each(g.labels) l"
        )


def downgrade() -> None:
    op.drop_index("ix_gateway_labels_org_id_key_value", table_name="gateway_labels")
    op.drop_table("gateway_labels")
    with op.batch_alter_table("gateways", schema=None) as batch_op:
        batch_op.drop_column("manual_labels")
        batch_op.drop_column("agent_labels")
