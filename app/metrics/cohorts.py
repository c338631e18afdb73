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
from sqlalchemy.sql.expression import ColumnElement, Select

from app.metrics.cube import Cube
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


def compile_cohorts(cube: Cube, request: CohortRequest) -> Select[tuple[object, ...]]:
    """Per (cohort, movement month): the members' MRR change, active-count change and the
    day-weighted MRR for realized LTV; plus each cohort's size."""
    start: ColumnElement[Any] = sa.bindparam("start", request.start, type_=sa.Date)
    end: ColumnElement[Any] = sa.bindparam("end", request.end, type_=sa.Date)
    mv = movement_source(cube, request.spec, end)
    month = _month(mv.c.day)
    members = (
        sa.select(mv.c.customer_id, month.label("cohort"))
        .where(mv.c.kind == "new", month.between(_month(start), end))
        .cte("members")
    )
    active = sa.case((mv.c.after > 0, 1), else_=0) - sa.case((mv.c.before > 0, 1), else_=0)
    days_left = end - mv.c.day + 1
    return (
        sa.select(
            members.c.cohort,
            month.label("month"),
            sa.cast(sa.func.sum(mv.c.amount), sa.BigInteger).label("mrr_change"),
            sa.cast(sa.func.sum(active), sa.BigInteger).label("active_change"),
            sa.cast(sa.func.sum(mv.c.amount * days_left), sa.BigInteger).label("mrr_days"),
            sa.func.count(sa.distinct(mv.c.customer_id)).filter(mv.c.kind == "new").label("joined"),
        )
        .join_from(mv, members, members.c.customer_id == mv.c.customer_id)
        .where(mv.c.day <= end)
        .group_by(members.c.cohort, month)
        .order_by(members.c.cohort, month)
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
        if row:
            mrr += int(row["mrr_change"])
            active += int(row["active_change"])
        base = cells[0].mrr if cells else mrr
        cells.append(
            CohortCell(offset, month, active, mrr, _ratio(active, size), _ratio(mrr, base))
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
