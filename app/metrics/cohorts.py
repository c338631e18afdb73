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
from app.metrics.spec import Interval, QuerySpec
from app.money import round_half_even

DAYS_PER_MONTH = Fraction(365, 12)


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
    billed in R add movement deltas; the others, whose MRR each day converts at that day's
    rate, add one row per day they hold MRR (`foreign_mrr` is their stock at month end)."""
    end: ColumnElement[Any] = sa.bindparam("end", request.end, type_=sa.Date)
    rows = _member_movements(cube, request, end)
    if not currencies.needs_conversion:
        return _by_month(_deltas(rows, end, None).subquery("cohort_rows"), sa.null())
    held = _held_days(rows, currencies.report, end)
    conv = conversion_table(sa.select(held.c.currency, held.c.day).distinct(), currencies)
    daily = _daily(held, conv)
    union = sa.union_all(_deltas(rows, end, currencies.report), daily).subquery("cohort_rows")
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
        sa.func.count(sa.distinct(rows.c.customer_id)).filter(rows.c.kind == "new").label("joined"),
        sa.literal(0, sa.BigInteger).label("foreign_mrr"),
    ).group_by(rows.c.cohort, month)


def _held_days(rows: FromClause, report: str, end: ColumnElement[Any]) -> FromClause:
    """(cohort, currency, day, mrr) for every day up to `end` on which a member not billed in
    R holds MRR, in its own currency."""
    spans = (
        sa.select(
            rows.c.cohort,
            rows.c.currency,
            rows.c.after,
            rows.c.day.label("valid_from"),
            sa.func.lead(rows.c.day)
            .over(partition_by=rows.c.customer_id, order_by=rows.c.day)
            .label("valid_to"),
        )
        .where(rows.c.currency != report)
        .subquery("spans")
    )
    last = sa.func.coalesce(spans.c.valid_to - sa.literal(1, sa.Integer), end)
    one_day = sa.cast(sa.literal("1 day"), sa.Interval)
    day = sa.cast(sa.func.generate_series(spans.c.valid_from, last, one_day), sa.Date)
    return (
        sa.select(spans.c.cohort, spans.c.currency, spans.c.after.label("mrr"), day.label("day"))
        .where(spans.c.after > 0)
        .cte("held_days")
    )


def _daily(held: FromClause, conv: FromClause) -> Select[Any]:
    """Per (cohort, month): the converted MRR of every held day, and its month-end stock."""
    value = sa.func.round_half_even(held.c.mrr * conv.c.factor)
    month_end = sa.extract("day", held.c.day + sa.literal(1, sa.Integer)) == 1
    month = _month(held.c.day)
    zero = sa.literal(0, sa.BigInteger)
    return (
        sa.select(
            held.c.cohort,
            month.label("month"),
            zero.label("mrr_change"),
            zero.label("active_change"),
            sa.func.sum(value).label("mrr_days"),
            zero.label("joined"),
            sa.func.sum(value).filter(month_end).label("foreign_mrr"),
        )
        .join_from(held, conv, (conv.c.currency == held.c.currency) & (conv.c.day == held.c.day))
        .group_by(held.c.cohort, month)
    )


SUMS = ("mrr_change", "active_change", "mrr_days", "joined", "foreign_mrr")


def _by_month(rows: FromClause, missing: ColumnElement[Any]) -> Select[tuple[object, ...]]:
    def total(name: str) -> ColumnElement[Any]:
        return sa.cast(sa.func.coalesce(sa.func.sum(rows.c[name]), 0), sa.BigInteger).label(name)

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


def _ratio(numerator: int, denominator: int) -> float | None:
    return None if denominator == 0 else float(Fraction(numerator, denominator))


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
            CohortCell(offset, month, active, stock, _ratio(active, size), _ratio(stock, base))
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
        mrr_days = sum(int(row["mrr_days"]) for row in deltas.values())
        ltv = round_half_even(Fraction(mrr_days) / DAYS_PER_MONTH / size) if size else None
        cells = tuple(_cells(cohort, deltas, request.end))
        cohorts.append(Cohort(cohort=cohort, size=size, ltv=ltv, cells=cells))
    return tuple(cohorts)
