"""Currency conversion of movements and stocks (METRICS.md 7), in SQL.

Movements are stored in each customer's own currency (a customer has one currency). A query
converts them to the report currency R (the base currency unless `spec.currency` says otherwise):
- a movement on day d converts `before` and `after` at d's rate, so FX alone never moves;
- a stock at day b converts each customer's MRR at b's rate: the flows carry movement-day rates,
  and a *revaluation* term per point adds, for customers not billed in R, the difference between
  their MRR at b's rate and at the rate of their last movement;
- `fixFx` converts everything at the rate of the first point's date (revaluation is then 0).
The rate of a day is the latest rate on or before it; a missing one is reported by name.
Converted amounts are rounded half to even per customer, so every total is a sum of integers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.expression import ColumnElement, FromClause

from app.tables import fx_rate


@dataclass(frozen=True)
class Currencies:
    base: str
    report: str
    fixed_on: date | None  # fixFx: every conversion at this day's rate
    present: frozenset[str] = frozenset()  # currencies the ledger holds

    @property
    def needs_conversion(self) -> bool:
        return any(currency != self.report for currency in self.present)


def _rate_on(
    currency: ColumnElement[Any], day: ColumnElement[Any], base: str
) -> ColumnElement[Any]:
    """Base-currency value of one unit of `currency` on `day` (latest rate on or before it)."""
    latest = (
        sa.select(fx_rate.c.rate)
        .where(fx_rate.c.currency == currency, fx_rate.c.day <= day)
        .order_by(fx_rate.c.day.desc())
        .limit(1)
        .scalar_subquery()
    )
    return sa.case((currency == base, sa.literal(1, sa.Numeric)), else_=latest)


def conversion_table(mv: FromClause, currencies: Currencies, end: ColumnElement[Any]) -> FromClause:
    """(currency, day, factor) for every currency other than R, from its first movement to end."""
    needed = (
        sa.select(mv.c.currency, sa.func.min(mv.c.day).label("first"))
        .where(mv.c.currency != currencies.report)
        .group_by(mv.c.currency)
        .subquery("fx_needed")
    )
    day = sa.cast(
        sa.func.generate_series(
            sa.func.least(needed.c.first, end), end, sa.cast(sa.literal("1 day"), sa.Interval)
        ),
        sa.Date,
    )
    days = sa.select(needed.c.currency, day.label("day")).subquery("fx_days")
    on = days.c.day
    if currencies.fixed_on is not None:
        on = sa.bindparam("fx_fixed_on", currencies.fixed_on, type_=sa.Date)
    report = sa.literal(currencies.report)
    factor = _rate_on(days.c.currency, on, currencies.base) / _rate_on(report, on, currencies.base)
    return sa.select(days.c.currency, days.c.day, factor.label("factor")).cte("fx")


def convert(
    value: ColumnElement[Any], currency: ColumnElement[Any], factor: ColumnElement[Any], report: str
) -> ColumnElement[Any]:
    return sa.case(
        (currency == report, value),
        else_=sa.func.round_half_even(value * factor),
    )


def converted_movements(
    mv: FromClause, conv: FromClause, groups: list[str], report: str
) -> FromClause:
    """The movement rows with before/after/amount in R (originals kept as *_orig)."""
    joined = sa.and_(conv.c.currency == mv.c.currency, conv.c.day == mv.c.day)
    before = convert(mv.c.before, mv.c.currency, conv.c.factor, report)
    after = convert(mv.c.after, mv.c.currency, conv.c.factor, report)
    return (
        sa.select(
            mv.c.customer_id,
            *(mv.c[g] for g in groups),
            mv.c.day,
            mv.c.kind,
            mv.c.currency,
            sa.cast(before, sa.BigInteger).label("before"),
            sa.cast(after, sa.BigInteger).label("after"),
            sa.cast(after - before, sa.BigInteger).label("amount"),
            mv.c.after.label("after_orig"),
            mv.c.prev_day,
            mv.c.next_day,
            (conv.c.factor.is_(None) & (mv.c.currency != report)).label("fx_missing"),
        )
        .outerjoin_from(mv, conv, joined)
        .cte("cmv")
    )


def missing_rate(cmv: FromClause) -> ColumnElement[Any]:
    """'CUR YYYY-MM-DD' of the first movement without a rate, else NULL (one scalar)."""
    return (
        sa.select(sa.func.min(cmv.c.currency + " " + sa.cast(cmv.c.day, sa.Text)))
        .where(cmv.c.fx_missing)
        .scalar_subquery()
    )


def revaluation(
    cmv: FromClause, conv: FromClause, groups: list[str], ends: FromClause, report: str, name: str
) -> FromClause:
    """Per (group, point) in `ends` (columns k, b): sum over customers not billed in R of
    (MRR at b's rate - the running sum of their converted movements), which turns the running
    sum of flows into the stock at b's rate (also for churned customers, whose converted
    movements need not net to zero)."""
    partition = [cmv.c.customer_id, *(cmv.c[g] for g in groups)]

    def by_day(function: sa.sql.functions.Function[Any]) -> ColumnElement[Any]:
        return function.over(partition_by=partition, order_by=cmv.c.day)

    spans = (
        sa.select(
            *(cmv.c[g] for g in groups),
            cmv.c.currency,
            cmv.c.day.label("valid_from"),
            by_day(sa.func.lead(cmv.c.day)).label("valid_to"),
            by_day(sa.func.sum(cmv.c.amount)).label("flows"),
            cmv.c.after_orig,
        )
        .where(cmv.c.currency != report)
        .subquery(f"{name}_spans")
    )
    holds = sa.and_(
        spans.c.valid_from <= ends.c.b,
        sa.or_(spans.c.valid_to.is_(None), spans.c.valid_to > ends.c.b),
    )
    at_b = sa.func.round_half_even(spans.c.after_orig * conv.c.factor)
    return (
        sa.select(
            *(spans.c[g] for g in groups),
            ends.c.k,
            sa.cast(sa.func.sum(at_b - spans.c.flows), sa.BigInteger).label("reval"),
        )
        .join_from(spans, ends, holds)
        .join(conv, sa.and_(conv.c.currency == spans.c.currency, conv.c.day == ends.c.b))
        .group_by(*(spans.c[g] for g in groups), ends.c.k)
        .subquery(name)
    )


def day_before(day: date) -> date:
    return day - timedelta(days=1)
