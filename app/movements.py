"""The movement rule of METRICS.md section 3, as SQL over ledger rows.

Used twice, so the rule lives once: by ingestion to materialize the unfiltered `movement` table,
and by the metrics compiler for scoped views (a breakdown or filter by a subscription-level
dimension recomputes customers' MRR inside the scope and classifies again).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.expression import ColumnElement, FromClause, Select

CONTRIBUTING_STATUSES = ("active", "past_due")


def classify(
    row_number: ColumnElement[int], before: ColumnElement[int], after: ColumnElement[int]
) -> ColumnElement[str]:
    """The kind of a day's change. A customer's first change in scope is always `new` (its MRR
    starts at 0 and is never negative); a later rise from 0 is a `reactivation`."""
    return sa.case(
        (row_number == 1, sa.literal("new")),
        (before == 0, sa.literal("reactivation")),
        (after == 0, sa.literal("churn")),
        (after > before, sa.literal("expansion")),
        else_=sa.literal("contraction"),
    )


def movements_from_changes(
    changes: FromClause, groups: Sequence[str] = ()
) -> Select[tuple[object, ...]]:
    """Movement rows (customer_id, *groups, day, kind, before, after, amount, prev_day,
    next_day) from ledger-shaped rows (customer_id, *groups, day, delta). Changes within a day
    net out; a zero net is no movement. prev_day/next_day are the customer's neighbouring
    movement days (in the same groups), so a period query can tell a customer's only movement
    in a period without grouping by customer."""
    group_cols = [changes.c[name] for name in groups]
    daily = (
        sa.select(
            changes.c.customer_id,
            *group_cols,
            changes.c.day,
            sa.func.sum(changes.c.delta).label("delta"),
        )
        .group_by(changes.c.customer_id, *group_cols, changes.c.day)
        .having(sa.func.sum(changes.c.delta) != 0)
        .subquery("daily")
    )
    partition = [daily.c.customer_id, *(daily.c[name] for name in groups)]

    def by_day(function: sa.sql.functions.Function[Any]) -> ColumnElement[Any]:
        return function.over(partition_by=partition, order_by=daily.c.day)

    running = sa.select(
        daily,
        by_day(sa.func.sum(daily.c.delta)).label("after"),
        by_day(sa.func.row_number()).label("n"),
        by_day(sa.func.lag(daily.c.day)).label("prev_day"),
        by_day(sa.func.lead(daily.c.day)).label("next_day"),
    ).subquery("running")
    before = sa.cast(running.c.after - running.c.delta, sa.BigInteger)
    after = sa.cast(running.c.after, sa.BigInteger)
    return sa.select(
        running.c.customer_id,
        *(running.c[name] for name in groups),
        running.c.day,
        classify(running.c.n, before, after).label("kind"),
        before.label("before"),
        after.label("after"),
        sa.cast(running.c.delta, sa.BigInteger).label("amount"),
        running.c.prev_day,
        running.c.next_day,
    )


# The calendar intervals of a series in whose period a stored movement can be its customer's
# only movement (in its scope), a bit each (`movement.alone`, `movement_scope.alone`): set when
# neither neighbouring movement day falls in the same week / month / quarter / year. A series
# over whole periods reads the bit instead of comparing each row's neighbours with its period's
# bounds (two date_trunc calls and interval arithmetic per row and pass, about a third of a
# scan). The migration that added the columns (0035) fills them with this same rule in SQL.
ALONE_BITS = {"week": 1, "month": 2, "quarter": 4, "year": 8}

Bounds = Callable[[str], tuple[ColumnElement[Any], ColumnElement[Any]]]


def alone_bits(
    prev_day: ColumnElement[Any], next_day: ColumnElement[Any], bounds: Bounds
) -> ColumnElement[int]:
    """The ALONE_BITS of a movement whose neighbouring movement days are given; `bounds(unit)`
    is the first and last day of the movement's period of that unit (a calendar joined by
    day: computed once per day, not per row)."""
    terms = []
    for unit, bit in ALONE_BITS.items():
        first, last = bounds(unit)
        alone = sa.and_(
            sa.or_(prev_day.is_(None), prev_day < first),
            sa.or_(next_day.is_(None), next_day > last),
        )
        terms.append(sa.case((alone, bit), else_=0))
    return sa.cast(sum(terms[1:], terms[0]), sa.SmallInteger)
