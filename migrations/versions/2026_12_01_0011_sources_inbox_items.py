"""Sources (connected billing systems, secrets encrypted), the durable inbox of their events,
the objects they observed (every state, in event time), and what the canonical model lacked
for them: subscription items, a plan's product and interval, a subscription's collection
method.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENT_STATUSES = "'received', 'pending', 'processed', 'failed', 'ignored'"


def _now(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def upgrade() -> None:
    op.create_table(
        "source",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("secrets", sa.LargeBinary, nullable=False),
        sa.Column("secret_hints", JSONB, nullable=False, server_default="{}"),
        sa.Column("settings", JSONB, nullable=False, server_default="{}"),
        sa.Column("cursor", JSONB, nullable=False, server_default="{}"),
        _now("created_at"),
        sa.UniqueConstraint("name", name="source_name_key"),
        sa.CheckConstraint(
            "kind IN ('csv', 'stripe', 'lago', 'killbill')", name="source_kind_check"
        ),
    )
    # the inbox had never been written to: it is rebuilt with its source and its lifecycle
    op.drop_table("raw_event")
    op.create_table(
        "raw_event",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "source_id",
            sa.BigInteger,
            sa.ForeignKey("source.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("api_version", sa.Text),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="received"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
        _now("received_at"),
        sa.Column("processed_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("source_id", "event_id", name="raw_event_source_event_id_key"),
        sa.CheckConstraint(f"status IN ({EVENT_STATUSES})", name="raw_event_status_check"),
    )
    op.create_index(
        "raw_event_waiting_idx",
        "raw_event",
        ["occurred_at", "id"],
        postgresql_where=sa.text("status IN ('received', 'pending', 'failed')"),
    )
    op.create_table(
        "source_object",
        sa.Column(
            "source_id",
            sa.BigInteger,
            sa.ForeignKey("source.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("object_id", sa.Text, primary_key=True),
        sa.Column("observed_at", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("object_type", sa.Text, nullable=False),
        sa.Column("customer_ref", sa.Text),
        sa.Column("refs", ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("payload", JSONB, nullable=False),
    )
    op.create_index("source_object_customer_idx", "source_object", ["source_id", "customer_ref"])
    op.create_index("source_object_refs_idx", "source_object", ["refs"], postgresql_using="gin")
    op.create_table(
        "subscription_item",
        sa.Column("subscription_id", sa.BigInteger, primary_key=True),
        sa.Column("valid_from", sa.Date, primary_key=True),
        sa.Column("position", sa.Integer, primary_key=True),
        sa.Column("plan_id", sa.BigInteger),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("mrr", sa.BigInteger, nullable=False),
        sa.Column("billing_interval", sa.Text, nullable=False),
        sa.Column("interval_count", sa.Integer, nullable=False),
        sa.Column("pricing_model", sa.Text, nullable=False),
        sa.Column("usage_type", sa.Text, nullable=False),
        sa.CheckConstraint("mrr >= 0", name="subscription_item_mrr_check"),
    )
    op.add_column("plan", sa.Column("product", sa.Text))
    op.add_column("subscription_version", sa.Column("collection_method", sa.Text))
    op.add_column("mrr_change", sa.Column("collection_method", sa.Text))


def downgrade() -> None:
    op.drop_column("mrr_change", "collection_method")
    op.drop_column("subscription_version", "collection_method")
    op.drop_column("plan", "product")
    op.drop_table("subscription_item")
    op.drop_table("source_object")
    op.drop_table("raw_event")
    op.create_table(
        "raw_event",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        _now("received_at"),
        sa.Column("processed_at", sa.DateTime(timezone=True)),
        sa.Column("error", sa.Text),
        sa.UniqueConstraint("source", "event_id", name="raw_event_source_event_id_key"),
    )
    op.drop_table("source")
