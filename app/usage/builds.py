"""Building an INDEXED metric's rollup beside the event stores.

A definition change that needs a rollup (an INDEXED metric created, or refiltered, ...) holds
the definitions' exclusive lock (app/usage/locks.py) only to write the definition: it empties
the rollup and gives the metric a build token (`usage_metric.rollup_build`), and a session of
its own, the builder, takes a snapshot under that lock (`restart`). No event store is in flight
then, so the snapshot holds exactly the events stored before the change; every store after it
adds its events to the rollup itself, as for any INDEXED metric.

The builder then rolls up the snapshot's events, one month's partition per statement, into
temporary tables of the rollup's shape, holding no lock, and merges them into the rollup a week
at a time, each under the exclusive lock for a moment (a merge is a late event's:
counts and sums add up, the least minimum, the latest by (timestamp, event id), distinct
values once); the last merge clears the token (`finish`). Until then the metric's values are
computed from its events (`reads_rollup`): exact, only slower. Events are held back for the
merges only, not the build (at 10 million events, a SUM's build takes 15 to 30 s; a week's
merge a fraction of a second).

A merge first checks the token: a later change of the definition empties the rollup again and
starts a build of its own, and the earlier one stops. The builder's session holds an advisory
lock named by its token to the end; a build whose session is gone (the process stopped, a
statement failed) leaves its lock free, and `app.usage.definitions.resume_builds` (which the
server runs every minute) starts it again.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import Database, SharedTransaction
from app.metrics.periods import add_months
from app.metrics.usage import (
    QueryType,
    RollupTables,
    UsageMetric,
    Window,
    rollup_inserts,
    rollup_merges,
)
from app.tables import usage_metric, usage_rollup, usage_rollup_day, usage_rollup_value
from app.usage import partitions
from app.usage.locks import hold_build, lock_definitions

WORK_MEM = "256MB"  # a month's events sorted by customer and day in memory
# days merged at a time, each under the definitions' lock (events wait that long at most):
# at 10 million events a year, a week is some 7,000 rows of 1,000 customers
MERGE_DAYS = 7


def _built_table(name: str, like: sa.Table) -> sa.TableClause:
    return sa.table(name, *(sa.column(column.name, column.type) for column in like.columns))


# the builder session's own tables (temporary), with the rollup's columns
BUILT = RollupTables(
    _built_table("usage_built_rollup", usage_rollup),
    _built_table("usage_built_rollup_day", usage_rollup_day),
    _built_table("usage_built_rollup_value", usage_rollup_value),
)


@contextlib.asynccontextmanager
async def builder(database: Database) -> AsyncIterator[AsyncConnection | None]:
    """A connection for a build (`restart`, `finish`): its session's advisory locks (the
    builds' it held) released when it goes back to the pool. None in a transaction shared
    by a GraphQL operation: its change commits with the operation, so the build can only
    begin after (`SharedTransaction.after_commit`)."""
    if isinstance(database, SharedTransaction):
        yield None
        return
    async with database.connect() as connection:
        try:
            yield connection
        finally:
            with contextlib.suppress(sa.exc.DBAPIError):  # a broken connection is discarded
                await connection.rollback()
                await connection.exec_driver_sql("SELECT pg_advisory_unlock_all()")
                await connection.commit()


async def restart(
    connection: AsyncConnection, builder: AsyncConnection | None, metric: UsageMetric
) -> UsageMetric:
    """Empty the metric's rollup; when INDEXED (not deleted), give it a new build token held
    by `builder`'s session, whose transaction begins on a snapshot of the events stored so
    far. In the transaction writing `metric` under the definitions' exclusive lock; once it
    has committed, `finish` builds. With no builder, the token is held by no one: the build
    is started again (`resume_builds`) once the change has committed. The metric as now."""
    for table in RollupTables():
        await connection.execute(sa.delete(table).where(table.c.metric_id == metric.id))
    token = None
    if metric.query_type is QueryType.INDEXED and metric.deleted_at is None:
        token = int(await connection.scalar(sa.text("SELECT txid_current()")) or 0)
        if builder is not None:
            assert not builder.in_transaction()
            await builder.execution_options(isolation_level="REPEATABLE READ")
            # the first statement of its transaction: the snapshot is taken here
            taken = await hold_build(builder, token)
            assert taken, "a new token's lock is free"
    mark = sa.update(usage_metric).where(usage_metric.c.id == metric.id)
    await connection.execute(mark.values(rollup_build=token))
    return replace(metric, rollup_build=token)


async def finish(builder: AsyncConnection, metric: UsageMetric) -> bool:
    """Build the rollup of the events `restart`'s snapshot holds and merge it, month by
    month; whether the metric's rollup is now whole (False: a later change superseded this
    build)."""
    assert metric.rollup_build is not None
    try:
        spans: list[Window | None] = [*_spans(await _build(builder, metric))]
        await builder.commit()
        await builder.execution_options(isolation_level="READ COMMITTED")
        for index, days in enumerate(spans or [None]):
            if not await _merge(builder, metric, days, last=index >= len(spans) - 1):
                return False
        return True
    finally:
        await builder.rollback()
        for table in BUILT:
            await builder.exec_driver_sql(f"DROP TABLE IF EXISTS {table.name}")
        await builder.commit()


async def _build(builder: AsyncConnection, metric: UsageMetric) -> list[datetime.date]:
    """The snapshot's events rolled up into the builder's tables, a month's partition per
    statement (each well under the statement timeout at 10 million events a year); the
    months read (a partition holds one UTC month, and its events' UTC days)."""
    for table, like in zip(BUILT, RollupTables(), strict=True):
        await builder.exec_driver_sql(f"DROP TABLE IF EXISTS {table.name}")
        await builder.exec_driver_sql(f"CREATE TEMPORARY TABLE {table.name} (LIKE {like.name})")
    await builder.exec_driver_sql(f"SET LOCAL work_mem = '{WORK_MEM}'")
    months = await partitions.existing(builder)
    for month in months:
        await builder.execute(rollup_inserts(metric, partitions.partition_table(month), BUILT))
    for table in BUILT:
        await builder.exec_driver_sql(f"CREATE INDEX ON {table.name} (day)")
    return months


def _spans(months: list[datetime.date]) -> Iterator[Window]:
    """The days of `months`, MERGE_DAYS at a time (within a month)."""
    for month in months:
        first, end = _midnight(month), _midnight(add_months(month, 1))
        while first < end:
            following = min(first + datetime.timedelta(days=MERGE_DAYS), end)
            yield Window(first, following)
            first = following


async def _merge(
    builder: AsyncConnection, metric: UsageMetric, days: Window | None, last: bool
) -> bool:
    """Merge the built rows of `days` (None: there are none) into the rollup under the
    exclusive lock, if the build is still the metric's (`last`: and clear its token);
    whether it was."""
    async with builder.begin():
        await lock_definitions(builder)
        query = sa.select(usage_metric.c.rollup_build).where(usage_metric.c.id == metric.id)
        if await builder.scalar(query) != metric.rollup_build:
            return False
        if days is not None:
            for merge in rollup_merges(metric, BUILT, days):
                await builder.execute(merge)
        if last:
            done = sa.update(usage_metric).where(usage_metric.c.id == metric.id)
            await builder.execute(done.values(rollup_build=None))
    return True


def _midnight(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(), datetime.UTC)
