"""A prediction records its priority (interactive, default, batch); an index of each
account's open predictions (admission control counts them) and one of each model's starts
(its observed throughput, for queue ETAs).

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("predictions", sa.Column("priority", sa.String(), nullable=False,
                                           server_default="default"))
    op.create_index("ix_predictions_open_owner", "predictions", ["owner"],
                    postgresql_where=sa.text("status IN ('pending', 'started')"))
    op.create_index("ix_predictions_model_started", "predictions", ["model", "started_at"])


def downgrade() -> None:
    op.drop_index("ix_predictions_model_started", table_name="predictions")
    op.drop_index("ix_predictions_open_owner", table_name="predictions")
    op.drop_column("predictions", "priority")
