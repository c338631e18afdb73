"""Event ids are compared byte by byte (COLLATE "C"), whatever the database's collation.

An event id breaks ties between events of the same timestamp: LATEST is the value of the
event with the greatest (timestamp, event id), in the events and in the rollups that keep it
(`latest_id`), and a source object's state is its latest (observed_at, event id). Under the
database's default collation that order was the locale's (en_US puts "a1" before "B1", the
bytes the other way round), so the same events could give another LATEST on another
installation, and SQL could disagree with Python, which orders strings by code point. In
UTF-8, byte order is code point order: now the same everywhere. Equality is unchanged (every
collation here is deterministic), so no stored key changes meaning; the indexes holding these
columns are rebuilt. Byte comparison is also cheaper than the locale's in the event key's
index, which every ingested event enters.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = [  # (table, column, nullable)
    ("usage_event", "event_id", False),  # a partitioned table: its partitions follow
    ("usage_event_key", "source", False),
    ("usage_event_key", "event_id", False),
    ("usage_rollup", "latest_id", True),
    ("usage_rollup_day", "latest_id", True),
    ("source_object", "event_id", False),
    ("raw_event", "event_id", False),  # compared with source_object's
]


def _collate(collation: str | None) -> None:
    for table, column, nullable in COLUMNS:
        op.alter_column(
            table,
            column,
            type_=sa.Text(collation=collation),
            existing_type=sa.Text(),
            existing_nullable=nullable,
        )


def upgrade() -> None:
    _collate("C")


def downgrade() -> None:
    _collate(None)
