"""Customer-level dimensions in the rollups: the customers whose country changes are recorded.

`tidemill rollups add customer_country region` keeps rollup rows by the customer's country
and its region, read from the customer row. A customer's contribution to those rows then
changes when its country does, without any change to its movements. This trigger records,
while such a dimension is rolled up, each customer whose country an UPDATE changes (an
import's or a source's upsert), with its country before, in a temporary table of the
transaction (`customer_moved`, dropped at its commit; the first change of a customer in it
is kept). The recompute that follows in the same transaction moves those customers'
contribution from the old value to the new one before their movements change
(app.metrics.rollup_delta.stage_moved_customers).

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0033"
down_revision: str | None = "0032"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MOVED = """
CREATE FUNCTION customer_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM rollup_dimension WHERE name IN ('customer_country', 'region')) THEN
        IF to_regclass('pg_temp.customer_moved') IS NULL THEN
            CREATE TEMP TABLE customer_moved (customer_id bigint PRIMARY KEY, country text)
            ON COMMIT DROP;
        END IF;
        INSERT INTO pg_temp.customer_moved VALUES (OLD.id, OLD.country)
        ON CONFLICT (customer_id) DO NOTHING;
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.execute(MOVED)
    op.execute(
        "CREATE TRIGGER customer_moved AFTER UPDATE OF country ON customer FOR EACH ROW "
        "WHEN (OLD.country IS DISTINCT FROM NEW.country) EXECUTE FUNCTION customer_moved()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER customer_moved ON customer")
    op.execute("DROP FUNCTION customer_moved()")
