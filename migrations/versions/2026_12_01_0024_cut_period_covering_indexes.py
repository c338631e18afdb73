"""The day indexes of the movements cover what a cut period reads: index-only scans.

A series whose range cuts a period counts the cut period's distinct customers from that
period's own movements (app/metrics/rollup.py, `_cut_facts`), found by day (migration 0023).
Those movements are spread over the whole table (it is written customer by customer), so at a
million customers a month's were read from about a third of the table's pages (1.4 s of a 2 s
query on the benchmark's machine). The day indexes now include every column that reading
takes (customer, kind, the MRR before and after, the neighbouring movement days): the rows
come from the index alone, in day order (about 120 ms for the same month).

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READ = ["customer_id", "kind", "before", "after", "prev_day", "next_day"]


def upgrade() -> None:
    op.drop_index("movement_day_idx", table_name="movement")
    op.create_index("movement_day_idx", "movement", ["day"], postgresql_include=READ)
    op.drop_index("movement_scope_dimension_day_idx", table_name="movement_scope")
    op.create_index(
        "movement_scope_dimension_day_idx",
        "movement_scope",
        ["dimension", "day"],
        postgresql_include=["value", *READ],
    )


def downgrade() -> None:
    op.drop_index("movement_scope_dimension_day_idx", table_name="movement_scope")
    op.create_index("movement_scope_dimension_day_idx", "movement_scope", ["dimension", "day"])
    op.drop_index("movement_day_idx", table_name="movement")
    op.create_index("movement_day_idx", "movement", ["day"])
