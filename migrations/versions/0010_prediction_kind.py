"""A prediction made through `/v1/async/<kind>` records its kind and result options.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("predictions", sa.Column("kind", sa.String(), nullable=True))
    op.add_column("predictions", sa.Column("task_options", postgresql.JSONB(astext_type=sa.Text()),
                                           nullable=True))


def downgrade() -> None:
    op.drop_column("predictions", "task_options")
    op.drop_column("predictions", "kind")
