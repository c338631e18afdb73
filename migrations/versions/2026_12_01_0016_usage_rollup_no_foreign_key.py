"""The rollups of usage metrics lose their foreign key to usage_metric.

Checking it cost one lookup per rollup row written, on every event ingest and import (at a
million events, a fifth of the statement). A usage metric is never removed (deletion is soft)
and its rollup rows are only written and dropped with it (app/usage/definitions.py), so the
key guarded nothing the code does not.

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("usage_rollup", "usage_rollup_day", "usage_rollup_value")


def upgrade() -> None:
    for table in TABLES:
        op.drop_constraint(f"{table}_metric_id_fkey", table, type_="foreignkey")


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DELETE FROM {table} WHERE metric_id NOT IN (SELECT id FROM usage_metric)")
        op.create_foreign_key(
            f"{table}_metric_id_fkey",
            table,
            "usage_metric",
            ["metric_id"],
            ["id"],
            ondelete="CASCADE",
        )
