"""The number of customers, kept by triggers: a customers page's `totalCount` without counting
every customer (at a million customers, counting them took longer than the whole page).

The count is spread over slots (the writing backend's pid % 64), as the data version is, so
concurrent writers never wait for each other: the total is the sum of the slots. Statement
triggers with transition tables add the rows a statement inserted and subtract those it
deleted (an INSERT ... ON CONFLICT DO UPDATE counts only the rows it inserted); a TRUNCATE
empties the tally.

Revision ID: 0021
Revises: 0016
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLOTS = 64


def _tally(name: str, rows: str, sign: str) -> str:
    return f"""
CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO customer_tally (slot, customers)
    SELECT pg_backend_pid() % {SLOTS}, {sign}count(*) FROM {rows} HAVING count(*) > 0
    ON CONFLICT (slot) DO UPDATE SET customers = customer_tally.customers + EXCLUDED.customers;
    RETURN NULL;
END
$$
"""


EMPTIED = """
CREATE FUNCTION customer_tally_emptied() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM customer_tally;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "customer_tally",
        sa.Column("slot", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("customers", sa.BigInteger, nullable=False),
    )
    op.execute(
        "INSERT INTO customer_tally (slot, customers) "
        "SELECT 0, count(*) FROM customer HAVING count(*) > 0"
    )
    op.execute(_tally("customer_tally_added", "added", ""))
    op.execute(_tally("customer_tally_removed", "removed", "-"))
    op.execute(EMPTIED)
    op.execute(
        "CREATE TRIGGER customer_tally_added AFTER INSERT ON customer "
        "REFERENCING NEW TABLE AS added FOR EACH STATEMENT "
        "EXECUTE FUNCTION customer_tally_added()"
    )
    op.execute(
        "CREATE TRIGGER customer_tally_removed AFTER DELETE ON customer "
        "REFERENCING OLD TABLE AS removed FOR EACH STATEMENT "
        "EXECUTE FUNCTION customer_tally_removed()"
    )
    op.execute(
        "CREATE TRIGGER customer_tally_emptied AFTER TRUNCATE ON customer "
        "FOR EACH STATEMENT EXECUTE FUNCTION customer_tally_emptied()"
    )


def downgrade() -> None:
    for name in ("added", "removed", "emptied"):
        op.execute(f"DROP TRIGGER customer_tally_{name} ON customer")
        op.execute(f"DROP FUNCTION customer_tally_{name}()")
    op.drop_table("customer_tally")
