"""Deadlines, result TTLs and the started phase on predictions.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("predictions", sa.Column("deadline", sa.DateTime(timezone=True), nullable=True))
    op.add_column("predictions", sa.Column("result_ttl_seconds", sa.Float(), nullable=True))
    op.add_column("predictions", sa.Column("phase", sa.String(), nullable=True))


def downgrade() -> None:
    op.drop_column("predictions", "phase")
    op.drop_column("predictions", "result_ttl_seconds")
    op.drop_column("predictions", "deadline")
