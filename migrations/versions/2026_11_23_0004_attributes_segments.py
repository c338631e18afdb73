"""Customer attributes (definitions and typed values) and saved segments.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "attribute",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint(
            "type IN ('string', 'number', 'boolean', 'date')", name="attribute_type_check"
        ),
    )
    op.create_table(
        "customer_attribute",
        sa.Column(
            "customer_id",
            sa.BigInteger,
            sa.ForeignKey("customer.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "key", sa.Text, sa.ForeignKey("attribute.key", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("string_value", sa.Text),
        sa.Column("number_value", sa.Numeric),
        sa.Column("boolean_value", sa.Boolean),
        sa.Column("date_value", sa.Date),
    )
    for column in ("string_value", "number_value", "boolean_value", "date_value"):
        op.create_index(f"customer_attribute_{column}_idx", "customer_attribute", ["key", column])
    op.create_table(
        "segment",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("definition", JSONB, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )


def downgrade() -> None:
    op.drop_table("segment")
    op.drop_table("customer_attribute")
    op.drop_table("attribute")
