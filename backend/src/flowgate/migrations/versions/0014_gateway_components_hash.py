"""gateways.components_hash: the hash of the components an OpAMP agent reported, in a column

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 20:00:00

A deployment checks its version against the components each target reported, and agents of
one Collector build share one map under one hash. The deployment reads every target's hash and
each distinct map once; read out of ``opamp_state`` (tens of KiB for a Collector that lists its
components), the hash cost PostgreSQL unpacking every state. The presence flush writes the
column with the state it comes from; existing rows are filled in from their state.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Not a batch operation: on SQLite that recreates the table and loses its triggers (0009).
    op.add_column("gateways", sa.Column("components_hash", sa.Text(), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "UPDATE gateways SET components_hash = opamp_state->'available_components'->>'hash'"
            " WHERE opamp_state->'available_components'->>'hash' IS NOT NULL"
        )
    else:
        op.execute(
            "UPDATE gateways SET components_hash ="
            " json_extract(opamp_state, '$.available_components.hash')"
            " WHERE json_valid(opamp_state)"
            " AND json_extract(opamp_state, '$.available_components.hash') IS NOT NULL"
        )


def downgrade() -> None:
    # Native on both (SQLite 3.35+), keeping the table's triggers.
    op.execute("ALTER TABLE gateways DROP COLUMN components_hash")
