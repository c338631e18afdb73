"""The planner is told how many customers the ledger's rows belong to.

ANALYZE estimates the distinct customers of `mrr_change` from a sample of its pages, and the
ledger is stored customer by customer, so a sample holds few of them: at a million customers
it estimated 15,613. Queries that read the ledger of some customers (the movements of a page
derived for the customers who changed on its days) then hashed the whole ledger, expecting
480 rows per customer where they have 18, instead of reading each one's rows by its index.
The settling after a large import (app.ingest.subscriptions.spread_customers) states the
number as a fraction of the ledger's rows; this does the same for a database already filled.

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0036"
down_revision: str | None = "0035"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SPREAD = """
DO $$
DECLARE
    customers bigint := (SELECT count(*) FROM customer);
    ledger_rows real := (SELECT reltuples FROM pg_class WHERE oid = 'mrr_change'::regclass);
BEGIN
    IF customers > 0 AND ledger_rows > 0 THEN
        EXECUTE format(
            'ALTER TABLE mrr_change ALTER COLUMN customer_id SET (n_distinct = %s)',
            -least(customers / ledger_rows, 1)
        );
        ANALYZE mrr_change;
    END IF;
END $$
"""


def upgrade() -> None:
    op.execute(SPREAD)


def downgrade() -> None:
    op.execute("ALTER TABLE mrr_change ALTER COLUMN customer_id RESET (n_distinct)")
