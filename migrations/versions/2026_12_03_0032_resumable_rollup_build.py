"""A dimension's rollup rows built customer slice by customer slice, each slice committed.

`tidemill rollups add` used to build the rows of the dimensions it adds in one transaction
(85 s at a million customers): interrupted, all of it was lost. It now commits each slice's
contribution to `rollup_build_part` and where it stands to `rollup_build` (one row: the
dimensions being built, the first customer id not yet read, and the data version when the
last slice was committed), and sums the parts into `rollup` at the end, recording the
dimensions in `rollup_dimension` in the same transaction. Run again after an interruption, it
resumes after the last committed slice when nothing was written since (the same data
version), else builds again from the start. Neither table is read by a query, so neither moves
the data version.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0032"
down_revision: str | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the summed columns of `rollup` (migration 0015 and later), as numeric sums of parts
SUMMED = (
    "new",
    "expansion",
    "contraction",
    "churn",
    "reactivation",
    "net",
    "customers_net",
    "new_customers",
    "expansion_customers",
    "contraction_customers",
    "churn_customers",
    "reactivation_customers",
    "churned_customers",
    "retained_delta",
    "gross_retained_delta",
    "members",
)


def upgrade() -> None:
    op.create_table(
        "rollup_build",
        sa.Column("id", sa.SmallInteger, primary_key=True, server_default="1"),
        sa.Column("dimensions", sa.ARRAY(sa.Text), nullable=False),
        sa.Column("next_customer", sa.BigInteger, nullable=False),
        sa.Column("data_version", sa.BigInteger, nullable=False),
        sa.Column(
            "started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint("id = 1", name="rollup_build_one_row"),
    )
    op.create_table(
        "rollup_build_part",
        *(sa.Column(name, sa.Text, nullable=False) for name in ("interval", "dimension", "value")),
        sa.Column("k", sa.Date, nullable=False),
        *(sa.Column(name, sa.Numeric, nullable=False) for name in SUMMED),
    )


def downgrade() -> None:
    op.drop_table("rollup_build_part")
    op.drop_table("rollup_build")
