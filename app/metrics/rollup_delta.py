"""The rollups kept by difference, for a recompute of some customers (a worker's batch, an
incremental import): their contribution before the recompute is staged with sign -1 and the one
after with sign +1 in temporary tables, then each rollup row gets its net change in one
statement.

- A row whose net change is zero (a period the recompute did not change) is not written.
- The rows are written in key order, so concurrent recomputes lock them in the same order and
  never deadlock; each waits only for the rows both change.
- The rows no customer contributes to any more (`members` 0) are deleted, looking only at the
  rows that changed.

The sums are the ones `rollup.add_contributions` adds, so the rows are the same as subtracting
and adding each side in turn.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.metrics.rollup import (
    CHUNK_CUSTOMERS,
    COHORT_SUMMED,
    CUSTOMER_LEVEL,
    SUMMED,
    WORK_MEM,
    Members,
    among,
    cohort_rows,
    contribution_rows,
    customer_level_rows,
    hashed_grouping,
    kept,
)
from app.tables import cohort_rollup, rollup

KEY = ("interval", "dimension", "value", "k")
COHORT_KEY = ("cohort", "month")
STAGED = sa.table("rollup_delta", *(sa.column(name) for name in (*KEY, *SUMMED)))
COHORT_STAGED = sa.table(
    "cohort_rollup_delta", *(sa.column(name) for name in (*COHORT_KEY, *COHORT_SUMMED))
)


async def _create_stage(connection: AsyncConnection) -> None:
    for statement in (
        "CREATE TEMP TABLE IF NOT EXISTS rollup_delta (LIKE rollup) ON COMMIT DROP",
        "CREATE TEMP TABLE IF NOT EXISTS cohort_rollup_delta (LIKE cohort_rollup) ON COMMIT DROP",
    ):
        await connection.execute(sa.text(statement))
    await connection.execute(sa.select(sa.func.set_config("work_mem", WORK_MEM, True)))


async def stage_dimension(
    connection: AsyncConnection, dimension: str, members: Members, sign: int
) -> None:
    """Stage the contribution of the customers in `members` to the rows of one dimension
    alone (one whose value changes without their movements: `product`, when a plan's product
    does), as it is now, times `sign`."""
    await _create_stage(connection)
    async with hashed_grouping(connection):
        rows = contribution_rows(dimension, members, sign)
        await connection.execute(sa.insert(STAGED).from_select([*KEY, *SUMMED], rows))


# Each customer whose country changed in this transaction, with its country before: written by
# the customer table's trigger (migration 0033) while a customer-level dimension is rolled up.
MOVED = sa.table("customer_moved", sa.column("customer_id"), sa.column("country"))


async def stage_moved_customers(connection: AsyncConnection) -> None:
    """The contribution of the customers whose country changed in this transaction (the temp
    `customer_moved`) to each rolled-up customer-level dimension (`customer_country`,
    `region`), moved from their value before to their value now: staged with sign -1 as read
    with the old country, +1 as read with the new one, from their movements as they are. Run
    after the customer rows are written and before their movements change (a recompute's
    first step); the temp table is emptied, so a second change in the same transaction moves
    them again from there. A transaction that writes customers takes `kept`'s shared lock
    before it does, so that the trigger and this see the same rolled-up dimensions."""
    found = await connection.scalar(sa.text("SELECT to_regclass('pg_temp.customer_moved')"))
    if found is None:
        return
    dimensions = [name for name in await kept(connection) if name in CUSTOMER_LEVEL]
    moved = await connection.scalars(sa.select(MOVED.c.customer_id).order_by(MOVED.c.customer_id))
    ids = [int(ident) for ident in moved] if dimensions else []
    if ids:
        await _stage_moved(connection, ids, dimensions)
    await connection.execute(sa.text("TRUNCATE pg_temp.customer_moved"))


async def _stage_moved(connection: AsyncConnection, ids: list[int], dimensions: list[str]) -> None:
    await _create_stage(connection)
    async with hashed_grouping(connection):
        # CHUNK_CUSTOMERS at a time (their movements found by customer, as a rebuild's slices)
        for start in range(0, len(ids), CHUNK_CUSTOMERS):
            members = among(ids[start : start + CHUNK_CUSTOMERS])
            for name in dimensions:
                before = customer_level_rows(name, members, MOVED, "customer_id")
                for sign, movements in ((-1, before), (1, None)):
                    rows = contribution_rows(name, members, sign, movements)
                    await connection.execute(sa.insert(STAGED).from_select([*KEY, *SUMMED], rows))


async def stage(connection: AsyncConnection, members: Members, sign: int) -> None:
    """Stage the contribution of the customers in `members`, as their movements are now, times
    `sign`. The grouping sorts get WORK_MEM for the rest of the transaction."""
    await _create_stage(connection)
    dimensions = await kept(connection)
    async with hashed_grouping(connection):
        for dimension in dimensions:  # a statement each: none holds every dimension's work at once
            rows = contribution_rows(dimension, members, sign)
            await connection.execute(sa.insert(STAGED).from_select([*KEY, *SUMMED], rows))
    cohorts = cohort_rows(members, sign)
    await connection.execute(
        sa.insert(COHORT_STAGED).from_select([*COHORT_KEY, *COHORT_SUMMED], cohorts)
    )


def _net(staged: Any, key: tuple[str, ...], summed: tuple[str, ...]) -> sa.Select[Any]:
    """Per key the sum of the staged rows, only where one sum is not zero, in key order."""
    sums = [sa.func.sum(staged.c[name]) for name in summed]
    return (
        sa.select(*(staged.c[name] for name in key), *sums)
        .group_by(*(staged.c[name] for name in key))
        .having(sa.or_(*(value != 0 for value in sums)))
        .order_by(*(staged.c[name] for name in key))
    )


async def _apply_to(
    connection: AsyncConnection,
    table: sa.Table,
    staged: Any,
    key: tuple[str, ...],
    summed: tuple[str, ...],
    emptied: sa.ColumnElement[bool],
) -> None:
    statement = insert(table).from_select([*key, *summed], _net(staged, key, summed))
    statement = statement.on_conflict_do_update(
        index_elements=list(key),
        set_={name: table.c[name] + statement.excluded[name] for name in summed},
    )
    await connection.execute(statement)
    changed = sa.select(*(staged.c[name] for name in key)).distinct().subquery("changed")
    await connection.execute(
        sa.delete(table).where(emptied, *(table.c[name] == changed.c[name] for name in key))
    )


async def apply(connection: AsyncConnection) -> None:
    """Add the staged net changes to the rollups, delete the emptied rows, clear the stage."""
    await _apply_to(connection, rollup, STAGED, KEY, SUMMED, rollup.c.members == 0)
    await _apply_to(
        connection,
        cohort_rollup,
        COHORT_STAGED,
        COHORT_KEY,
        COHORT_SUMMED,
        cohort_rollup.c.movements == 0,
    )
    await connection.execute(sa.text("TRUNCATE rollup_delta, cohort_rollup_delta"))
