"""Movement detail: who churned (logo churn), every revenue-churn movement, and the movements
of any kinds behind a chart's bar (drill-down), paginated.

Events are the movements of METRICS.md 3 of the requested kinds (`churn`; `churn` and
`contraction` for revenue churn) in the spec's scope, with amounts in the report currency
converted on their day (METRICS.md 7), so they add up to the series' field of that kind. Pages
are keyset-paginated on (day, customer id): stable while data is added elsewhere.

The totals read the rollups' day rows when they answer the spec exactly (`totals_slice`): in
one day a customer has at most one movement in any scope, so a day row's `<kind>_customers`
counts that day's movements of the kind and its `<kind>` sums their amounts. At a million
customers a year's totals summed from the movements took 0.4 s; from the day rows, a few
hundred rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.expression import ColumnElement, Select

from app import cursors
from app.errors import UserError
from app.ids import bigint
from app.metrics.cube import Cube
from app.metrics.fx import (
    Currencies,
    conversion_table,
    converted_movements,
    missing_rate,
    movement_days,
)
from app.metrics.mrr import KINDS, NO_VALUE, Scope, Within, movement_source
from app.metrics.rollup import Slice, spec_slice, unconverted
from app.metrics.spec import Interval, QuerySpec
from app.tables import customer, mrr_change, plan, rollup

LOGO = ("churn",)
REVENUE = ("churn", "contraction")
# the sign of each kind's amount: a churn or a contraction lowers MRR, the others raise it
SIGNS = {"new": 1, "expansion": 1, "reactivation": 1, "contraction": -1, "churn": -1}
MAX_PAGE = 500


@dataclass(frozen=True)
class Cursor:
    day: date
    customer_id: int

    def encode(self) -> str:
        return cursors.encode((self.day, self.customer_id))

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            day, customer_id = cursors.decode(text, 2)
            return cls(date.fromisoformat(day), bigint(customer_id))
        except ValueError:
            raise UserError(f"after {text!r} is not a cursor returned by this field") from None


@dataclass(frozen=True)
class ChurnRequest:
    start: date
    end: date
    spec: QuerySpec = field(default_factory=QuerySpec)
    kinds: tuple[str, ...] = REVENUE
    first: int = 50
    after: Cursor | None = None


@dataclass(frozen=True)
class ChurnEvent:
    customer_id: int
    external_id: str
    name: str | None
    day: date
    kind: str
    amount: int
    mrr_before: int
    mrr_after: int
    plans: tuple[str, ...]  # the plans whose MRR moved that day the way the movement did
    cursor: str


@dataclass(frozen=True)
class ChurnPage:
    total_count: int
    total_amount: int
    events: tuple[ChurnEvent, ...]
    end_cursor: str | None
    has_next_page: bool


def request_problems(request: ChurnRequest) -> list[str]:
    problems = []
    if request.start > request.end:
        problems.append(f"start {request.start} is after end {request.end}")
    if request.spec.dimensions or request.spec.compare:
        problems.append("movement detail takes filters, not dimensions or compareSegments")
    unknown = sorted(set(request.kinds) - set(KINDS))
    if unknown or not request.kinds:
        problems.append(
            f"kinds {', '.join(unknown) or '(none)'} not accepted; kinds: {', '.join(KINDS)}"
        )
    if not 1 <= request.first <= MAX_PAGE:
        problems.append(f"first must be between 1 and {MAX_PAGE}, not {request.first}")
    return problems


def _plans_moved(
    customer_id: ColumnElement[Any], day: ColumnElement[Any], amount: ColumnElement[Any]
) -> Any:
    """The plans whose MRR stopped or shrank (a loss) or started or grew (a gain) that day."""
    name = sa.func.coalesce(plan.c.name, NO_VALUE)
    same_way = sa.or_(
        sa.and_(amount < 0, mrr_change.c.delta < 0), sa.and_(amount > 0, mrr_change.c.delta > 0)
    )
    return (
        sa.select(sa.func.array_agg(sa.distinct(name)))
        .select_from(mrr_change)
        .outerjoin(plan, plan.c.id == mrr_change.c.plan_id)
        .where(
            mrr_change.c.customer_id == customer_id,
            mrr_change.c.day == day,
            same_way,
        )
        .scalar_subquery()
    )


def _events(
    cube: Cube, request: ChurnRequest, currencies: Currencies, last: date | None = None
) -> Any:
    """The matching movements in the report currency, and the missing-rate probe (rates are
    looked up for the events' days only). `last`: only those up to that day (a page's)."""
    end = sa.bindparam("end", request.end, type_=sa.Date)
    start = sa.bindparam("start", request.start, type_=sa.Date)
    until = end if last is None else sa.bindparam("until", last, type_=sa.Date)
    signs = {SIGNS[kind] for kind in request.kinds}
    sign = signs.pop() if len(signs) == 1 else 0
    mv = movement_source(cube, request.spec, end, within=Within(start, until, sign))
    events = (
        sa.select(mv)
        .where(mv.c.kind.in_(request.kinds), mv.c.day.between(start, until))
        .subquery("events")
    )
    if not currencies.needs_conversion:
        return events, sa.null()
    conv = conversion_table(movement_days(events, currencies.report), currencies)
    return converted_movements(events, conv, [], currencies.report), missing_rate(conv)


def compile_totals(cube: Cube, request: ChurnRequest, currencies: Currencies) -> Select[Any]:
    events, missing = _events(cube, request, currencies)
    return sa.select(
        sa.func.count().label("total_count"),
        sa.func.coalesce(sa.func.sum(events.c.amount), 0).label("total_amount"),
        missing.label("fx_missing"),
    ).select_from(events)


def totals_slice(
    request: ChurnRequest, currencies: Currencies, rolled: frozenset[str]
) -> Slice | None:
    """The rollup rows whose day rows give the totals exactly, or None (sum the movements):
    the spec's slice (the total, or one EQ filter on a rolled-up dimension), and no amount to
    convert unless the slice is the report currency's own."""
    where = spec_slice(request.spec, rolled)
    if where is None or where.value is None:  # (None: a breakdown, which the checks refuse)
        return None
    return unconverted(where, currencies, counts_only=False)


def _day_rows(request: ChurnRequest, where: Slice) -> ColumnElement[bool]:
    """The slice's day rows of the request's range."""
    return sa.and_(
        rollup.c.interval == Interval.DAY.value,
        rollup.c.dimension == where.dimension,
        rollup.c.value == where.value,
        rollup.c.k.between(
            sa.bindparam("start", request.start, type_=sa.Date),
            sa.bindparam("end", request.end, type_=sa.Date),
        ),
    )


def _day_events(request: ChurnRequest) -> ColumnElement[int]:
    """A day row's count of the request's events (its movements of those kinds)."""
    return sum((rollup.c[f"{kind}_customers"] for kind in request.kinds), sa.literal(0))


def compile_rollup_totals(request: ChurnRequest, where: Slice) -> Select[Any]:
    """`compile_totals` from the day rows of the slice (`totals_slice`)."""
    amount = sum((rollup.c[kind] for kind in request.kinds), sa.literal(0))
    return sa.select(
        sa.cast(sa.func.coalesce(sa.func.sum(_day_events(request)), 0), sa.BigInteger).label(
            "total_count"
        ),
        sa.func.coalesce(sa.func.sum(amount), 0).label("total_amount"),
        sa.null().label("fx_missing"),
    ).where(_day_rows(request, where))


def derives_page(cube: Cube, request: ChurnRequest) -> bool:
    """Whether the page's movements are derived from the ledger at query time."""
    return Scope(cube, request.spec, sa.bindparam("end", request.end, type_=sa.Date)).derives


def compile_page_end(request: ChurnRequest, where: Slice) -> Select[Any]:
    """The first day by which the slice's day rows count more events after the cursor's day
    (or from the start) than the page shows, or NULL if the range has no such day: the page's
    events are all on or before it. A page whose movements are derived from the ledger derives
    them for the customers whose ledger changed up to that day only (at a million customers,
    a year's first page of churn on monthly plans needs the first day's, not the year's)."""
    after = request.after.day if request.after is not None else None
    running = sa.func.sum(_day_events(request)).over(order_by=rollup.c.k)
    days = (
        sa.select(rollup.c.k, running.label("running"))
        .where(_day_rows(request, where), *([rollup.c.k > after] if after is not None else []))
        .subquery("days")
    )
    return sa.select(sa.func.min(days.c.k)).where(days.c.running > request.first)


def compile_page(
    cube: Cube, request: ChurnRequest, currencies: Currencies, last: date | None = None
) -> Select[Any]:
    """One page of events after the cursor, ordered by (day, customer id); `last`: a day on or
    before which the page's events all are (`compile_page_end`)."""
    events, _ = _events(cube, request, currencies, last)
    page = sa.select(events)
    if request.after is not None:
        after = sa.tuple_(
            sa.bindparam("after_day", request.after.day, type_=sa.Date),
            sa.bindparam("after_customer", request.after.customer_id, type_=sa.BigInteger),
        )
        page = page.where(sa.tuple_(events.c.day, events.c.customer_id) > after)
    order = (events.c.day, events.c.customer_id)
    limited = page.order_by(*order).limit(request.first + 1).subquery("page")
    return (
        sa.select(
            limited,
            customer.c.external_id,
            customer.c.name,
            _plans_moved(limited.c.customer_id, limited.c.day, limited.c.amount).label("plans"),
        )
        .join_from(limited, customer, customer.c.id == limited.c.customer_id)
        .order_by(limited.c.day, limited.c.customer_id)
    )


def build_page(rows: Sequence[Any], totals: Any, request: ChurnRequest) -> ChurnPage:
    events = tuple(
        ChurnEvent(
            customer_id=row["customer_id"],
            external_id=row["external_id"],
            name=row["name"],
            day=row["day"],
            kind=row["kind"],
            amount=row["amount"],
            mrr_before=row["before"],
            mrr_after=row["after"],
            plans=tuple(sorted(row["plans"] or ())),
            cursor=Cursor(row["day"], row["customer_id"]).encode(),
        )
        for row in rows[: request.first]
    )
    return ChurnPage(
        total_count=int(totals["total_count"]),
        total_amount=int(totals["total_amount"]),
        events=events,
        end_cursor=events[-1].cursor if events else None,
        has_next_page=len(rows) > request.first,
    )
