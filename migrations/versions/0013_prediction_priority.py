"""A prediction records its priority (interactive, default, batch).

Revision ID: 0013
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("predictions", sa.Column("priority", sa.String(), nullable=False,
                                           server_default="default"))


def downgrade() -> None:
    op.drop_column("predictions", "priority")
