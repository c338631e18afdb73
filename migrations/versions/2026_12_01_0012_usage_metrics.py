"""Usage events (partitioned by month), their dedup keys, usage metric definitions, the
per-(metric, customer, day) rollups of INDEXED metrics, and resumable event imports.

`usage_event` is partitioned by range of `ts`, one partition per calendar month (UTC), made
by the ingest path when an event of a new month arrives (app/usage/partitions.py). The
partitions live in their own schema, `usage_partitions`, so the public schema holds exactly the
tables of app/tables.py. A unique key on a partitioned table must include the partition key, so
an event id's uniqueness per source is kept by the small `usage_event_key` table instead: an
event is stored only when its (source, event_id) could be inserted there.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.func.now()


def _timestamp(name: str, nullable: bool = False) -> sa.Column[object]:
    default = None if nullable else NOW
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, server_default=default)


def _events() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS usage_partitions")
    op.create_table(
        "usage_event",
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("customer_id", sa.BigInteger, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("properties", JSONB, nullable=False),
        sa.Column("product", sa.Text),
        _timestamp("received_at"),
        postgresql_partition_by="RANGE (ts)",
    )
    op.create_index("usage_event_customer_idx", "usage_event", ["customer_id", "name", "ts"])
    op.create_table(
        "usage_event_key",
        sa.Column("source", sa.Text, primary_key=True),
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    )


def _metrics() -> None:
    op.create_table(
        "usage_metric",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("event_name", sa.Text),
        sa.Column("aggregation", sa.Text),
        sa.Column("property", sa.Text),
        sa.Column("value_type", sa.Text, nullable=False),
        sa.Column("filters", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("query_type", sa.Text, nullable=False),
        sa.Column("expression", sa.Text),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        _timestamp("deleted_at", nullable=True),
        sa.CheckConstraint(
            "query_type IN ('SIMPLE', 'INDEXED', 'COMPOSITE')", name="usage_metric_query_type_check"
        ),
    )


def _metric() -> sa.ForeignKey:
    return sa.ForeignKey("usage_metric.id", ondelete="CASCADE")


def _aggregates() -> list[sa.Column[object]]:
    return [
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("sum", sa.Numeric),
        sa.Column("min", sa.Numeric),
        sa.Column("max", sa.Numeric),
        sa.Column("latest_at", sa.DateTime(timezone=True)),
        sa.Column("latest_id", sa.Text),
        sa.Column("latest_value", sa.Numeric),
    ]


def _rollups() -> None:
    op.create_table(
        "usage_rollup",
        sa.Column("metric_id", sa.BigInteger, _metric(), primary_key=True),
        sa.Column("customer_id", sa.BigInteger, primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        *_aggregates(),
    )
    op.create_index("usage_rollup_day_idx", "usage_rollup", ["metric_id", "day"])
    op.create_table(
        "usage_rollup_day",
        sa.Column("metric_id", sa.BigInteger, _metric(), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        *_aggregates(),
    )
    op.create_table(
        "usage_rollup_value",
        sa.Column("metric_id", sa.BigInteger, _metric(), primary_key=True),
        sa.Column("customer_id", sa.BigInteger, primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("value", sa.Text, primary_key=True),
    )
    op.create_index("usage_rollup_value_day_idx", "usage_rollup_value", ["metric_id", "day"])


def _imports() -> None:
    op.create_table(
        "usage_import",
        sa.Column("sha256", sa.Text, primary_key=True),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("committed_bytes", sa.BigInteger, nullable=False),
        sa.Column("lines", sa.BigInteger, nullable=False),
        sa.Column("accepted", sa.BigInteger, nullable=False),
        sa.Column("duplicates", sa.BigInteger, nullable=False),
        sa.Column("rejected", sa.BigInteger, nullable=False),
        _timestamp("updated_at"),
        _timestamp("finished_at", nullable=True),
    )


def upgrade() -> None:
    _events()
    _metrics()
    _rollups()
    _imports()


def downgrade() -> None:
    tables = ("usage_import", "usage_rollup_value", "usage_rollup_day", "usage_rollup")
    for table in (*tables, "usage_metric"):
        op.drop_table(table)
    op.drop_table("usage_event_key")
    op.drop_table("usage_event")
    op.execute("DROP SCHEMA IF EXISTS usage_partitions CASCADE")
