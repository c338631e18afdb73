"""Exact per-period aggregates of the movements (`rollup`; per cohort, `cohort_rollup`), kept
by the recompute, and the `rollup_rebuild` marker: a database that already holds movements is
marked, so queries scan movements until the next import rebuilds the rollups in full.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = ("new", "expansion", "contraction", "churn", "reactivation", "net")
COUNTS = (
    "customers_net",
    "new_customers",
    "expansion_customers",
    "contraction_customers",
    "churn_customers",
    "reactivation_customers",
    "churned_customers",
)
DELTAS = ("retained_delta", "gross_retained_delta")


def upgrade() -> None:
    op.create_table(
        "rollup",
        sa.Column("interval", sa.Text, primary_key=True),
        sa.Column("dimension", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, primary_key=True),
        sa.Column("k", sa.Date, primary_key=True),
        *(sa.Column(name, sa.Numeric, nullable=False) for name in MONEY),
        *(sa.Column(name, sa.BigInteger, nullable=False) for name in COUNTS),
        *(sa.Column(name, sa.Numeric, nullable=False) for name in DELTAS),
        sa.Column("members", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "cohort_rollup",
        sa.Column("cohort", sa.Date, primary_key=True),
        sa.Column("month", sa.Date, primary_key=True),
        sa.Column("mrr_change", sa.Numeric, nullable=False),
        sa.Column("active_change", sa.BigInteger, nullable=False),
        sa.Column("amount_days", sa.Numeric, nullable=False),
        sa.Column("joined", sa.BigInteger, nullable=False),
        sa.Column("movements", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "rollup_rebuild",
        sa.Column("id", sa.SmallInteger, primary_key=True),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.execute(
        "INSERT INTO rollup_rebuild (id, requested_at) "
        "SELECT 1, now() WHERE EXISTS (SELECT FROM movement)"
    )


def downgrade() -> None:
    op.drop_table("rollup_rebuild")
    op.drop_table("cohort_rollup")
    op.drop_table("rollup")
