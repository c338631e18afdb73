"""The subscription-level dimensions rolled up beyond the default ones.

`rollup_dimension` names each dimension an operator chose to keep in the rollups besides
`plan`, `currency` and `plan_interval` (`tidemill rollups add status`): the recompute keeps its
rows too, and its breakdowns and one-value series read them instead of deriving movements from
the whole ledger (app.metrics.rollup). Empty at first: the same rollups as before. Writing it
moves the data version, as every table a query result depends on (migration 0014).

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rollup_dimension",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column(
            "added_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.execute(
        "CREATE TRIGGER rollup_dimension_data_version BEFORE INSERT OR UPDATE OR DELETE OR "
        "TRUNCATE ON rollup_dimension FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version()"
    )


def downgrade() -> None:
    op.drop_table("rollup_dimension")
