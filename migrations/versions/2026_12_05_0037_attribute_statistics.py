"""The holders of an attribute value: estimated right by the planner, read from an index alone.

Every attribute's values share `customer_attribute`'s value columns, each column holding the
values of the keys of its type, and NULL in the rows of the other types' keys. ANALYZE keeps
statistics per column, so the planner multiplied the share of the key's rows by the share of
a value among all rows: for `attr.seats >= 10` (one attribute in five) it expected 118,695
holders at a million customers where there are 570,948, and for `attr.industry IN (...)`
102,513 where there are 500,959. Statistics on each (key, value column) pair keep their most
common combinations, which for an attribute of a few dozen values are all of them: the
estimates became 565,335 and 514,002. (A date, or a number of many values, is still
estimated column by column: its combinations are too many to keep.)

With the estimates right, the value indexes also cover the customer id, so that a segment's
or a filter's holders are read from the index alone: at a million customers, the dashboard's
overview filtered by `attr.seats >= 10` took 5.8 s instead of 10.4 s, and a segment's churn
view 3.9 s instead of 4.9 s. (Covering indexes alone, with the estimates as they were, made
the planner read the filtered overview's movements by nested loops: 10 % slower.)
docs/benchmarks.md, seventeenth session. The indexes are built again: this migration took
14.6 s at a million customers.

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-05
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0037"
down_revision: str | None = "0036"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("string_value", "number_value", "boolean_value", "date_value")


def _index(column: str, include: list[str]) -> None:
    name = f"customer_attribute_{column}_idx"
    op.drop_index(name, table_name="customer_attribute")
    op.create_index(name, "customer_attribute", ["key", column], postgresql_include=include)


def upgrade() -> None:
    for column in COLUMNS:
        op.execute(
            f"CREATE STATISTICS customer_attribute_key_{column}_stats (mcv) "
            f"ON key, {column} FROM customer_attribute"
        )
        _index(column, ["customer_id"])
    op.execute("ANALYZE customer_attribute")


def downgrade() -> None:
    for column in COLUMNS:
        op.execute(f"DROP STATISTICS customer_attribute_key_{column}_stats")
        _index(column, [])
