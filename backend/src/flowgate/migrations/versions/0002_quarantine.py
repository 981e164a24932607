"""quarantine stored JSON that cannot be served

Creates ``quarantined_values`` and moves every JSON value stored before the checks of
``flowgate.core.jsonsafe`` existed that cannot be decoded, fails them, or is not an object,
into it; the column is reset to ``{}``. ``flowgate db check`` runs the same scan on demand.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from flowgate.core.quarantine import scan

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The JSON columns that exist at this revision (a later model may add more).
JSON_COLUMNS = {"gateways": ("extra_metadata", "labels", "opamp_state")}


def upgrade() -> None:
    op.create_table(
        "quarantined_values",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("row_id", sa.String(length=64), nullable=False),
        sa.Column("column_name", sa.String(length=64), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("quarantined_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantined_values")),
    )
    if not op.get_context().as_sql:  # offline (--sql) there are no rows to scan
        scan(op.get_bind(), JSON_COLUMNS)


def downgrade() -> None:
    # Quarantined values stay out of their columns: they are what could not be served.
    op.drop_table("quarantined_values")
