"""Each stored movement says in which calendar periods it is its customer's only movement.

A series that counts customers tells, for every movement in range, whether it is its
customer's only movement in its period (the common case, summed as is) or one of several
(grouped by customer). It compared the neighbouring movement days with the row's period
bounds: two date_trunc calls and interval arithmetic per row, in each of the scan's two
passes, about a third of a scan's time. `alone` holds the answer for whole weeks, months,
quarters and years, a bit each (app.movements.ALONE_BITS); the recompute writes it with
every movement (app.movements.alone_bits) and a series over whole periods reads it. The
backfill below is the same rule; it rewrites both tables once (about four minutes at a
million customers on a 2-core machine: docs/benchmarks.md, thirteenth session).

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-04
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0035"
down_revision: str | None = "0034"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("movement", "movement_scope")
UNITS = (
    ("week", "1 week", 1),
    ("month", "1 month", 2),
    ("quarter", "3 months", 4),
    ("year", "1 year", 8),
)


def _bit(unit: str, step: str, bit: int) -> str:
    first = f"date_trunc('{unit}', day::timestamp)"
    return (
        f"CASE WHEN (prev_day IS NULL OR prev_day < ({first})::date)"
        f" AND (next_day IS NULL OR next_day > ({first} + interval '{step}'"
        f" - interval '1 day')::date) THEN {bit} ELSE 0 END"
    )


BITS = " + ".join(_bit(*unit) for unit in UNITS)


def upgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ADD COLUMN alone smallint")
        op.execute(f"UPDATE {table} SET alone = {BITS}")
        op.execute(f"ALTER TABLE {table} ALTER COLUMN alone SET NOT NULL")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} DROP COLUMN alone")
