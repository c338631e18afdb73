"""Subscription status and pricing model on versions and ledger rows, and each customer's
first day as a customer (dimensions).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # versions are written only by the loader, joined to their subscription; the per-row FK
    # check was the largest single cost of a big import (the unique key on (subscription_id,
    # valid_from) still guards the history)
    op.drop_constraint("subscription_version_subscription_id_fkey", "subscription_version")
    op.add_column(
        "subscription_version",
        sa.Column("pricing_model", sa.Text, nullable=False, server_default="flat"),
    )
    op.alter_column("subscription_version", "pricing_model", server_default=None)
    op.add_column(
        "mrr_change", sa.Column("status", sa.Text, nullable=False, server_default="active")
    )
    op.add_column(
        "mrr_change", sa.Column("pricing_model", sa.Text, nullable=False, server_default="flat")
    )
    op.alter_column("mrr_change", "status", server_default=None)
    op.alter_column("mrr_change", "pricing_model", server_default=None)
    op.add_column("customer", sa.Column("customer_since", sa.Date))
    op.execute(
        "UPDATE customer c SET customer_since = m.first_new FROM "
        "(SELECT customer_id, min(day) AS first_new FROM movement WHERE kind = 'new' "
        "GROUP BY customer_id) m WHERE m.customer_id = c.id"
    )


def downgrade() -> None:
    op.create_foreign_key(
        "subscription_version_subscription_id_fkey",
        "subscription_version",
        "subscription",
        ["subscription_id"],
        ["id"],
        ondelete="CASCADE",
    )
    op.drop_column("customer", "customer_since")
    op.drop_column("mrr_change", "pricing_model")
    op.drop_column("mrr_change", "status")
    op.drop_column("subscription_version", "pricing_model")
