"""Dispatcher: projection offsets, webhook attempts, delivery leases, secret rotation.

Revision ID: 0004
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dispatcher_offsets",
        sa.Column("topic", sa.String(), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("topic", "partition"),
    )
    op.create_table(
        "webhook_attempts",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.BigInteger(), nullable=False),
        sa.Column("prediction_id", sa.String(), nullable=False),
        sa.Column("webhook_id", sa.String(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("response", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_webhook_attempts_delivery_id"), "webhook_attempts", ["delivery_id"])
    op.create_index(op.f("ix_webhook_attempts_prediction_id"), "webhook_attempts",
                    ["prediction_id"])

    op.add_column("webhook_deliveries",
                  sa.Column("endpoint", sa.String(), nullable=False, server_default=""))
    op.add_column("webhook_deliveries", sa.Column("claim_id", sa.String(), nullable=True))
    op.add_column("webhook_deliveries",
                  sa.Column("scheduled_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE webhook_deliveries SET scheduled_at = created_at, "
               "endpoint = substring(url from '^[a-z]+://[^/?#]+')")
    op.alter_column("webhook_deliveries", "scheduled_at", nullable=False)
    op.alter_column("webhook_deliveries", "endpoint", server_default=None)
    op.create_index("ix_webhook_deliveries_owner_state", "webhook_deliveries",
                    ["owner", "state", "id"])

    op.add_column("webhook_secrets", sa.Column("previous_secret", sa.String(), nullable=True))
    op.add_column("webhook_secrets", sa.Column("previous_expires_at", sa.DateTime(timezone=True),
                                               nullable=True))
    op.add_column("webhook_secrets", sa.Column("signing_key", sa.String(), nullable=True))


def downgrade() -> None:
    op.drop_column("webhook_secrets", "signing_key")
    op.drop_column("webhook_secrets", "previous_expires_at")
    op.drop_column("webhook_secrets", "previous_secret")
    op.drop_index("ix_webhook_deliveries_owner_state", table_name="webhook_deliveries")
    op.drop_column("webhook_deliveries", "scheduled_at")
    op.drop_column("webhook_deliveries", "claim_id")
    op.drop_column("webhook_deliveries", "endpoint")
    op.drop_index(op.f("ix_webhook_attempts_prediction_id"), table_name="webhook_attempts")
    op.drop_index(op.f("ix_webhook_attempts_delivery_id"), table_name="webhook_attempts")
    op.drop_table("webhook_attempts")
    op.drop_table("dispatcher_offsets")
