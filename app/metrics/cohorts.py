"""Retention cohorts and realized cohort LTV (METRICS.md 5).

A customer's cohort is the month of its `new` movement. Cohort cells are computed from movement
deltas, never per day: a member's MRR at a month end is the sum of its movements up to that day,
and it is active when that sum is positive, so `activeCustomers` and `mrr` per (cohort, month)
are running sums of per-month deltas. Realized LTV uses the same identity:
`sum_{d <= end} m_c(d) = sum_{movements} amount * (end - day + 1)` days.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.expression import ColumnElement, FromClause, Select

from app.metrics.cube import Cube
from app.metrics.fx import Currencies, conversion_table, missing_rate
from app.metrics.mrr import movement_source
from app.metrics.periods import add_months, period_end
from app.metrics.points import rate
from app.metrics.spec import Interval, QuerySpec
from app.money import round_half_even

DAYS_PER_MONTH = Fraction(365, 12)
# Fifty years of monthly cohorts: a matrix of at most 180,300 cells. Its cost grows with the
# square of the months (each cohort has a cell per month up to `end`), and converted to another
# currency with the members still active times the months (their stock at every month end).
MAX_MONTHS = 600


@dataclass(frozen=True)
class CohortRequest:
    start: date
    end: date
    spec: QuerySpec = field(default_factory=QuerySpec)


@dataclass(frozen=True)
class CohortCell:
    offset: int
    month: date
    active_customers: int
    mrr: int
    customer_retention: float | None
    mrr_retention: float | None


@dataclass(frozen=True)
class Cohort:
    cohort: date
    size: int
    ltv: int | None
    cells: tuple[CohortCell, ...]


def request_problems(request: CohortRequest) -> list[str]:
    problems = []
    if request.start > request.end:
        problems.append(f"start {request.start} is after end {request.end}")
    months = (request.end.year - request.start.year) * 12 + request.end.month - request.start.month
    if months + 1 > MAX_MONTHS:
        problems.append(
            f"the cohorts from {request.start} to {request.end} would span {months + 1} months; "
            f"at most {MAX_MONTHS} (fifty years) are served"
        )
    if request.spec.dimensions or request.spec.compare:
        problems.append(
            "cohorts take filters, not dimensions or compareSegments (one matrix per query)"
        )
    return problems


def _month(day: ColumnElement[Any]) -> ColumnElement[Any]:
    return sa.cast(sa.func.date_trunc("month", sa.cast(day, sa.DateTime)), sa.Date)


def compile_cohorts(
    cube: Cube, request: CohortRequest, currencies: Currencies
) -> Select[tuple[object, ...]]:
    """Per (cohort, month): the members' MRR change, active-count change, day-weighted MRR for
    realized LTV and each cohort's size, in the report currency R (METRICS.md 7). Members
    billed in R add movement deltas. The others are taken span by span (a span: one MRR from
    a movement to the next): their stock at each month end converts at that day's rate
    (`foreign_mrr`), and their day-weighted MRR converts each day at its own rate, exactly:
    a span's MRR times the sum of its days' factors (a running sum per currency)."""
    end: ColumnElement[Any] = sa.bindparam("end", request.end, type_=sa.Date)
    rows = _member_movements(cube, request, end)
    if not currencies.needs_conversion:
        return _by_month(_deltas(rows, end, None).subquery("cohort_rows"), sa.null())
    spans = _spans(rows, currencies.report, end)
    conv = conversion_table(_every_day(spans, end), currencies)
    running = sa.select(
        conv,
        sa.func.sum(conv.c.factor)
        .over(partition_by=conv.c.currency, order_by=conv.c.day)
        .label("running"),
    ).cte("fx_running")
    union = sa.union_all(
        _deltas(rows, end, currencies.report),
        _foreign_days(spans, running),
        _foreign_stocks(spans, running, _month_ends(request, end)),
    ).subquery("cohort_rows")
    return _by_month(union, missing_rate(conv))


def _member_movements(cube: Cube, request: CohortRequest, end: ColumnElement[Any]) -> FromClause:
    """Movements up to `end` of the customers whose `new` falls in a cohort month in range."""
    start: ColumnElement[Any] = sa.bindparam("start", request.start, type_=sa.Date)
    mv = movement_source(cube, request.spec, end)
    month = _month(mv.c.day)
    members = (
        sa.select(mv.c.customer_id, month.label("cohort"))
        .where(mv.c.kind == "new", month.between(_month(start), end))
        .cte("members")
    )
    return (
        sa.select(mv, members.c.cohort)
        .join_from(mv, members, members.c.customer_id == mv.c.customer_id)
        .where(mv.c.day <= end)
        .cte("member_movements")
    )


def _deltas(rows: FromClause, end: ColumnElement[Any], report: str | None) -> Select[Any]:
    """Per (cohort, month): movement sums; money only of members billed in `report` (all
    members when no conversion is needed)."""

    def money(value: ColumnElement[Any]) -> ColumnElement[Any]:
        total = sa.func.sum(value)
        return total if report is None else total.filter(rows.c.currency == report)

    active = sa.case((rows.c.after > 0, 1), else_=0) - sa.case((rows.c.before > 0, 1), else_=0)
    days_left = end - rows.c.day + 1
    month = _month(rows.c.day)
    return sa.select(
        rows.c.cohort,
        month.label("month"),
        money(rows.c.amount).label("mrr_change"),
        sa.func.sum(active).label("active_change"),
        money(rows.c.amount * days_left).label("mrr_days"),
        # a member has one `new` in scope (its first movement; one currency per customer), so
        # counting them needs no DISTINCT, whose sort of every member movement spilled to disk
        sa.func.count().filter(rows.c.kind == "new").label("joined"),
        sa.literal(0, sa.BigInteger).label("foreign_mrr"),
    ).group_by(rows.c.cohort, month)


def _spans(rows: FromClause, report: str, end: ColumnElement[Any]) -> FromClause:
    """(cohort, currency, mrr, first, last): the days up to `end` on which a member not billed
    in R holds one MRR (in its own currency)."""
    following = sa.func.lead(rows.c.day).over(partition_by=rows.c.customer_id, order_by=rows.c.day)
    spans = (
        sa.select(
            rows.c.cohort,
            rows.c.currency,
            rows.c.after.label("mrr"),
            rows.c.day.label("first"),
            sa.func.coalesce(following - sa.literal(1, sa.Integer), end).label("last"),
        )
        .where(rows.c.currency != report)
        .subquery("all_spans")
    )
    return sa.select(spans).where(spans.c.mrr > 0).cte("spans")


def _every_day(spans: FromClause, end: ColumnElement[Any]) -> Select[Any]:
    """(currency, day) for every day from a currency's first span to `end`."""
    one_day = sa.cast(sa.literal("1 day"), sa.Interval)
    day = sa.func.generate_series(sa.func.min(spans.c.first), end, one_day)
    return sa.select(spans.c.currency, sa.cast(day, sa.Date).label("day")).group_by(
        spans.c.currency
    )


def _zero(*names: str) -> list[ColumnElement[Any]]:
    return [sa.literal(0, sa.BigInteger).label(name) for name in names]


def _foreign_days(spans: FromClause, running: FromClause) -> Select[Any]:
    """Per (cohort, month of a span's start): the exact sum over the spans' days of MRR x that
    day's factor."""
    first, last = running.alias("at_first"), running.alias("at_last")
    factors = last.c.running - first.c.running + first.c.factor  # the span's days' sum
    month = _month(spans.c.first)
    return (
        sa.select(
            spans.c.cohort,
            month.label("month"),
            *_zero("mrr_change", "active_change"),
            sa.func.sum(spans.c.mrr * factors).label("mrr_days"),
            *_zero("joined", "foreign_mrr"),
        )
        .join_from(
            spans, first, (first.c.currency == spans.c.currency) & (first.c.day == spans.c.first)
        )
        .join(last, (last.c.currency == spans.c.currency) & (last.c.day == spans.c.last))
        .group_by(spans.c.cohort, month)
    )


def _month_ends(request: CohortRequest, end: ColumnElement[Any]) -> FromClause:
    """The last day of every month from the first cohort month to `end` that ends by then."""
    first = sa.bindparam("start", request.start, type_=sa.Date)
    month = sa.cast(sa.literal("1 month"), sa.Interval)
    starts = sa.select(sa.func.generate_series(_month(first), end, month).label("k")).subquery(
        "months"
    )
    b = sa.cast(starts.c.k + month - sa.cast(sa.literal("1 day"), sa.Interval), sa.Date)
    # materialized: the spans compare plain dates, not the month arithmetic per pair
    return sa.select(b.label("b")).where(b <= end).cte("month_ends").prefix_with("MATERIALIZED")


def _foreign_stocks(spans: FromClause, running: FromClause, ends: FromClause) -> Select[Any]:
    """Per (cohort, month): the members' MRR at the month's last day, each converted at that
    day's rate and rounded to cents."""
    holds = (spans.c.first <= ends.c.b) & (ends.c.b <= spans.c.last)
    month = _month(ends.c.b)
    return (
        sa.select(
            spans.c.cohort,
            month.label("month"),
            *_zero("mrr_change", "active_change", "mrr_days", "joined"),
            sa.func.sum(sa.func.round_half_even(spans.c.mrr * running.c.factor)).label(
                "foreign_mrr"
            ),
        )
        .join_from(spans, ends, holds)
        .join(running, (running.c.currency == spans.c.currency) & (running.c.day == ends.c.b))
        .group_by(spans.c.cohort, month)
    )


SUMS = ("mrr_change", "active_change", "mrr_days", "joined", "foreign_mrr")


def _by_month(rows: FromClause, missing: ColumnElement[Any]) -> Select[tuple[object, ...]]:
    """The rows' sums per (cohort, month); mrr_days stays numeric (exact, converted)."""

    def total(name: str) -> ColumnElement[Any]:
        kind = sa.Numeric if name == "mrr_days" else sa.BigInteger
        return sa.cast(sa.func.coalesce(sa.func.sum(rows.c[name]), 0), kind).label(name)

    return (
        sa.select(
            rows.c.cohort,
            rows.c.month,
            *(total(name) for name in SUMS),
            missing.label("fx_missing"),
        )
        .group_by(rows.c.cohort, rows.c.month)
        .order_by(rows.c.cohort, rows.c.month)
    )


def _cells(cohort: date, deltas: Mapping[date, Mapping[str, Any]], end: date) -> list[CohortCell]:
    cells: list[CohortCell] = []
    mrr = active = 0
    offset, month = 0, cohort
    size = int(deltas[cohort]["joined"])
    while period_end(month, Interval.MONTH) <= end:
        row = deltas.get(month)
        foreign = 0
        if row:
            mrr += int(row["mrr_change"])
            active += int(row["active_change"])
            foreign = int(row["foreign_mrr"])
        stock = mrr + foreign
        base = cells[0].mrr if cells else stock
        cells.append(
            CohortCell(offset, month, active, stock, rate(active, size), rate(stock, base))
        )
        offset, month = offset + 1, add_months(month, 1)
    return cells


def build_cohorts(rows: Sequence[Any], request: CohortRequest) -> tuple[Cohort, ...]:
    by_cohort: dict[date, dict[date, Mapping[str, Any]]] = {}
    for row in rows:
        by_cohort.setdefault(row["cohort"], {})[row["month"]] = row
    cohorts = []
    for cohort, deltas in sorted(by_cohort.items()):
        size = int(deltas[cohort]["joined"])
        mrr_days = sum((Fraction(row["mrr_days"]) for row in deltas.values()), Fraction(0))
        ltv = round_half_even(Fraction(mrr_days) / DAYS_PER_MONTH / size) if size else None
        cells = tuple(_cells(cohort, deltas, request.end))
        cohorts.append(Cohort(cohort=cohort, size=size, ltv=ltv, cells=cells))
    return tuple(cohorts)
