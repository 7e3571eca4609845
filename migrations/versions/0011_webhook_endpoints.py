"""Account webhook endpoints; the outbox is unique per (webhook-id, destination).

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("description", sa.String(), nullable=False),
        sa.Column("event_types", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("models", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("rate_limit", sa.Integer(), nullable=True),
        sa.Column("ordered", sa.Boolean(), nullable=False),
        sa.Column("payload", sa.String(), nullable=False),
        sa.Column("secret", sa.String(), nullable=False),
        sa.Column("previous_secret", sa.String(), nullable=True),
        sa.Column("previous_expires_at", _TS, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.Column("disabled_at", _TS, nullable=True),
        sa.Column("disabled_reason", sa.String(), nullable=True),
        sa.Column("failing_since", _TS, nullable=True),
        sa.Column("warned", sa.Boolean(), nullable=False),
        sa.Column("rate_slot_at", _TS, nullable=True),
    )
    op.create_index("ix_webhook_endpoints_owner", "webhook_endpoints", ["owner"])
    op.add_column("webhook_deliveries",
                  sa.Column("endpoint_id", sa.Text(), nullable=False, server_default=""))
    op.drop_constraint("webhook_deliveries_webhook_id_key", "webhook_deliveries", type_="unique")
    op.create_unique_constraint("uq_webhook_deliveries_destination", "webhook_deliveries",
                                ["webhook_id", "endpoint_id"])
    op.create_index("ix_webhook_deliveries_endpoint_id", "webhook_deliveries",
                    ["endpoint_id", "state", "id"], postgresql_where=sa.text("endpoint_id <> ''"))


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_endpoint_id", table_name="webhook_deliveries")
    op.drop_constraint("uq_webhook_deliveries_destination", "webhook_deliveries", type_="unique")
    op.execute("DELETE FROM webhook_deliveries WHERE endpoint_id <> ''")
    op.create_unique_constraint("webhook_deliveries_webhook_id_key", "webhook_deliveries",
                                ["webhook_id"])
    op.drop_column("webhook_deliveries", "endpoint_id")
    op.drop_index("ix_webhook_endpoints_owner", table_name="webhook_endpoints")
    op.drop_table("webhook_endpoints")
