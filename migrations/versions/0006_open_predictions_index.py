"""A partial index on open predictions (the reaper's pass and GET /v1/queues read only these).

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_predictions_open", "predictions", ["status", "model"], unique=False,
                    postgresql_where=sa.text("status IN ('pending', 'started')"))


def downgrade() -> None:
    op.drop_index("ix_predictions_open", table_name="predictions")
