"""FX rates, trial dates, movement currency and neighbours, per-value movements of plan and
billing interval, currencies in use, half-even rounding.


Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROUND_HALF_EVEN = """
CREATE FUNCTION round_half_even(value numeric) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE
        WHEN value - floor(value) = 0.5 THEN (floor(value) + (floor(value)::bigint & 1))::bigint
        ELSE round(value)::bigint
    END
$$
"""


def upgrade() -> None:
    op.create_table(
        "fx_rate",
        sa.Column("currency", sa.Text, primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("rate", sa.Numeric, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.CheckConstraint("rate > 0", name="fx_rate_positive_check"),
    )
    op.add_column("subscription_version", sa.Column("trial_start", sa.Date))
    op.add_column("subscription_version", sa.Column("trial_end", sa.Date))
    op.add_column("movement", sa.Column("currency", sa.Text))
    op.execute(
        "UPDATE movement m SET currency = c.currency FROM "
        "(SELECT DISTINCT ON (customer_id) customer_id, currency FROM mrr_change) c "
        "WHERE c.customer_id = m.customer_id"
    )
    op.execute("UPDATE movement SET currency = 'USD' WHERE currency IS NULL")
    op.alter_column("movement", "currency", nullable=False)
    op.add_column("movement", sa.Column("prev_day", sa.Date))
    op.add_column("movement", sa.Column("next_day", sa.Date))
    op.execute(
        "UPDATE movement m SET prev_day = n.prev_day, next_day = n.next_day FROM ("
        " SELECT customer_id, day,"
        "  lag(day) OVER (PARTITION BY customer_id ORDER BY day) AS prev_day,"
        "  lead(day) OVER (PARTITION BY customer_id ORDER BY day) AS next_day"
        " FROM movement) n WHERE n.customer_id = m.customer_id AND n.day = m.day"
    )
    op.create_table(
        "movement_scope",
        sa.Column("dimension", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("customer_id", sa.BigInteger, nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("before", sa.BigInteger, nullable=False),
        sa.Column("after", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("prev_day", sa.Date),
        sa.Column("next_day", sa.Date),
    )
    op.create_index("movement_scope_customer_idx", "movement_scope", ["customer_id"])
    op.create_table(
        "ledger_currency",
        sa.Column("currency", sa.Text, primary_key=True),
        sa.Column("first_day", sa.Date, nullable=False),
    )
    op.execute(
        "INSERT INTO ledger_currency SELECT currency, min(day) FROM mrr_change GROUP BY currency"
    )
    op.execute(ROUND_HALF_EVEN)
    # plan ids are only ever set by the loader's joins with `plan`; the per-row FK check was
    # the most expensive part of a large import
    op.drop_constraint("subscription_version_plan_id_fkey", "subscription_version")


def downgrade() -> None:
    op.create_foreign_key(
        "subscription_version_plan_id_fkey", "subscription_version", "plan", ["plan_id"], ["id"]
    )
    op.execute("DROP FUNCTION round_half_even(numeric)")
    op.drop_table("ledger_currency")
    op.drop_table("movement_scope")
    op.drop_column("movement", "next_day")
    op.drop_column("movement", "prev_day")
    op.drop_column("movement", "currency")
    op.drop_column("subscription_version", "trial_end")
    op.drop_column("subscription_version", "trial_start")
    op.drop_table("fx_rate")
