"""Exact per-period aggregates of the movements (`rollup`): how they are kept, and the series
statement that reads them instead of scanning movements (docs/architecture.md, "Query plans").

A row holds, for one interval, one dimension value (or the total) and one calendar period `k`,
exactly the aggregates the movement scan computes for that period (app.metrics.mrr): movement
sums per kind, the net change of MRR and of active customers, the distinct customers with a
movement of each kind, the churned customers, and the NRR/GRR deltas. Each is a sum over
customers of a fact of one customer in one period, so

- a recompute subtracts the touched customers' old contribution (from their movements before
  the recompute) and adds their new one, and deletes the rows no customer contributes to;
- a full rebuild adds every customer's, chunk by chunk (bounded statements);
- stocks (MRR, active customers) at a period's end are the running sums of the net changes.

Distinct counts are not additive across periods: they are stored per calendar period of each
interval, never summed from days. A range that cuts a period reads the stored rows for its
whole periods; for a cut one, the sums of its day rows (flows add up) and, when a field needs
them, its customer facts counted from its own movements (docs/architecture.md, "Query plans").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.expression import ColumnElement, FromClause, Select

from app.errors import UserError
from app.metrics.cohorts import CohortRequest
from app.metrics.cube import Sources
from app.metrics.fx import Currencies
from app.metrics.mrr import (
    COUNT_FIELDS,
    CUSTOMER_FIELDS,
    EPOCH,
    KINDS,
    MRR_CUBE,
    NO_VALUE,
    _assemble,
    _flow_sums,
    _periods,
    currencies_of,
    step,
)
from app.metrics.periods import period_end, period_start
from app.metrics.spec import FilterOp, Interval, QuerySpec, SeriesRequest
from app.movements import alone_bits, movements_from_changes
from app.tables import (
    ROLLUP_COUNTS,
    ROLLUP_DELTAS,
    ROLLUP_MONEY,
    cohort_rollup,
    customer,
    data_version,
    import_job,
    movement,
    movement_scope,
    mrr_change,
    plan,
    rollup,
    rollup_build,
    rollup_build_part,
    rollup_dimension,
    rollup_rebuild,
)

TOTAL = ""  # the dimension (and value) of the unfiltered total
SUMMED = (*ROLLUP_MONEY, *ROLLUP_COUNTS, *ROLLUP_DELTAS, "members")
CHUNK_CUSTOMERS = 25_000  # customers per statement of a full rebuild
WORK_MEM = "64MB"  # for the upkeep's grouping sorts

Members = Callable[[ColumnElement[Any]], ColumnElement[bool]]  # a condition on customer_id


# --- the movements of each rolled-up dimension -------------------------------------------------


def _stored(
    table: FromClause, value: ColumnElement[Any], where: list[Any], joined: FromClause | None = None
) -> FromClause:
    """The stored movements of `table` with `value` as g0 (read from `joined`, when the value
    needs another table)."""
    return (
        sa.select(
            table.c.customer_id,
            value.label("g0"),
            table.c.day,
            table.c.kind,
            table.c.before,
            table.c.after,
            table.c.amount,
            table.c.prev_day,
            table.c.next_day,
        )
        .select_from(table if joined is None else joined)
        .where(*where)
        .subquery("mv")
    )


def _total(members: Members) -> FromClause:
    return _stored(movement, sa.literal(TOTAL, sa.Text), [members(movement.c.customer_id)])


def _currency(members: Members) -> FromClause:
    return _stored(movement, movement.c.currency, [members(movement.c.customer_id)])


def _plan(members: Members) -> FromClause:
    where = [movement_scope.c.dimension == "plan", members(movement_scope.c.customer_id)]
    return _stored(movement_scope, movement_scope.c.value, where)


def _derived(name: str) -> Callable[[Members], FromClause]:
    """Movements inside each value of a subscription-level dimension, derived from the ledger
    exactly as the scan derives them (app.metrics.mrr._derived)."""

    def rows(members: Members) -> FromClause:
        dimension = MRR_CUBE.dimension(name)
        sources = Sources(rows=mrr_change, plan=plan, customer=customer, end=sa.func.current_date())
        value = sa.func.coalesce(sa.cast(dimension.expression(sources), sa.Text), NO_VALUE)
        changes = sa.select(
            mrr_change.c.customer_id,
            mrr_change.c.day,
            mrr_change.c.delta,
            mrr_change.c.currency,
            value.label("g0"),
        ).where(members(mrr_change.c.customer_id))
        if dimension.needs_plan:
            changes = changes.outerjoin_from(mrr_change, plan, plan.c.id == mrr_change.c.plan_id)
        derived = movements_from_changes(changes.subquery("changes"), ["g0", "currency"])
        return derived.subquery("mv")

    return rows


def customer_level_rows(
    name: str, members: Members, customers: FromClause = customer, key: str = "id"
) -> FromClause:
    """The movements of a customer-level dimension of the customer row (its country, its
    region): a customer's movements are all in its one value, so they are the stored total
    movements, each with its customer's value, as the scan reads them. `customers`: the
    table the value is read from (a row per customer, by `key`, with its `country`)."""
    dimension = MRR_CUBE.dimension(name)
    sources = Sources(rows=movement, plan=plan, customer=customers, end=sa.func.current_date())
    value = sa.func.coalesce(sa.cast(dimension.expression(sources), sa.Text), NO_VALUE)
    joined = movement.join(customers, customers.c[key] == movement.c.customer_id)
    return _stored(movement, value, [members(movement.c.customer_id)], joined)


def _customer_level(name: str) -> Callable[[Members], FromClause]:
    def rows(members: Members) -> FromClause:
        return customer_level_rows(name, members)

    return rows


# The dimensions an operator may add to the rollups (`tidemill rollups add`, the table
# `rollup_dimension`). The subscription-level ones are read from the ledger row itself, so a
# customer's contribution changes only when the recompute changes their ledger, or (`product`)
# from the ledger row's plan, whose product a source may change: the customers with ledger
# rows on such a plan then have their `product` contribution moved from the old product to the
# new one as the plan is written (app.ingest.apply, `plan_holders`). The customer-level ones
# (CUSTOMER_LEVEL) are read from the customer row: a customer whose country changes has its
# contribution moved from the old value to the new one before its movements change
# (`stage_moved_customers`).
CUSTOMER_LEVEL = ("customer_country", "region")
OPTIONAL = ("status", "pricing_model", "collection_method", "product", *CUSTOMER_LEVEL)

# dimension name -> its movements (customer_id, g0 = value, day, kind, before, after, amount,
# prev_day, next_day) for the customers that satisfy a condition
DIMENSIONS: dict[str, Callable[[Members], FromClause]] = {
    TOTAL: _total,
    "plan": _plan,
    "currency": _currency,
    "plan_interval": _derived("plan_interval"),
    **{name: _derived(name) for name in OPTIONAL if name not in CUSTOMER_LEVEL},
    **{name: _customer_level(name) for name in CUSTOMER_LEVEL},
}


# --- maintenance --------------------------------------------------------------------------------


def _period_bounds(day: ColumnElement[Any], interval: Interval) -> tuple[Any, Any]:
    """The first and last day of the period of `interval` that holds `day` (constant-unit
    expressions: no unit parsed per row)."""
    if interval is Interval.DAY:
        return day, day
    start = sa.func.date_trunc(interval.value, sa.cast(day, sa.DateTime))
    last = start + step(interval) - sa.text("interval '1 day'")
    return sa.cast(start, sa.Date), sa.cast(last, sa.Date)


ALL_ALONE = (1 << len(Interval)) - 1
WIDER = [interval for interval in Interval if interval is not Interval.DAY]


def calendar(rows: FromClause, name: str = "calendar") -> sa.CTE:
    """Each day from the first to the last of `rows`, with the first (`k_<interval>`) and last
    (`b_<interval>`) day of its period of each interval wider than a day: computed once per
    day, then joined, instead of once per row."""
    series = sa.func.generate_series(
        sa.select(sa.func.min(rows.c.day)).scalar_subquery(),
        sa.select(sa.func.max(rows.c.day)).scalar_subquery(),
        sa.text("interval '1 day'"),
    )
    days = sa.select(sa.cast(series.column_valued("d"), sa.Date).label("day")).subquery("days")
    bounds = []
    for interval in WIDER:
        first, last = _period_bounds(days.c.day, interval)
        bounds += [first.label(f"k_{interval.value}"), last.label(f"b_{interval.value}")]
    return sa.select(days.c.day, *bounds).cte(name)


def _bounds(rows: FromClause, interval: Interval) -> tuple[Any, Any]:
    """The period bounds of a row of `rows` joined with `calendar`."""
    if interval is Interval.DAY:
        return rows.c.day, rows.c.day
    return rows.c[f"k_{interval.value}"], rows.c[f"b_{interval.value}"]


def _alone_mask(rows: FromClause) -> ColumnElement[int]:
    """Bit 2**n set when a row is its customer's only movement (in its value) in its period of
    the n-th interval of `Interval`: neither neighbouring movement day falls in that period
    (always so for a day). The wider intervals' bits are the stored movements' `alone` rule
    (app.movements.alone_bits: week 1, month 2, quarter 4, year 8, the order of `Interval`
    after the day), read with the calendar's bounds and shifted past the day's bit."""

    def bounds(unit: str) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
        return _bounds(rows, Interval(unit))

    wider: ColumnElement[int] = alone_bits(rows.c.prev_day, rows.c.next_day, bounds)
    return 1 + 2 * wider


def _periods_of(rows: FromClause) -> FromClause:
    """A lateral row per interval `i`: its bit and the first (`k`) and last (`b`) day of its
    period that holds the row's day. A UNION ALL of one-row selects, not a VALUES list:
    SQLAlchemy caches no statement holding VALUES, and compiled again each time, this one
    cost tens of milliseconds per webhook batch and recompute (three statements each)."""
    periods = []
    for n, interval in enumerate(Interval):
        first, last = _bounds(rows, interval)
        period = sa.select(
            sa.literal(interval.value, sa.Text).label("i"),
            sa.literal(1 << n, sa.Integer).label("bit"),
            first.label("k"),
            last.label("b"),
        )
        periods.append(period.correlate(rows))
    return sa.union_all(*periods).lateral("bounds")


FLOWS = (*ROLLUP_MONEY, "customers_net")  # sums over movements: each row adds its own
COUNTED = tuple(name for name in SUMMED if name not in FLOWS)  # facts of a customer in a period


def _contributions(rows: FromClause, suffix: str = "") -> Select[Any]:
    """Per (interval i, value, calendar period k of i): the aggregates the scan computes over
    `rows` for that period (app.metrics.mrr._customer_level and _period_level, the same
    formulas), and how many customers have a movement in it. The rows are read once (a
    CTE), each with the intervals in whose period it is its customer's only movement.

    The flows are sums over rows, and such a row is its own per-customer fact in that
    period: both are summed per (value, day, intervals) once, then that small result per
    period of each interval. Only the rows of customers with several movements in a period
    are repeated per interval and grouped per customer, for the customer facts alone: their
    state before the period is the `before` of their row whose previous movement is earlier,
    their state at its end the `after` of the one whose next is later. `suffix` names its
    CTEs apart from those of another dimension's contributions in the same statement."""
    source = sa.select(rows).cte(f"source{suffix}")
    days = calendar(source, f"calendar{suffix}")
    dated = (
        sa.select(source, *(column for column in days.c if column.name != "day"))
        .join_from(source, days, days.c.day == source.c.day)
        .subquery("dated")
    )
    mv = sa.select(dated, _alone_mask(dated).label("alone")).cte(f"mv{suffix}")
    held = mv.c.before > 0
    per_day = (
        sa.select(
            mv.c.g0,
            mv.c.day,
            mv.c.alone,
            *_flow_sums(mv),
            *(
                sa.func.count().filter(mv.c.kind == kind).label(f"{kind}_customers")
                for kind in KINDS
            ),
            sa.func.count().filter(held & (mv.c.after == 0)).label("churned_customers"),
            sa.func.sum(mv.c.after - mv.c.before).filter(held).label("retained_delta"),
            sa.func.sum(sa.func.least(mv.c.after - mv.c.before, 0))
            .filter(held)
            .label("gross_retained_delta"),
            sa.func.count().label("members"),
        )
        .group_by(mv.c.g0, mv.c.day, mv.c.alone)
        .subquery("per_day")
    )
    day = (
        sa.select(per_day, *(column for column in days.c if column.name != "day"))
        .join_from(per_day, days, days.c.day == per_day.c.day)
        .subquery("per_day_dated")
    )
    bounds = _periods_of(day)
    single = day.c.alone.op("&")(bounds.c.bit) != 0
    singles = (
        sa.select(
            bounds.c.i,
            day.c.g0,
            bounds.c.k,
            *(sa.func.sum(day.c[name]).label(name) for name in FLOWS),
            *(sa.func.sum(day.c[name]).filter(single).label(name) for name in COUNTED),
        )
        .join_from(day, bounds, sa.true())
        .group_by(bounds.c.i, day.c.g0, bounds.c.k)
    )
    return _summed(singles, _several(mv))


def _several(mv: FromClause) -> Select[Any]:
    """The customer facts of the customers with several movements in a period (per interval
    wider than a day: a day holds one movement of a customer)."""
    repeated = []
    for n, interval in enumerate(Interval):
        if interval is Interval.DAY:
            continue
        first, last = _bounds(mv, interval)
        repeated.append(
            sa.select(
                sa.literal(interval.value, sa.Text).label("i"),
                mv.c.g0,
                first.label("k"),
                last.label("b"),
                mv.c.customer_id,
                mv.c.kind,
                mv.c.before,
                mv.c.after,
                mv.c.prev_day,
                mv.c.next_day,
            ).where(mv.c.alone.op("&")(1 << n) == 0)
        )
    rows = sa.union_all(*repeated).subquery("repeated")
    first = sa.or_(rows.c.prev_day.is_(None), rows.c.prev_day < rows.c.k)
    last = sa.or_(rows.c.next_day.is_(None), rows.c.next_day > rows.c.b)
    per_customer = (
        sa.select(
            rows.c.i,
            rows.c.g0,
            rows.c.k,
            *(sa.func.count().filter(rows.c.kind == kind).label(kind) for kind in KINDS),
            sa.func.sum(rows.c.before).filter(first).label("first_before"),
            sa.func.sum(rows.c.after).filter(last).label("last_after"),
        )
        .group_by(rows.c.i, rows.c.g0, rows.c.k, rows.c.customer_id)
        .subquery("per_customer")
    )
    c = per_customer.c
    held = c.first_before > 0
    zero = sa.literal(0, sa.BigInteger)
    return sa.select(
        c.i,
        c.g0,
        c.k,
        *(zero.label(name) for name in FLOWS),
        *(sa.func.count().filter(c[kind] > 0).label(f"{kind}_customers") for kind in KINDS),
        sa.func.count().filter(held & (c.last_after == 0)).label("churned_customers"),
        sa.func.sum(c.last_after - c.first_before).filter(held).label("retained_delta"),
        sa.func.sum(sa.func.least(c.last_after - c.first_before, 0))
        .filter(held)
        .label("gross_retained_delta"),
        sa.func.count().label("members"),
    ).group_by(c.i, c.g0, c.k)


def _summed(*parts: Select[Any]) -> Select[Any]:
    both = sa.union_all(*parts).subquery("both")
    return sa.select(
        both.c.i, both.c.g0, both.c.k, *(sa.func.sum(both.c[name]).label(name) for name in SUMMED)
    ).group_by(both.c.i, both.c.g0, both.c.k)


async def add_contributions(connection: AsyncConnection, members: Members, sign: int) -> None:
    """Add (sign 1) or subtract (sign -1) the contribution of the customers in `members` as
    their movements are now, to every rollup row. The grouping sorts get WORK_MEM (for this
    transaction, then the setting is put back) instead of spilling to disk."""
    previous = await connection.scalar(sa.text("SELECT current_setting('work_mem')"))
    await connection.execute(sa.select(sa.func.set_config("work_mem", WORK_MEM, True)))
    await _add(connection, members, sign)  # on an error the transaction rolls the setting back
    await connection.execute(sa.select(sa.func.set_config("work_mem", previous, True)))


def contribution_rows(
    dimension: str, members: Members, sign: int, movements: FromClause | None = None
) -> Select[Any]:
    """The rollup rows (interval, dimension, value, k, *SUMMED) of one dimension that the
    customers in `members` contribute, times `sign`; the currency rows bring the total's.
    `movements`: the dimension's movements of those customers, when not as stored now."""
    name = dimension or "total"
    read = DIMENSIONS[dimension](members) if movements is None else movements
    found = _contributions(read, f"_{name}").cte(f"found_{name}")
    signed = sa.literal(sign, sa.BigInteger)
    rows = sa.select(
        found.c.i,
        sa.literal(dimension, sa.Text),
        found.c.g0,
        found.c.k,
        *(signed * sa.func.coalesce(found.c[n], 0) for n in SUMMED),
    )
    if dimension != "currency":
        return rows
    total = sa.select(
        found.c.i,
        sa.literal(TOTAL, sa.Text),
        sa.literal(TOTAL, sa.Text),
        found.c.k,
        *(signed * sa.func.coalesce(sa.func.sum(found.c[n]), 0) for n in SUMMED),
    ).group_by(found.c.i, found.c.k)
    return sa.select(sa.union_all(rows, total).subquery("with_total"))


# kept always (the total is the currency rows' sum), and the OPTIONAL ones named in
# `rollup_dimension`
ALWAYS = ("plan", "currency", "plan_interval")
# The advisory lock between the recomputes that keep the rollups (shared, each for its
# transaction, taken when it reads which dimensions to keep) and adding or dropping a dimension
# (exclusive): no recompute keeps a set of dimensions that changes before it commits.
DIMENSIONS_LOCK = 0x726F6C6C  # "roll"


async def kept(connection: AsyncConnection) -> list[str]:
    """The dimensions whose rollup rows this transaction keeps (in DIMENSIONS order), under
    the shared DIMENSIONS_LOCK until it ends."""
    await connection.execute(
        sa.select(sa.func.pg_advisory_xact_lock_shared(sa.literal(DIMENSIONS_LOCK, sa.BigInteger)))
    )
    added = set(await connection.scalars(sa.select(rollup_dimension.c.name)))
    return [name for name in DIMENSIONS if name in ALWAYS or name in added]


@asynccontextmanager
async def hashed_grouping(connection: AsyncConnection) -> AsyncIterator[None]:
    """Within: the planner groups and joins by hashing where it can, not by sorting (for the
    rest of the transaction, then put back). The contribution statements' per-customer
    groups hide behind a bit test the planner cannot estimate (it expected 1,900 where a
    chunk of 25,000 customers had 120,000 to 240,000), so it sorted them and the movements
    (a merge join with the calendar, the per-day groups): at a million customers, over 25,000
    customers selected as an import's chunk selects them, hashing took 1.30 / 2.41 / 2.30 s
    against 1.71 / 2.90 / 3.11 s sorting, for the currency, plan and plan interval
    statements (medians of 4, alternating). The results are the same sums either way."""
    previous = await connection.scalar(sa.text("SELECT current_setting('enable_sort')"))
    await connection.execute(sa.select(sa.func.set_config("enable_sort", "off", True)))
    yield  # (on an error the transaction rolls the setting back)
    await connection.execute(sa.select(sa.func.set_config("enable_sort", previous, True)))


async def _add(connection: AsyncConnection, members: Members, sign: int) -> None:
    dimensions = await kept(connection)
    async with hashed_grouping(connection):
        for dimension in dimensions:
            rows = contribution_rows(dimension, members, sign)
            statement = insert(rollup).from_select(
                ["interval", "dimension", "value", "k", *SUMMED], rows
            )
            statement = statement.on_conflict_do_update(
                index_elements=["interval", "dimension", "value", "k"],
                set_={name: rollup.c[name] + statement.excluded[name] for name in SUMMED},
            )
            await connection.execute(statement)
    await connection.execute(_cohort_upsert(members, sign))
    if sign < 0:
        return
    await connection.execute(sa.delete(rollup).where(rollup.c.members == 0))
    await connection.execute(sa.delete(cohort_rollup).where(cohort_rollup.c.movements == 0))


# A full rebuild's parts: each chunk's contributions, appended (summed into the rollups once at
# the end, so every rollup row is written once; upserting chunk by chunk left each row's
# earlier versions behind, dead, for the readers' index scans to step over until a vacuum).
ROLLUP_PARTS = sa.Table(
    "rollup_parts",
    sa.MetaData(),
    *(sa.Column(name, sa.Text) for name in ("interval", "dimension", "value")),
    sa.Column("k", sa.Date),
    *(sa.Column(name, sa.Numeric) for name in SUMMED),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)
COHORT_PARTS = sa.Table(
    "cohort_rollup_parts",
    sa.MetaData(),
    sa.Column("cohort", sa.Date),
    sa.Column("month", sa.Date),
    *(
        sa.Column(name, sa.Numeric)
        for name in ("mrr_change", "active_change", "amount_days", "joined", "movements")
    ),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)


async def _collect(
    connection: AsyncConnection,
    members: Members,
    dimensions: list[str],
    cohorts: bool,
    parts: sa.Table = ROLLUP_PARTS,
) -> None:
    """Append the contributions of the customers in `members` to the rebuild's parts (or
    `parts`): to the rows of `dimensions`, and with `cohorts` to the cohort rollup's."""
    async with hashed_grouping(connection):
        for dimension in dimensions:
            rows = contribution_rows(dimension, members, 1)
            names = ["interval", "dimension", "value", "k", *SUMMED]
            await connection.execute(sa.insert(parts).from_select(names, rows))
    if not cohorts:
        return
    found = cohort_rows(members, 1)
    await connection.execute(
        sa.insert(COHORT_PARTS).from_select(["cohort", "month", *COHORT_SUMMED], found)
    )


async def _sum_parts(
    connection: AsyncConnection, cohorts: bool, parts: sa.Table = ROLLUP_PARTS
) -> None:
    """Every rollup row once: the sum of its parts (`parts`: the rebuild's by default; rows no
    customer contributes to left out, as the upkeep deletes them)."""
    keys = [parts.c[name] for name in ("interval", "dimension", "value", "k")]
    summed = sa.select(*keys, *(sa.func.sum(parts.c[name]) for name in SUMMED))
    summed = summed.group_by(*keys).having(sa.func.sum(parts.c.members) != 0)
    names = ["interval", "dimension", "value", "k", *SUMMED]
    await connection.execute(sa.insert(rollup).from_select(names, summed))
    if not cohorts:
        return
    c = COHORT_PARTS.c
    months = (
        sa.select(c.cohort, c.month, *(sa.func.sum(c[name]) for name in COHORT_SUMMED))
        .group_by(c.cohort, c.month)
        .having(sa.func.sum(c.movements) != 0)
    )
    await connection.execute(
        sa.insert(cohort_rollup).from_select(["cohort", "month", *COHORT_SUMMED], months)
    )


COHORT_SUMMED = ("mrr_change", "active_change", "amount_days", "joined", "movements")


def _month(day: ColumnElement[Any]) -> ColumnElement[Any]:
    return sa.cast(sa.func.date_trunc("month", sa.cast(day, sa.DateTime)), sa.Date)


def _day_number(day: ColumnElement[Any]) -> ColumnElement[Any]:
    return sa.cast(day - sa.literal(EPOCH, sa.Date), sa.BigInteger)


def cohort_rows(members: Members, sign: int) -> Select[Any]:
    """Per (cohort, month): the sums of app.metrics.cohorts._deltas over the movements of the
    customers in `members` (times `sign`), whose cohort is the month of their `new` movement."""
    joined = (
        sa.select(movement.c.customer_id, _month(movement.c.day).label("cohort"))
        .where(movement.c.kind == "new", members(movement.c.customer_id))
        .subquery("joined")
    )
    mv = movement
    month = _month(mv.c.day)
    active = sa.case((mv.c.after > 0, 1), else_=0) - sa.case((mv.c.before > 0, 1), else_=0)
    signed = sa.literal(sign, sa.BigInteger)
    return (
        sa.select(
            joined.c.cohort,
            month,
            signed * sa.func.sum(mv.c.amount),
            signed * sa.func.sum(active),
            signed * sa.func.sum(mv.c.amount * _day_number(mv.c.day)),
            signed * sa.func.count().filter(mv.c.kind == "new"),
            signed * sa.func.count(),
        )
        .join_from(joined, mv, mv.c.customer_id == joined.c.customer_id)
        .where(members(mv.c.customer_id))  # implied by the join; lets the planner use it
        .group_by(joined.c.cohort, month)
    )


def _cohort_upsert(members: Members, sign: int) -> Any:
    rows = cohort_rows(members, sign)
    statement = insert(cohort_rollup).from_select(["cohort", "month", *COHORT_SUMMED], rows)
    return statement.on_conflict_do_update(
        index_elements=["cohort", "month"],
        set_={name: cohort_rollup.c[name] + statement.excluded[name] for name in COHORT_SUMMED},
    )


async def rebuild(
    connection: AsyncConnection, progress: Callable[[int, int], None] | None = None
) -> None:
    """Every rollup row again from the movements, customer chunk by customer chunk (each
    statement reads a bounded slice), and the rebuild marker cleared. `progress` gets (0,
    the customers to go through) first, then (the customers of a chunk, the same) after
    each."""
    await connection.execute(sa.text("TRUNCATE rollup, cohort_rollup"))
    await connection.execute(sa.delete(rollup_rebuild))
    await _build(connection, await kept(connection), True, progress)


@dataclass(frozen=True)
class Slices:
    """The customers from some id on, cut in id order into slices of `per` customers (the
    last may hold fewer): each slice's first and last id and its number of customers, and
    how many customers come before the first slice."""

    bounds: list[tuple[int, int, int]]
    before: int

    @property
    def total(self) -> int:
        """Every customer: those before the slices and those in them."""
        return self.before + sum(count for _, _, count in self.bounds)


async def _slices(connection: AsyncConnection, per: int, first: int | None = None) -> Slices:
    """The customers with an id of at least `first` (all by default) in slices of `per`, by
    their number, not by id range: ids leave gaps (customers removed, ids a failed or
    concurrent insert drew), so a range of `per` ids may hold far fewer customers."""
    c = customer.c
    numbered = sa.select(
        c.id, ((sa.func.row_number().over(order_by=c.id) - 1) // per).label("slice")
    )
    if first is not None:
        numbered = numbered.where(c.id >= first)
    rows = numbered.subquery("numbered")
    found = await connection.execute(
        sa.select(sa.func.min(rows.c.id), sa.func.max(rows.c.id), sa.func.count())
        .group_by(rows.c.slice)
        .order_by(rows.c.slice)
    )
    bounds = [(int(low), int(high), int(count)) for low, high, count in found]
    before = 0
    if first is not None:
        earlier = sa.select(sa.func.count()).select_from(customer).where(c.id < first)
        before = int(await connection.scalar(earlier) or 0)
    return Slices(bounds, before)


async def _build(
    connection: AsyncConnection,
    dimensions: list[str],
    cohorts: bool,
    progress: Callable[[int, int], None] | None,
) -> None:
    """Insert every customer's contribution to the rows of `dimensions` (and with `cohorts`,
    to the cohort rollup), which hold none yet."""
    slices = await _slices(connection, CHUNK_CUSTOMERS)
    if not slices.bounds:
        return
    if progress is not None:
        progress(0, slices.total)
    await connection.run_sync(lambda sync: ROLLUP_PARTS.create(sync))
    await connection.run_sync(lambda sync: COHORT_PARTS.create(sync))
    previous = await connection.scalar(sa.text("SELECT current_setting('work_mem')"))
    await connection.execute(sa.select(sa.func.set_config("work_mem", WORK_MEM, True)))
    for first, last, count in slices.bounds:
        await _collect(connection, _between(first, last), dimensions, cohorts)
        if progress is not None:
            progress(count, slices.total)
    await _sum_parts(connection, cohorts)
    await connection.execute(sa.select(sa.func.set_config("work_mem", previous, True)))
    await connection.run_sync(lambda sync: ROLLUP_PARTS.drop(sync))
    await connection.run_sync(lambda sync: COHORT_PARTS.drop(sync))


async def plan_holders(connection: AsyncConnection, plan_ids: list[int]) -> list[int]:
    """The customers with a ledger row on one of `plan_ids` (their `product` contribution
    depends on those plans' products), in id order."""
    found = await connection.scalars(
        sa.select(mrr_change.c.customer_id)
        .where(mrr_change.c.plan_id.in_(plan_ids))
        .distinct()
        .order_by(mrr_change.c.customer_id)
    )
    return [int(ident) for ident in found]


def among(ids: list[int]) -> Members:
    """The customers in `ids` (one array parameter)."""
    values = sa.literal(ids, ARRAY(sa.BigInteger))

    def members(column: ColumnElement[Any]) -> ColumnElement[bool]:
        return column == sa.any_(values)

    return members


def _between(low: int, high: int) -> Members:
    def members(column: ColumnElement[Any]) -> ColumnElement[bool]:
        return column.between(low, high)

    return members


class DimensionError(UserError):
    """A dimension that cannot be added to or dropped from the rollups, or not now."""


def _checked(names: Iterable[str]) -> list[str]:
    """`names` in DIMENSIONS order, each one an operator may add or drop."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        raise DimensionError(f"name a dimension to roll up: {', '.join(OPTIONAL)}")
    for name in wanted:
        if name in OPTIONAL:
            continue
        accepted = f"accepted: {', '.join(OPTIONAL)}"
        if name in ALWAYS:
            raise DimensionError(f"{name!r} is always rolled up; {accepted}")
        if name in MRR_CUBE.names or name.startswith("attr."):
            raise DimensionError(
                f"{name!r} cannot be rolled up (it is read neither from the subscription's "
                f"own ledger rows nor from the customer row alone, so its rows could not be "
                f"kept exact); {accepted}"
            )
        raise DimensionError(f"{name!r} is not a dimension; {accepted}")
    return [name for name in DIMENSIONS if name in wanted]


async def _refuse_while_applying(
    connection: AsyncConnection, doing: str = "change the rolled-up dimensions"
) -> None:
    """Refuse while a chunked import is applying: its chunks' staged rollup rows would not
    hold the dimensions changed now, nor its rollups marked behind stay so until it ends
    (called under DIMENSIONS_LOCK). `doing`: what the message says to do after it."""
    applying = await connection.scalar(
        sa.select(import_job.c.id)
        .where(import_job.c.state.in_(("applying", "finishing")))
        .order_by(import_job.c.id)
        .limit(1)
    )
    if applying is not None:
        raise DimensionError(
            f"an import is being applied (import job {applying}): {doing} after it has "
            "finished (an interrupted import finishes when run again)"
        )


async def _exclusively(
    connection: AsyncConnection, doing: str = "change the rolled-up dimensions"
) -> None:
    """Take DIMENSIONS_LOCK for the transaction (waiting for the recomputes under way), and
    refuse while a chunked import is applying (`_refuse_while_applying`)."""
    lock = sa.literal(DIMENSIONS_LOCK, sa.BigInteger)
    await connection.execute(sa.select(sa.func.pg_advisory_xact_lock(lock)))
    await _refuse_while_applying(connection, doing)


@asynccontextmanager
async def _held(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection of its own holding DIMENSIONS_LOCK exclusively for its session (across
    the transactions of a build: every recompute waits until it ends), never returned to the
    pool: closed at the end, so the server releases the lock whatever happened (an error, an
    interruption)."""
    async with engine.connect() as connection:
        try:
            lock = sa.literal(DIMENSIONS_LOCK, sa.BigInteger)
            await connection.execute(sa.select(sa.func.pg_advisory_lock(lock)))
            await connection.commit()
            yield connection
        finally:
            await connection.invalidate()


async def _data_version(connection: AsyncConnection) -> int:
    """The latest data version: it moves with every write a query result depends on."""
    found = await connection.scalar(
        sa.select(sa.func.coalesce(sa.func.max(data_version.c.version), 0))
    )
    return int(found or 0)


async def _discard_build(connection: AsyncConnection) -> None:
    await connection.execute(sa.delete(rollup_build_part))
    await connection.execute(sa.delete(rollup_build))


@dataclass(frozen=True)
class Added:
    """What `add_dimensions` did: the names added (in DIMENSIONS order), whether their rows
    were built now (else the next rebuild builds them), the first customer id of a build
    resumed (None: started from the first customer, or nothing built), and the names of an
    interrupted build it did not resume (discarded: other names, or written to since)."""

    names: list[str]
    built: bool
    resumed_at: int | None = None
    discarded: tuple[str, ...] = ()


async def add_dimensions(
    engine: AsyncEngine,
    names: Iterable[str],
    progress: Callable[[int, int], None] | None = None,
) -> Added:
    """Roll up `names` (OPTIONAL dimensions) from now on, their rows built from every
    customer's movements, slice by slice (CHUNK_CUSTOMERS customers), each slice's contribution
    committed to `rollup_build_part` with where the build stands (`rollup_build`); at the end,
    in one transaction, the parts summed into `rollup` and the names recorded in
    `rollup_dimension` (queries use them from then on). The whole build holds DIMENSIONS_LOCK
    (recomputes wait for it, so the movements read do not change under it). Interrupted, it
    resumes after its last committed slice when run again with the same names and nothing was
    written since (the data version has not moved), else starts again. Rollups marked behind
    get the names only (the next rebuild builds them with the rest). `progress` gets (0, the
    customers to go through), then those already done when resuming, then those of each
    slice. Names already rolled up are left as they are."""
    wanted = _checked(names)
    async with _held(engine) as connection:
        await _refuse_while_applying(connection)
        present = set(await connection.scalars(sa.select(rollup_dimension.c.name)))
        added = [name for name in wanted if name not in present]
        if not added:
            return Added([], False)
        if await connection.scalar(sa.select(sa.exists().select_from(rollup_rebuild))):
            unfinished = await connection.scalar(sa.select(rollup_build.c.dimensions))
            await _discard_build(connection)
            await connection.execute(sa.insert(rollup_dimension), [{"name": n} for n in added])
            await connection.commit()
            return Added(added, False, None, tuple(unfinished or ()))
        resumed, discarded = await _build_slices(connection, added, progress)
        await connection.execute(sa.delete(rollup).where(rollup.c.dimension.in_(added)))
        await _sum_parts(connection, False, rollup_build_part)
        await _discard_build(connection)
        await connection.execute(sa.insert(rollup_dimension), [{"name": n} for n in added])
        await connection.commit()
        return Added(added, True, resumed, discarded)


async def _build_slices(
    connection: AsyncConnection,
    added: list[str],
    progress: Callable[[int, int], None] | None,
) -> tuple[int | None, tuple[str, ...]]:
    """Collect every customer's contribution to the rows of `added` into `rollup_build_part`,
    slice by slice, each committed: after the last committed slice of an unfinished build of
    the same names when nothing was written since (the first id read now, and no names
    discarded), else from the first customer (None, and the names of an unfinished build
    discarded, if any)."""
    version = await _data_version(connection)
    unfinished = (
        await connection.execute(
            sa.select(
                rollup_build.c.dimensions, rollup_build.c.next_customer, rollup_build.c.data_version
            )
        )
    ).first()
    resumed: int | None = None
    discarded: tuple[str, ...] = ()
    if (
        unfinished is not None
        and list(unfinished.dimensions) == added
        and unfinished.data_version == version
    ):
        resumed = first = int(unfinished.next_customer)
    else:
        discarded = tuple(unfinished.dimensions) if unfinished is not None else ()
        await _discard_build(connection)
        first = 0
        await connection.execute(
            sa.insert(rollup_build).values(
                dimensions=added, next_customer=first, data_version=version
            )
        )
    await connection.commit()
    slices = await _slices(connection, CHUNK_CUSTOMERS, first)
    await connection.commit()
    if progress is not None and slices.total:
        progress(0, slices.total)
        if slices.before:
            progress(slices.before, slices.total)
    for low, high, count in slices.bounds:
        await connection.execute(sa.select(sa.func.set_config("work_mem", WORK_MEM, True)))
        await _collect(connection, _between(low, high), added, False, rollup_build_part)
        await connection.execute(
            sa.update(rollup_build).values(
                next_customer=high + 1, data_version=await _data_version(connection)
            )
        )
        await connection.commit()
        if progress is not None:
            progress(count, slices.total)
    return resumed, discarded


async def unfinished_build(connection: AsyncConnection) -> tuple[list[str], int, int] | None:
    """An interrupted `add_dimensions`: its names, and how far it went (customers read, of
    how many), or None."""
    found = (
        await connection.execute(sa.select(rollup_build.c.dimensions, rollup_build.c.next_customer))
    ).first()
    if found is None:
        return None
    c = customer.c
    done, total = (
        await connection.execute(
            sa.select(
                sa.func.count().filter(c.id < found.next_customer), sa.func.count()
            ).select_from(customer)
        )
    ).one()
    return list(found.dimensions), int(done), int(total)


async def drop_dimensions(connection: AsyncConnection, names: Iterable[str]) -> list[str]:
    """Stop rolling up `names`: their rows deleted, their breakdowns scanning again, and an
    interrupted build of any of them discarded. The names dropped (those that were rolled
    up), in DIMENSIONS order."""
    wanted = _checked(names)
    await _exclusively(connection)
    dropped = await connection.scalars(
        sa.delete(rollup_dimension)
        .where(rollup_dimension.c.name.in_(wanted))
        .returning(rollup_dimension.c.name)
    )
    gone = set(dropped)
    await connection.execute(sa.delete(rollup).where(rollup.c.dimension.in_(wanted)))
    building = await connection.scalar(sa.select(rollup_build.c.dimensions))
    if building is not None and set(building) & set(wanted):
        await _discard_build(connection)
    return [name for name in wanted if name in gone]


async def dimension_rows(connection: AsyncConnection) -> dict[str, int]:
    """The rollup rows of each dimension (the total's under TOTAL)."""
    found = await connection.execute(
        sa.select(rollup.c.dimension, sa.func.count()).group_by(rollup.c.dimension)
    )
    return {str(name): int(count) for name, count in found}


async def request_rebuild(connection: AsyncConnection) -> None:
    """Mark the rollups behind the movements: queries scan until `rebuild` clears it."""
    statement = insert(rollup_rebuild).values(id=1, requested_at=sa.func.now())
    await connection.execute(statement.on_conflict_do_nothing())


async def rebuild_if_requested(
    connection: AsyncConnection, progress: Callable[[int, int], None] | None = None
) -> bool:
    """`rebuild` when the rollups are marked behind; whether they were."""
    if not await connection.scalar(sa.select(sa.exists().select_from(rollup_rebuild))):
        return False
    await rebuild(connection, progress)
    return True


async def needs_rebuild(connection: AsyncConnection, touched: int) -> bool:
    """A full rebuild instead of subtract-and-add: when the rollups are behind (a migrated
    database), or the recompute touches at least half of the customers (a first import)."""
    if await connection.scalar(sa.select(sa.exists().select_from(rollup_rebuild))):
        return True
    customers = await connection.scalar(sa.select(sa.func.count()).select_from(customer))
    return 2 * touched >= int(customers or 0)


# --- checking them against the movements ---------------------------------------------------

ROLLUP_KEY = ("interval", "dimension", "value", "k")
COHORT_KEY = ("cohort", "month")


@dataclass(frozen=True)
class Difference:
    """A stored row whose sums are not those the movements give (a row missing on either side
    has sums of 0): its table, its key, and each sum that differs as (stored, from the
    movements)."""

    table: str
    key: tuple[str, ...]
    sums: dict[str, tuple[int, int]]


@dataclass(frozen=True)
class Checked:
    """What `check` found: whether the rollups are marked behind (then nothing is compared:
    every query scans until they are rebuilt), the dimensions compared (the total's rows come
    with the currency's), the stored rows of each table, how many rows differ, and the first
    of them in key order."""

    behind: bool
    dimensions: list[str]
    rows: int
    cohort_rows: int
    differences: int
    examples: list[Difference]


CHECK_CONNECTIONS = 2  # connections a check collects on, side by side (one per core)


async def check(
    engine: AsyncEngine,
    progress: Callable[[int, int], None] | None = None,
    examples: int = 10,
    *,
    connections: int = CHECK_CONNECTIONS,
    per_slice: int = CHUNK_CUSTOMERS,
) -> Checked:
    """Every stored rollup and cohort rollup row against the rows a rebuild would write now
    (every customer's contribution, as `rebuild` collects them, `per_slice` customers per
    statement), in one REPEATABLE READ snapshot, so that the writes committed meanwhile are on
    neither side; nothing is written (the transaction is rolled back). The slices are
    collected on `connections` connections at once, each in a transaction importing the first
    one's snapshot (pg_export_snapshot), and their sums are compared on the first.
    `progress` as `rebuild`'s."""
    async with engine.connect() as connection:
        connection = await connection.execution_options(isolation_level="REPEATABLE READ")
        transaction = await connection.begin()
        try:
            return await _check(engine, connection, progress, examples, connections, per_slice)
        finally:
            await transaction.rollback()


async def _check(
    engine: AsyncEngine,
    connection: AsyncConnection,
    progress: Callable[[int, int], None] | None,
    examples: int,
    connections: int,
    per_slice: int,
) -> Checked:
    snapshot = str(await connection.scalar(sa.select(sa.func.pg_export_snapshot())))
    behind = bool(await connection.scalar(sa.select(sa.exists().select_from(rollup_rebuild))))
    dimensions = await kept(connection)
    rows = int(await connection.scalar(sa.select(sa.func.count()).select_from(rollup)) or 0)
    cohort_rows = await connection.scalar(sa.select(sa.func.count()).select_from(cohort_rollup))
    if behind:
        return Checked(True, dimensions, rows, int(cohort_rows or 0), 0, [])
    slices = await _slices(connection, per_slice)
    if progress is not None and slices.bounds:
        progress(0, slices.total)
    pending = iter(slices.bounds)

    async def collect(on: AsyncConnection) -> None:
        """Slices from `pending` into `on`'s own parts, until none is left."""
        # the grouping in memory, as a rebuild's (the transaction is rolled back: no reset)
        await on.execute(sa.select(sa.func.set_config("work_mem", WORK_MEM, True)))
        await on.run_sync(lambda sync: ROLLUP_PARTS.create(sync))
        await on.run_sync(lambda sync: COHORT_PARTS.create(sync))
        for first, last, count in pending:
            await _collect(on, _between(first, last), dimensions, True)
            if progress is not None:
                progress(count, slices.total)

    async def beside() -> list[tuple[sa.Table, list[dict[str, Any]]]]:
        """`collect` on a connection of its own in the same snapshot; its parts summed."""
        async with engine.connect() as other:
            other = await other.execution_options(isolation_level="REPEATABLE READ")
            own = await other.begin()
            try:
                await other.execute(sa.text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
                await collect(other)
                return [
                    (parts, [dict(row) for row in (await other.execute(select)).mappings()])
                    for parts, select in _summed_parts()
                ]
            finally:
                await own.rollback()

    helpers = [beside() for _ in range(max(0, min(connections, len(slices.bounds)) - 1))]
    _, *collected = await asyncio.gather(collect(connection), *helpers)
    for summed in collected:
        for parts, found_rows in summed:
            if found_rows:
                await connection.execute(sa.insert(parts), found_rows)
    found: list[Difference] = []
    differences = 0
    for (table, key, summed_names), (_, expected) in zip(
        ((rollup, ROLLUP_KEY, SUMMED), (cohort_rollup, COHORT_KEY, COHORT_SUMMED)),
        _summed_parts(),
        strict=True,
    ):
        statement = _compared(table, expected, key, summed_names, max(1, examples))
        differing = (await connection.execute(statement)).mappings().all()
        differences += int(differing[0]["differences"]) if differing else 0
        room = max(0, examples - len(found))
        found += [_difference(table.name, key, summed_names, row) for row in differing[:room]]
    return Checked(False, dimensions, rows, int(cohort_rows or 0), differences, found)


def _summed_parts() -> list[tuple[sa.Table, Select[Any]]]:
    """Each parts table with the statement summing its rows per key."""
    statements = []
    for parts, key, summed in (
        (ROLLUP_PARTS, ROLLUP_KEY, SUMMED),
        (COHORT_PARTS, COHORT_KEY, COHORT_SUMMED),
    ):
        columns = [parts.c[name] for name in key]
        sums = (sa.func.sum(parts.c[name]).label(name) for name in summed)
        statements.append((parts, sa.select(*columns, *sums).group_by(*columns)))
    return statements


def _compared(
    table: sa.Table,
    summed_parts: Select[Any],
    key: tuple[str, ...],
    summed: tuple[str, ...],
    limit: int,
) -> Select[Any]:
    """The rows of `table` whose sums differ from `summed_parts` (its rebuild's parts summed
    per key, `_summed_parts`; a row missing on one side counts as 0 there), in key order, the
    first `limit` of them, each with the stored sums, the expected ones and how many rows
    differ in all."""
    expected = summed_parts.subquery("expected")
    joined = table.join(
        expected, sa.and_(*(table.c[name] == expected.c[name] for name in key)), full=True
    )
    stored = {name: sa.func.coalesce(table.c[name], 0) for name in summed}
    rebuilt = {name: sa.func.coalesce(expected.c[name], 0) for name in summed}
    keys = [sa.func.coalesce(table.c[name], expected.c[name]).label(name) for name in key]
    return (
        sa.select(
            *keys,
            *(stored[name].label(f"stored_{name}") for name in summed),
            *(rebuilt[name].label(f"expected_{name}") for name in summed),
            sa.func.count().over().label("differences"),
        )
        .select_from(joined)
        .where(sa.or_(*(stored[name] != rebuilt[name] for name in summed)))
        .order_by(*keys)
        .limit(limit)
    )


def _difference(table: str, key: tuple[str, ...], summed: tuple[str, ...], row: Any) -> Difference:
    sums = {
        name: (int(row[f"stored_{name}"]), int(row[f"expected_{name}"]))
        for name in summed
        if row[f"stored_{name}"] != row[f"expected_{name}"]
    }
    return Difference(table, tuple(str(row[name]) for name in key), sums)


async def repair(engine: AsyncEngine, progress: Callable[[int, int], None] | None = None) -> int:
    """Rebuild the rollups from the movements (as a first import does at its end), once the
    recomputes under way have committed (refused while a chunked import is applied); the
    rows written. Readers of the rollups wait for its transaction."""
    async with engine.begin() as connection:
        await _exclusively(connection, "rebuild the rollups")
        await rebuild(connection, progress)
        count = await connection.scalar(sa.select(sa.func.count()).select_from(rollup))
    return int(count or 0)


# --- the query side ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Slice:
    """Which rollup rows a series reads: a dimension, and one value of it or all (breakdown)."""

    dimension: str
    value: str | None  # None: every value, one series each (the breakdown's g0)


@dataclass(frozen=True)
class Cut:
    """A period the range cuts: its calendar key `k` and the days [a, b] of it in range."""

    k: date
    a: date
    b: date


def cut_periods(request: SeriesRequest) -> tuple[Cut, ...]:
    """The first and last periods of the series when the range does not cover them whole (one
    when the range lies inside a period)."""
    interval = request.interval
    cuts: dict[date, Cut] = {}
    for key in (period_start(request.start, interval), period_start(request.end, interval)):
        last = period_end(key, interval)
        a, b = max(key, request.start), min(last, request.end)
        if (a, b) != (key, last):
            cuts[key] = Cut(key, a, b)
    return tuple(cuts.values())


def rolled_up(added: Iterable[str]) -> frozenset[str]:
    """The dimensions with rollup rows, given the OPTIONAL ones `rollup_dimension` names."""
    return frozenset(ALWAYS) | (frozenset(added) & frozenset(OPTIONAL))


def slice_of(request: SeriesRequest, rolled: frozenset[str] = frozenset(ALWAYS)) -> Slice | None:
    """The rollup rows that answer the request's spec exactly, or None (scan): no segment or
    compared segments, and either no dimensions and no filters (the total), one rolled-up
    dimension (`rolled`: a breakdown), or one EQ filter on one (a one-value series)."""
    return spec_slice(request.spec, rolled)


def spec_slice(spec: QuerySpec, rolled: frozenset[str] = frozenset(ALWAYS)) -> Slice | None:
    """`slice_of` for a spec alone (the movement detail's totals read it too)."""
    if spec.segment is not None or spec.compare:
        return None
    if not spec.dimensions and not spec.filters:
        return Slice(TOTAL, TOTAL)
    if len(spec.dimensions) == 1 and not spec.filters and spec.dimensions[0] in rolled:
        return Slice(spec.dimensions[0], None)
    if not spec.dimensions and len(spec.filters) == 1:
        item = spec.filters[0]
        if (
            item.field in rolled
            and item.op is FilterOp.EQ
            and len(item.values) == 1
            and item.values[0] != NO_VALUE
        ):
            return Slice(item.field, item.values[0])
    return None


def rollup_answers(
    request: SeriesRequest,
    base_currency: str,
    present: frozenset[str],
    rolled: frozenset[str],
) -> Slice | None:
    """The rollup slice that gives exactly the scan's rows, or None: a slice, and no currency
    conversion: one currency, the report's; counts only; or the slice of the report currency
    itself (`currency = R` reporting in R: a customer has one currency, so nothing in it
    converts). Any range: the periods it cuts read the day rows and their own movements
    (`compile_rollup_series`).

    Amounts to convert always scan: a converted stock is the sum of each customer's MRR
    converted and rounded at the point's rate (METRICS.md 7), which no sum over customers
    stored ahead of the query determines (rates also change after the fact, and the report
    currency and `fixFx` are the query's); docs/architecture.md, "Query plans"."""
    counts_only = bool(request.fields) and request.fields <= COUNT_FIELDS
    currencies = currencies_of(request, base_currency, present)
    return unconverted(slice_of(request, rolled), currencies, counts_only)


def unconverted(where: Slice | None, currencies: Currencies, counts_only: bool) -> Slice | None:
    """`where`, unless amounts read from it would need converting: the ledger holds a currency
    other than the report's, the statement sums amounts (not `counts_only`), and the slice is
    not the report currency's own (a customer has one currency, so nothing in it converts)."""
    converts = currencies.needs_conversion and not counts_only
    own = where is not None and where == Slice("currency", currencies.report)
    return None if converts and not own else where


def _stored_rows(interval: Interval, where: Slice, names: list[str], name: str) -> FromClause:
    """The rollup rows of one interval in the slice: value, k and the columns `names`."""
    rows = sa.select(rollup.c.value, rollup.c.k, *(rollup.c[n] for n in names)).where(
        rollup.c.interval == interval.value, rollup.c.dimension == where.dimension
    )
    if where.value is not None:
        rows = rows.where(rollup.c.value == where.value)
    return rows.subquery(name)


def _everyone(column: ColumnElement[Any]) -> ColumnElement[bool]:
    return sa.true()


def _changed_between(a: date, b: date) -> Members:
    """The customers with a ledger change in [a, b]: every customer with a movement in any
    scope on those days (a movement is a change of the day's MRR). An array computed once,
    so their ledgers are read by customer (`= ANY`), not the whole ledger hash-joined."""
    changed = sa.select(mrr_change.c.customer_id).where(mrr_change.c.day.between(a, b))
    ids = sa.func.array(changed.distinct().scalar_subquery())

    def members(column: ColumnElement[Any]) -> ColumnElement[bool]:
        return column == sa.func.any(ids)

    return members


def _in_slice(mv: FromClause, where: Slice) -> list[ColumnElement[bool]]:
    """The condition on movements of one value, when the slice is of one."""
    if where.value is not None and where.dimension != TOTAL:
        return [mv.c.g0 == where.value]
    return []


def _cut_facts(where: Slice, cut: Cut, group: bool, names: list[str]) -> Select[Any]:
    """The customer facts of a cut period, from its own movements (those of days [a, b],
    found by day; a customer's state before a is the `before` of its first one, at b the
    `after` of its last, as the scan's `_customer_level`): distinct customers per kind,
    churned customers, the NRR/GRR deltas. The flows `names` are 0 here (the day rows have
    them)."""
    stored = where.dimension in STORED
    members = _everyone if stored else _changed_between(cut.a, cut.b)
    mv = DIMENSIONS[where.dimension](members)
    conditions = [mv.c.day.between(cut.a, cut.b), *_in_slice(mv, where)]
    needed = ("customer_id", "g0", "kind", "before", "after", "prev_day", "next_day")
    rows = (
        sa.select(*(mv.c[name] for name in needed))
        .where(*conditions)
        .cte(f"cut_rows_{cut.k:%Y%m%d}")  # read once for both branches below
    )
    first = sa.or_(rows.c.prev_day.is_(None), rows.c.prev_day < cut.a)
    last = sa.or_(rows.c.next_day.is_(None), rows.c.next_day > cut.b)
    # a customer's only movement in [a, b] (most customers') is its own facts, ungrouped;
    # the movements of customers with several are grouped per customer
    lone = sa.select(
        rows.c.g0,
        *(sa.case((rows.c.kind == kind, 1), else_=0).label(kind) for kind in KINDS),
        rows.c.before.label("first_before"),
        rows.c.after.label("last_after"),
    ).where(first & last)
    several = (
        sa.select(
            rows.c.g0,
            *(sa.func.count().filter(rows.c.kind == kind).label(kind) for kind in KINDS),
            sa.func.sum(rows.c.before).filter(first).label("first_before"),
            sa.func.sum(rows.c.after).filter(last).label("last_after"),
        )
        .where(sa.not_(first & last))
        .group_by(rows.c.g0, rows.c.customer_id)
    )
    per_customer = sa.union_all(lone, several).subquery(f"cut_customers_{cut.k:%Y%m%d}")
    c = per_customer.c
    held = c.first_before > 0
    zero = sa.literal(0, sa.BigInteger)
    facts = sa.select(
        *([c.g0] if group else []),
        sa.literal(cut.k, sa.Date).label("k"),
        *(zero.label(name) for name in names),
        *(sa.func.count().filter(c[kind] > 0).label(f"{kind}_customers") for kind in KINDS),
        sa.func.count().filter(held & (c.last_after == 0)).label("churned_customers"),
        sa.func.sum(c.last_after - c.first_before).filter(held).label("retained_delta"),
        sa.func.sum(sa.func.least(c.last_after - c.first_before, 0))
        .filter(held)
        .label("gross_retained_delta"),
    )
    return facts.group_by(c.g0) if group else facts


CUT_FACTS = (*(f"{kind}_customers" for kind in KINDS), "churned_customers", *ROLLUP_DELTAS)
# dimensions whose movements are stored, found by day
STORED = (TOTAL, "plan", "currency", *CUSTOMER_LEVEL)
# Which side of a cut period its customer facts are read from: None, the cheaper one
# (`outside_cuts`); "inside" or "outside" to force one (tests take both on every range).
CUT_SIDE: str | None = None
# What reading a movement found by customer (outside) costs against one found by day (inside):
# at 1M customers, half a month read from outside took 2.6 times as long as from inside.
BY_CUSTOMER = 3


def _outside(cut: Cut, last: date, day: ColumnElement[Any]) -> ColumnElement[bool]:
    """The days of the cut period outside [a, b] (its period runs from k to `last`)."""
    ranges = []
    if cut.a > cut.k:
        ranges.append(day.between(cut.k, cut.a - timedelta(days=1)))
    if cut.b < last:
        ranges.append(day.between(cut.b + timedelta(days=1), last))
    return sa.or_(*ranges)


def cut_counts(request: SeriesRequest, where: Slice) -> sa.CompoundSelect[Any] | None:
    """Per period the range cuts, its movements in [a, b] and outside (`k, inside, outside`,
    from the day rows' `members`), when its customer facts are to be counted and could be
    read from outside (`outside_cuts`); None otherwise."""
    wanted = request.fields
    if where.dimension not in STORED or (wanted and not wanted & CUSTOMER_FIELDS):
        return None
    parts = []
    for cut in cut_periods(request):
        last = period_end(cut.k, request.interval)
        days = _stored_rows(Interval.DAY, where, ["members"], "days")
        inside = days.c.k.between(cut.a, cut.b)
        parts.append(
            sa.select(
                sa.literal(cut.k, sa.Date).label("k"),
                sa.func.coalesce(sa.func.sum(days.c.members).filter(inside), 0).label("inside"),
                sa.func.coalesce(sa.func.sum(days.c.members).filter(sa.not_(inside)), 0).label(
                    "outside"
                ),
            ).where(days.c.k.between(cut.k, last))
        )
    return sa.union_all(*parts) if parts else None


def outside_cuts(counts: Iterable[Any]) -> frozenset[date]:
    """The cut periods whose customer facts cost less read from outside [a, b]: its days there
    hold fewer than a third (`BY_CUSTOMER`) of its movements in [a, b]."""
    return frozenset(row.k for row in counts if row.outside * BY_CUSTOMER < row.inside)


def _from_outside(
    where: Slice, cut: Cut, interval: Interval, group: bool, names: list[str]
) -> list[Select[Any]]:
    """The customer facts of a cut period as the whole period's stored ones, corrected by
    the customers who move outside [a, b]: a customer with no movement outside has the same
    facts in [a, b] as in the whole period (its movements are the same), so only the others'
    change. Their movements of the whole period are found by customer; each fact is the
    stored one, minus their facts in the whole period, plus their facts in [a, b]."""
    last = period_end(cut.k, interval)
    name = f"{cut.k:%Y%m%d}"
    stored = _stored_rows(interval, where, list(CUT_FACTS), f"cut_whole_{name}")
    zero = sa.literal(0, sa.BigInteger)
    whole = sa.select(
        *([stored.c.value.label("g0")] if group else []),
        sa.literal(cut.k, sa.Date).label("k"),
        *(zero.label(n) for n in names),
        *(stored.c[n] for n in CUT_FACTS),
    ).where(stored.c.k == cut.k)
    everyone = DIMENSIONS[where.dimension](_everyone)
    movers = (
        sa.select(everyone.c.customer_id)
        .where(_outside(cut, last, everyone.c.day), *_in_slice(everyone, where))
        .distinct()
    )
    ids = sa.func.array(movers.scalar_subquery())
    mv = DIMENSIONS[where.dimension](lambda column: column == sa.func.any(ids))
    rows = (
        sa.select(mv.c.customer_id, mv.c.g0, mv.c.day, mv.c.kind, mv.c.before, mv.c.after)
        .add_columns(mv.c.prev_day, mv.c.next_day)
        .where(mv.c.day.between(cut.k, last), *_in_slice(mv, where))
        .subquery(f"movers_{name}")
    )
    inside = rows.c.day.between(cut.a, cut.b)
    ends = {  # (first, last) movement of a customer in the whole period, and in [a, b]
        "whole": (
            sa.or_(rows.c.prev_day.is_(None), rows.c.prev_day < cut.k),
            sa.or_(rows.c.next_day.is_(None), rows.c.next_day > last),
        ),
        "cut": (
            inside & sa.or_(rows.c.prev_day.is_(None), rows.c.prev_day < cut.a),
            inside & sa.or_(rows.c.next_day.is_(None), rows.c.next_day > cut.b),
        ),
    }
    per_customer = (
        sa.select(
            rows.c.g0,
            *(sa.func.count().filter(rows.c.kind == kind).label(f"whole_{kind}") for kind in KINDS),
            *(
                sa.func.count().filter(inside & (rows.c.kind == kind)).label(f"cut_{kind}")
                for kind in KINDS
            ),
            *(
                column
                for side, (first, final) in ends.items()
                for column in (
                    sa.func.sum(rows.c.before).filter(first).label(f"{side}_before"),
                    sa.func.sum(rows.c.after).filter(final).label(f"{side}_after"),
                )
            ),
        )
        .group_by(rows.c.g0, rows.c.customer_id)
        .subquery(f"movers_facts_{name}")
    )
    c = per_customer.c

    def facts(side: str) -> dict[str, ColumnElement[Any]]:
        before, after = c[f"{side}_before"], c[f"{side}_after"]
        held = before > 0
        return {
            **{
                f"{kind}_customers": sa.func.count().filter(c[f"{side}_{kind}"] > 0)
                for kind in KINDS
            },
            "churned_customers": sa.func.count().filter(held & (after == 0)),
            "retained_delta": sa.func.coalesce(sa.func.sum(after - before).filter(held), 0),
            "gross_retained_delta": sa.func.coalesce(
                sa.func.sum(sa.func.least(after - before, 0)).filter(held), 0
            ),
        }

    cut_side, whole_side = facts("cut"), facts("whole")
    correction = sa.select(
        *([c.g0] if group else []),
        sa.literal(cut.k, sa.Date).label("k"),
        *(zero.label(n) for n in names),
        *((cut_side[n] - whole_side[n]).label(n) for n in CUT_FACTS),
    )
    return [whole, correction.group_by(c.g0) if group else correction]


def _cut_parts(
    where: Slice, cut: Cut, interval: Interval, group: bool, names: list[str], outside: bool
) -> list[Select[Any]]:
    """The customer facts of a cut period, read from inside [a, b] or, when that costs less
    (`outside`: `outside_cuts`), from outside: a range ending today (the few movements dated
    after today), the last 30 days (the month's first day)."""
    side = CUT_SIDE or ("outside" if outside else "inside")
    if where.dimension not in STORED or side == "inside":  # derived: found by customer only
        return [_cut_facts(where, cut, group, names)]
    return _from_outside(where, cut, interval, group, names)


def _flows(
    request: SeriesRequest,
    where: Slice,
    names: list[str],
    facts: list[str],
    group: bool,
    outside: frozenset[date],
) -> FromClause:
    """Per (value, period): the stored rows of the whole periods in range; for a period the
    range cuts, the sums of its days' rows (flows add up over days) and its customer facts
    from its own movements (distinct customers do not add up over days), read from outside
    the range for the periods in `outside`."""
    start = sa.bindparam("start", request.start, type_=sa.Date)
    end = sa.bindparam("end", request.end, type_=sa.Date)
    stored = _stored_rows(request.interval, where, [*names, *facts], "stored")
    g0 = [stored.c.value.label("g0")] if group else []
    cuts = cut_periods(request)
    whole = sa.select(*g0, stored.c.k, *(stored.c[name] for name in [*names, *facts])).where(
        stored.c.k.between(start, end)
    )
    if not cuts:
        return whole.subquery("flows")
    whole = whole.where(stored.c.k.not_in([cut.k for cut in cuts]))
    days = _stored_rows(Interval.DAY, where, names, "days")
    zero = sa.literal(0, sa.BigInteger)
    parts: list[Select[Any]] = [whole]
    for cut in cuts:
        day_g0 = [days.c.value.label("g0")] if group else []
        summed = sa.select(
            *day_g0,
            sa.literal(cut.k, sa.Date).label("k"),
            *(sa.func.sum(days.c[name]).label(name) for name in names),
            *(zero.label(name) for name in facts),
        ).where(days.c.k.between(cut.a, cut.b))
        parts.append(summed.group_by(days.c.value) if group else summed)
        if facts:
            parts += _cut_parts(where, cut, request.interval, group, names, cut.k in outside)
    both = sa.union_all(*parts).subquery("parts")
    keys = [both.c.g0] if group else []
    return (
        sa.select(
            *keys, both.c.k, *(sa.func.sum(both.c[name]).label(name) for name in [*names, *facts])
        )
        .group_by(*keys, both.c.k)
        .subquery("flows")
    )


def _opening(request: SeriesRequest, where: Slice, group: bool) -> FromClause:
    """MRR and active customers before `start`, per value: the stored periods before the first
    period, and the days of it before `start` when the range cuts it."""
    first = period_start(request.start, request.interval)
    start = sa.bindparam("start", request.start, type_=sa.Date)
    stored = _stored_rows(request.interval, where, ["net", "customers_net"], "stored")
    before = sa.select(stored.c.value, stored.c.net, stored.c.customers_net)
    if first == request.start:
        rows = before.where(stored.c.k < start).subquery("before_start")
    else:
        days = _stored_rows(Interval.DAY, where, ["net", "customers_net"], "days")
        earlier = sa.select(days.c.value, days.c.net, days.c.customers_net).where(
            days.c.k.between(first, request.start - timedelta(days=1))
        )
        rows = sa.union_all(before.where(stored.c.k < first), earlier).subquery("before_start")
    keys = [rows.c.value.label("g0")] if group else []
    return (
        sa.select(
            *keys,
            sa.func.sum(rows.c.net).label("mrr"),
            sa.func.sum(rows.c.customers_net).label("customers"),
        )
        .group_by(*([rows.c.value] if group else []))
        .subquery("opening")
    )


def _values(request: SeriesRequest, where: Slice) -> FromClause:
    """Every value with a movement up to `end` (the scan's dense breakdown): the stored periods
    up to the last, and its days up to `end` when the range cuts it."""
    end = sa.bindparam("end", request.end, type_=sa.Date)
    last = period_start(request.end, request.interval)
    stored = _stored_rows(request.interval, where, [], "stored")
    if request.end == period_end(last, request.interval):
        seen = sa.select(stored.c.value.label("g0")).where(stored.c.k <= end).distinct()
        return seen.subquery("group_values")
    days = _stored_rows(Interval.DAY, where, [], "days")
    return sa.union(
        sa.select(stored.c.value.label("g0")).where(stored.c.k < last),
        sa.select(days.c.value.label("g0")).where(days.c.k.between(last, end)),
    ).subquery("group_values")


def compile_rollup_series(
    request: SeriesRequest, where: Slice, outside: frozenset[date] = frozenset()
) -> Select[tuple[object, ...]]:
    """The rows of `compile_series` (same columns, same values) from the rollup: per period of
    the grid the stored flows, the stocks as the opening plus running sums of the net changes.
    A period the range cuts adds up its days' rows, and counts its customers from its own
    movements when a field needs them (`_flows`), from outside the range for the cut periods
    in `outside` (`cut_counts`, `outside_cuts`)."""
    end: ColumnElement[Any] = sa.bindparam("end", request.end, type_=sa.Date)
    wanted = request.fields
    with_customers = not wanted or bool(wanted & CUSTOMER_FIELDS)
    names = list(FLOWS)  # the per-customer columns only when asked
    facts = list(CUT_FACTS) if with_customers else []
    group = where.value is None
    groups = ["g0"] if group else []
    periods = _periods(request, end)
    flows = _flows(request, where, names, facts, group, outside)
    opening = _opening(request, where, group)
    if group:
        values = _values(request, where)
        grid = (
            sa.select(periods.c.k, values.c.g0)
            .join_from(periods, values, sa.true())
            .subquery("grid")
        )
    else:
        grid = sa.select(periods.c.k).subquery("grid")
    return _assemble(grid, flows, opening, None, groups)


def cohorts_from_rollup(request: CohortRequest, present: frozenset[str], report: str) -> bool:
    """Whether the cohort rollup answers exactly: no filter or segment, nothing to convert
    (every ledger currency is the report's), and `end` a month's last day (every movement of a
    month either counts or not)."""
    spec = request.spec
    plain = not spec.filters and spec.segment is None and not spec.dimensions and not spec.compare
    month_end = request.end == period_end(period_start(request.end, Interval.MONTH), Interval.MONTH)
    return plain and month_end and all(currency == report for currency in present)


def compile_cohort_rollup(request: CohortRequest) -> Select[tuple[object, ...]]:
    """The rows of `compile_cohorts` (same columns and values) from the cohort rollup: realized
    LTV's sum of amount x days left is (end's day number + 1) x the amounts - amount_days."""
    start = sa.bindparam("start", request.start, type_=sa.Date)
    end = sa.bindparam("end", request.end, type_=sa.Date)
    c = cohort_rollup.c
    days_to_end = _day_number(end) + 1
    return (
        sa.select(
            c.cohort,
            c.month,
            sa.cast(c.mrr_change, sa.BigInteger).label("mrr_change"),
            c.active_change,
            (days_to_end * c.mrr_change - c.amount_days).label("mrr_days"),
            c.joined,
            sa.literal(0, sa.BigInteger).label("foreign_mrr"),
            sa.null().label("fx_missing"),
        )
        .where(c.cohort.between(_month(start), end), c.month <= end)
        .order_by(c.cohort, c.month)
    )


def plan_name(where: Slice | None) -> str:
    return "scan" if where is None else "rollup"


__all__ = [
    "DIMENSIONS",
    "Slice",
    "add_contributions",
    "compile_rollup_series",
    "cut_counts",
    "needs_rebuild",
    "outside_cuts",
    "rebuild",
    "rollup_answers",
    "spec_slice",
    "unconverted",
]
