"""The account event feed: each history row knows its owner, model and feed position.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TXID = "(pg_current_xact_id()::text)::bigint"


def upgrade() -> None:
    op.add_column("prediction_events", sa.Column("owner", sa.String(), nullable=True))
    op.add_column("prediction_events", sa.Column("model", sa.String(), nullable=True))
    # A history row always has its prediction (rows are never deleted); one without could not
    # be shown to anyone, so it goes rather than block the NOT NULL.
    op.execute("""
        UPDATE prediction_events e SET owner = p.owner, model = p.model
        FROM predictions p WHERE p.id = e.prediction_id""")
    op.execute("DELETE FROM prediction_events WHERE owner IS NULL")
    op.alter_column("prediction_events", "owner", nullable=False)
    op.alter_column("prediction_events", "model", nullable=False)
    # Existing rows get positions in their stored order and the migration's transaction id.
    op.add_column("prediction_events", sa.Column(
        "position", sa.BigInteger(), sa.Identity(always=True), nullable=False))
    op.add_column("prediction_events", sa.Column(
        "txid", sa.BigInteger(), server_default=sa.text(TXID), nullable=False))
    op.create_unique_constraint("prediction_events_position_key", "prediction_events",
                                ["position"])
    op.create_index("ix_prediction_events_feed", "prediction_events",
                    ["owner", "txid", "position"])


def downgrade() -> None:
    op.drop_index("ix_prediction_events_feed", table_name="prediction_events")
    op.drop_constraint("prediction_events_position_key", "prediction_events")
    op.drop_column("prediction_events", "txid")
    op.drop_column("prediction_events", "position")
    op.drop_column("prediction_events", "model")
    op.drop_column("prediction_events", "owner")
