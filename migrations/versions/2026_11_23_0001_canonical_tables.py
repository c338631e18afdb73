"""Canonical tables: customers, plans, subscriptions and their history, MRR ledger, movements.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True)


def _now(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "customer",
        _id(),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("external_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("email", sa.Text),
        sa.Column("country", sa.Text),
        _now("created_at"),
        sa.UniqueConstraint("source", "external_id", name="customer_source_external_id_key"),
    )
    op.create_table(
        "plan",
        _id(),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("external_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.UniqueConstraint("source", "external_id", name="plan_source_external_id_key"),
    )
    op.create_table(
        "subscription",
        _id(),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("external_id", sa.Text, nullable=False),
        sa.Column("customer_id", sa.BigInteger, sa.ForeignKey("customer.id"), nullable=False),
        sa.UniqueConstraint("source", "external_id", name="subscription_source_external_id_key"),
    )
    op.create_index("subscription_customer_id_idx", "subscription", ["customer_id"])
    op.create_table(
        "subscription_version",
        _id(),
        sa.Column(
            "subscription_id",
            sa.BigInteger,
            sa.ForeignKey("subscription.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("valid_from", sa.Date, nullable=False),
        sa.Column("valid_to", sa.Date),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("plan_id", sa.BigInteger, sa.ForeignKey("plan.id")),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("amount", sa.Numeric, nullable=False),
        sa.Column("billing_interval", sa.Text, nullable=False),
        sa.Column("interval_count", sa.Integer, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("mrr", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("subscription_id", "valid_from", name="subscription_version_start_key"),
        sa.CheckConstraint(
            "valid_to IS NULL OR valid_to > valid_from", name="version_period_check"
        ),
        sa.CheckConstraint("mrr >= 0", name="version_mrr_check"),
    )
    op.create_table(
        "mrr_change",
        sa.Column("customer_id", sa.BigInteger, nullable=False),
        sa.Column("subscription_id", sa.BigInteger, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("delta", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("plan_id", sa.BigInteger),
        sa.Column("plan_interval", sa.Text, nullable=False),
    )
    op.create_index("mrr_change_customer_day_idx", "mrr_change", ["customer_id", "day"])
    op.create_table(
        "movement",
        sa.Column("customer_id", sa.BigInteger, primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("before", sa.BigInteger, nullable=False),
        sa.Column("after", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
    )
    op.create_index("movement_day_idx", "movement", ["day"])
    op.create_table(
        "import_run",
        _id(),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("row_count", sa.Integer, nullable=False),
        sa.Column("changed_customers", sa.Integer, nullable=False),
        _now("finished_at"),
    )
    op.create_table(
        "raw_event",
        _id(),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        _now("received_at"),
        sa.Column("processed_at", sa.DateTime(timezone=True)),
        sa.Column("error", sa.Text),
        sa.UniqueConstraint("source", "event_id", name="raw_event_source_event_id_key"),
    )


def downgrade() -> None:
    for table in (
        "raw_event",
        "import_run",
        "movement",
        "mrr_change",
        "subscription_version",
        "subscription",
        "plan",
        "customer",
    ):
        op.drop_table(table)
