"""Day indexes for the periods a range cuts: `movement_scope` by (dimension, day) and
`mrr_change` by day.

A series whose range cuts a period reads the rollups, and counts the cut period's distinct
customers from that period's own movements (app/metrics/rollup.py, `_cut_facts`): the total's
and a currency's come from `movement` by its day index; a plan's from `movement_scope`, and
a billing interval's from the ledger of the customers with a change on those days. Without
these indexes both were read whole for a few days' rows.

Revision ID: 0023
Revises: 0021
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("movement_scope_dimension_day_idx", "movement_scope", ["dimension", "day"])
    op.create_index("mrr_change_day_idx", "mrr_change", ["day"])


def downgrade() -> None:
    op.drop_index("mrr_change_day_idx", table_name="mrr_change")
    op.drop_index("movement_scope_dimension_day_idx", table_name="movement_scope")
