"""The monthly partitions of `usage_event`, made when an event of a new month arrives.

A partition covers one calendar month in UTC and lives in schema `usage_partitions`, named
`usage_event_YYYY_MM`. Concurrent ingests take one transaction-scoped advisory lock before
creating any, so two never race on the same month.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.metrics.periods import add_months
from app.tables import usage_event

SCHEMA = "usage_partitions"
LOCK_KEY = 0x75736167  # "usag": the advisory lock of partition creation
NAME = re.compile(r"usage_event_(\d{4})_(\d{2})")


def partition_name(month: datetime.date) -> str:
    return f"usage_event_{month.year:04d}_{month.month:02d}"


def partition_table(month: datetime.date) -> sa.TableClause:
    """The partition of `month`, with usage_event's columns (to read one month alone)."""
    columns = (sa.column(column.name, column.type) for column in usage_event.c)
    return sa.table(partition_name(month), *columns, schema=SCHEMA)


async def existing(connection: AsyncConnection) -> list[datetime.date]:
    """The months that have a partition, in order."""
    names = await connection.scalars(
        sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'usage_event'::regclass"
        )
    )
    found = (NAME.fullmatch(name) for name in names)
    return sorted(datetime.date(int(m[1]), int(m[2]), 1) for m in found if m is not None)


async def missing(
    connection: AsyncConnection, months: Iterable[datetime.date]
) -> list[datetime.date]:
    """The months among `months` that have no partition yet."""
    wanted = sorted(set(months))
    names = [f"{SCHEMA}.{partition_name(month)}" for month in wanted]
    absent_names = sa.text(
        "SELECT name FROM unnest(CAST(:names AS text[])) AS name WHERE to_regclass(name) IS NULL"
    )
    found = await connection.execute(absent_names, {"names": names})
    absent = {name for (name,) in found}
    return [month for month, name in zip(wanted, names, strict=True) if name in absent]


async def create(connection: AsyncConnection, months: Iterable[datetime.date]) -> None:
    """Create the partitions of `months` that do not exist (under the advisory lock)."""
    await connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    for month in await missing(connection, months):
        following = add_months(month, 1)
        await connection.exec_driver_sql(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{partition_name(month)} PARTITION OF usage_event "
            f"FOR VALUES FROM ('{month.isoformat()} 00:00:00+00') "
            f"TO ('{following.isoformat()} 00:00:00+00')"
        )
