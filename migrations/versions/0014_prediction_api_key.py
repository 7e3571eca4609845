"""A prediction records the API key it was made with, and an index of each key's open
predictions (admission control counts them when INFERHOOK_API_MAX_IN_FLIGHT_PER_KEY is set).

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("predictions", sa.Column("api_key_id", sa.String(), nullable=True))
    op.create_index("ix_predictions_open_key", "predictions", ["api_key_id"],
                    postgresql_where=sa.text("status IN ('pending', 'started')"))


def downgrade() -> None:
    op.drop_index("ix_predictions_open_key", table_name="predictions")
    op.drop_column("predictions", "api_key_id")
