"""rollout tables: drop the redundant organisation foreign keys

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 20:30:00

``deployment_targets.org_id`` and ``assignments.org_id`` stay (columns and indexes: every
query is scoped by them) but are no longer foreign keys to ``organizations``. Deleting an
organisation still removes both: targets cascade from their deployment and their gateway,
assignments from their gateway, and both of those cascade from the organisation. Each foreign
key is a trigger per inserted row on PostgreSQL; for a 10k-gateway deployment the five on
``deployment_targets`` were about 80 % of the INSERT's time. The downgrade adds them back.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEYS = (
    ("deployment_targets", "fk_deployment_targets_org_id_organizations"),
    ("assignments", "fk_assignments_org_id_organizations"),
)


def upgrade() -> None:
    for table, name in KEYS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(name, type_="foreignkey")


def downgrade() -> None:
    for table, name in KEYS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_foreign_key(
                name, "organizations", ["org_id"], ["id"], ondelete="CASCADE"
            )
