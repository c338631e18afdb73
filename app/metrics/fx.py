"""Currency conversion of movements and stocks (METRICS.md 7), in SQL.

Movements are stored in each customer's own currency (a customer has one currency). A query
converts them to the report currency R (the base currency unless `spec.currency` says otherwise):
- a movement on day d converts `before` and `after` at d's rate, so FX alone never moves;
- a stock at day b converts each customer's MRR at b's rate: a query reads the opening stock
  (at start-1's rate) and the movements in range (at their days' rates), and a *revaluation*
  term per point adds, for customers not billed in R, the difference between their MRR at b's
  rate and the running sum of their converted rows;
- `fixFx` converts everything at the rate of the first point's date (revaluation is then 0).
The rate of a day is the latest rate on or before it. Rates are looked up only for the days a
query reads (start-1, movement days in range, point ends); a missing one is reported by name.
Converted amounts are rounded half to even per customer, so every total is a sum of integers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.expression import ColumnElement, FromClause, Select

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


MOVEMENT_COLUMNS = ("day", "kind", "before", "after", "amount", "currency", "prev_day", "next_day")


def as_of(mv: FromClause, groups: list[str], start: date, end: ColumnElement[Any]) -> FromClause:
    """The movements a query over [start, end] reads, ready to convert: each customer's state
    at start-1 as one `opening` row on that day (the `after` of its last movement before
    start, when positive), then its movements in range. The opening stock converts at
    start-1's rate, as METRICS.md 7 says a stock does, so no rate is looked up for a day before
    start-1 or after end."""
    first = sa.bindparam("start", start, type_=sa.Date)
    opening_day = first - sa.literal(1, sa.Integer)
    keys = [mv.c.customer_id, *(mv.c[g] for g in groups)]
    opening = sa.select(
        *keys,
        opening_day.label("day"),
        sa.literal("opening", sa.Text).label("kind"),
        sa.literal(0, sa.BigInteger).label("before"),
        mv.c.after,
        mv.c.after.label("amount"),
        mv.c.currency,
        sa.cast(sa.null(), sa.Date).label("prev_day"),
        mv.c.next_day,
    ).where(
        mv.c.day < first,
        sa.or_(mv.c.next_day.is_(None), mv.c.next_day >= first),
        mv.c.after > 0,
    )
    in_range = sa.select(*keys, *(mv.c[name] for name in MOVEMENT_COLUMNS)).where(
        mv.c.day.between(first, end)
    )
    return sa.union_all(opening, in_range).cte("as_of")


def movement_days(mv: FromClause, report: str) -> Select[Any]:
    """(currency, day) of every movement not in the report currency."""
    return sa.select(mv.c.currency, mv.c.day).where(mv.c.currency != report).distinct()


def point_days(mv: FromClause, report: str, ends: FromClause) -> Select[Any]:
    """(currency, b) for every point end b in `ends` on or after the currency's first movement
    (a stock needs the rate of b only once some customer of that currency may hold MRR)."""
    first = (
        sa.select(mv.c.currency, sa.func.min(mv.c.day).label("first"))
        .where(mv.c.currency != report)
        .group_by(mv.c.currency)
        .subquery("fx_first")
    )
    return sa.select(first.c.currency, ends.c.b.label("day")).join_from(
        first, ends, ends.c.b >= first.c.first
    )


def conversion_table(
    days: Select[Any] | sa.CompoundSelect[Any], currencies: Currencies
) -> FromClause:
    """(currency, day, factor, lacking, on) for the (currency, day) pairs a query needs:
    `factor` converts an amount of `currency` on `day` to R; when a rate is missing it is
    NULL and `lacking` names the currency without a rate on or before `on`."""
    needed = days.subquery("fx_days")
    on: ColumnElement[Any] = needed.c.day
    if currencies.fixed_on is not None:
        on = sa.bindparam("fx_fixed_on", currencies.fixed_on, type_=sa.Date)
    report = sa.literal(currencies.report)
    rates = sa.select(
        needed.c.currency,
        needed.c.day,
        on.label("on"),
        _rate_on(needed.c.currency, on, currencies.base).label("rate"),
        _rate_on(report, on, currencies.base).label("report_rate"),
    ).subquery("fx_rates")
    lacking = sa.case(
        (rates.c.rate.is_(None), rates.c.currency),
        (rates.c.report_rate.is_(None), report),
    )
    return sa.select(
        rates.c.currency,
        rates.c.day,
        (rates.c.rate / rates.c.report_rate).label("factor"),
        lacking.label("lacking"),
        rates.c.on,
    ).cte("fx")


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
        )
        .outerjoin_from(mv, conv, joined)
        .cte("cmv")
    )


def missing_rate(conv: FromClause) -> ColumnElement[Any]:
    """'CUR YYYY-MM-DD' of the earliest needed day without a rate, else NULL (one scalar)."""
    return (
        sa.select(conv.c.lacking + " " + sa.cast(conv.c.on, sa.Text))
        .where(conv.c.lacking.is_not(None))
        .order_by(conv.c.on, conv.c.lacking)
        .limit(1)
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
