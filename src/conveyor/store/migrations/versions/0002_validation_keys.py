"""validation_keys: the rows validation during change capture still has to
compare, kept across runs (issue 11).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "validation_keys",
        sa.Column("task", sa.String(length=200), nullable=False),
        sa.Column("schema_name", sa.String(length=200), nullable=False),
        sa.Column("table_name", sa.String(length=200), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("since", sa.Float(), nullable=True),
        sa.UniqueConstraint("task", "schema_name", "table_name", "key"),
    )


def downgrade() -> None:
    raise NotImplementedError("a metadata store is only upgraded")
