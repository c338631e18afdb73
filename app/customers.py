"""Customers: the paginated list and the per-customer facts of METRICS.md 8.

Every per-customer fact is loaded for a whole batch of customers in one statement (the
GraphQL layer's dataloaders call these with the ids of a page), so a page costs a constant
number of queries whatever its size.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on
from sqlalchemy.sql.expression import ColumnElement

from app import cursors, strict
from app.db import Database
from app.errors import InvalidQuery, NotFound, UserError
from app.metrics.cube import Cube, validate
from app.metrics.periods import period_count, periods
from app.metrics.spec import Interval, QuerySpec
from app.metrics.universe import (
    customer_condition,
    customer_mrr,
    segment_cube,
    spec_segment_problems,
    tree_condition,
)
from app.tables import (
    NO_SINCE,
    customer,
    customer_tally,
    movement,
    mrr_change,
    plan,
    subscription,
    subscription_version,
)

MAX_PAGE = 200


class CustomerSort(enum.Enum):
    MRR = "mrr"  # highest first
    NAME = "name"
    CUSTOMER_SINCE = "customer_since"  # oldest first


@dataclass(frozen=True)
class CustomerRow:
    id: int
    external_id: str
    source: str
    name: str | None
    email: str | None
    country: str | None
    customer_since: date | None
    sort_value: Any = None


@dataclass(frozen=True)
class CustomerPage:
    total_count: int
    customers: tuple[CustomerRow, ...]
    cursors: tuple[str, ...]
    has_next_page: bool


@dataclass(frozen=True)
class CustomerQuery:
    search: str | None = None
    first: int = 50
    after: str | None = None
    sort: CustomerSort = CustomerSort.NAME
    at: date = field(default_factory=date.today)
    where: tuple[ColumnElement[bool], ...] = ()  # extra conditions on `customer` (filters)
    count: bool = True  # whether to count the matches (total_count: O(1) for every customer,
    # O(matches) with a search or filter)


@dataclass(frozen=True)
class CustomerState:
    """MRR (in the customer's currency) and churn facts of one customer at a day."""

    mrr: int
    currency: str | None
    status: str  # active | trialing | churned | never_active
    churned_at: date | None
    churned_mrr: int | None


@dataclass(frozen=True)
class SubscriptionFacts:
    id: int
    external_id: str
    plan: str | None
    quantity: int
    interval: str
    status: str
    mrr: int
    currency: str
    started: date
    ended: date | None


@dataclass(frozen=True)
class Activity:
    day: date
    kind: str
    amount: int
    mrr_before: int
    mrr_after: int
    description: str


def sort_key(query: CustomerQuery) -> ColumnElement[Any]:
    match query.sort:
        case CustomerSort.MRR:
            return customer_mrr(customer, sa.literal(query.at, sa.Date))
        case CustomerSort.NAME:
            return sa.func.coalesce(customer.c.name, customer.c.external_id)
        case CustomerSort.CUSTOMER_SINCE:
            return sa.func.coalesce(customer.c.customer_since, sa.literal_column(NO_SINCE, sa.Date))


def search_conditions(search: str | None) -> list[ColumnElement[bool]]:
    """Email exact (case-insensitive), name or external id as a substring: each condition one
    that the trigram index reads where the database has it (app.tables.CUSTOMER_SEARCH_INDEX;
    `=` from pg_trgm 1.6, PostgreSQL 14), so a search costs about its matches."""
    if not search:
        return []
    return [
        sa.or_(
            sa.func.lower(customer.c.email) == search.lower(),
            customer.c.name.icontains(search, autoescape=True),
            customer.c.external_id.icontains(search, autoescape=True),
        )
    ]


def _after(query: CustomerQuery, key: ColumnElement[Any]) -> list[ColumnElement[bool]]:
    """Keyset condition: rows strictly after the cursor in (key, id) order."""
    if not query.after:
        return []
    try:
        value, ident = cursors.decode(query.after, 2)
        last_id = cursors.integer(ident)
        typed: Any = cursors.integer(value) if query.sort is CustomerSort.MRR else value
        if query.sort is CustomerSort.CUSTOMER_SINCE:
            typed = strict.day(value)
    except ValueError:
        raise UserError(
            f"after {query.after!r} is not a cursor for sort {query.sort.name}"
        ) from None
    descending = query.sort is CustomerSort.MRR
    if descending:
        return [sa.or_(key < typed, sa.and_(key == typed, customer.c.id > last_id))]
    return [sa.tuple_(key, customer.c.id) > sa.tuple_(sa.literal(typed), sa.literal(last_id))]


def _stored_mrr_holds(at: ColumnElement[Any]) -> ColumnElement[bool]:
    """The customer's stored current MRR is its MRR at `at` (see app.tables.customer)."""
    return sa.and_(
        sa.or_(customer.c.current_mrr_since.is_(None), customer.c.current_mrr_since <= at),
        sa.or_(customer.c.current_mrr_until.is_(None), customer.c.current_mrr_until > at),
    )


def _by_stored_mrr(query: CustomerQuery, conditions: list[ColumnElement[bool]]) -> sa.Select[Any]:
    """The page by MRR in O(page): the customers whose stored MRR holds at `at` walk the index
    on (-current_mrr, id) from the cursor; the others (a movement since the last recompute, or
    an `at` outside their stored period: few for today, all for a day long past) have theirs
    computed from the movements. Each side gives its first `first + 1` after the cursor, and
    the page is the first of both."""
    at = sa.literal(query.at, sa.Date)
    stored_key = -customer.c.current_mrr
    stored = (
        sa.select(customer, customer.c.current_mrr.label("sort_value"))
        .where(*conditions, _stored_mrr_holds(at))
        .order_by(stored_key, customer.c.id)
        .limit(query.first + 1)
    )
    computed_key = customer_mrr(customer, at)
    computed = (
        sa.select(customer, computed_key.label("sort_value"))
        .where(*conditions, sa.not_(_stored_mrr_holds(at)))
        .order_by(computed_key.desc(), customer.c.id)
        .limit(query.first + 1)
    )
    if query.after:
        value, last_id = _mrr_cursor(query.after)
        stored = stored.where(
            sa.tuple_(stored_key, customer.c.id)
            > sa.tuple_(sa.literal(-value), sa.literal(last_id))
        )
        computed = computed.where(
            sa.or_(computed_key < value, sa.and_(computed_key == value, customer.c.id > last_id))
        )
    both = sa.union_all(stored, computed).subquery("both")
    return sa.select(both).order_by(both.c.sort_value.desc(), both.c.id).limit(query.first + 1)


def _mrr_cursor(after: str) -> tuple[int, int]:
    try:
        value, ident = cursors.decode(after, 2)
        return cursors.integer(value), cursors.integer(ident)
    except ValueError:
        raise UserError(f"after {after!r} is not a cursor for sort MRR") from None


def page_statement(query: CustomerQuery, conditions: list[ColumnElement[bool]]) -> sa.Select[Any]:
    """The page's customers (one more than `first`, to tell whether a next page exists) in the
    sort's order after the cursor; every sort reads an index in order (migrations 0029, 0030
    and app.tables.customer's index on current MRR)."""
    if query.sort is CustomerSort.MRR:
        return _by_stored_mrr(query, conditions)
    key = sort_key(query)
    return (
        sa.select(customer, key.label("sort_value"))
        .where(*conditions, *_after(query, key))
        .order_by(key, customer.c.id)
        .limit(query.first + 1)
    )


async def list_customers(engine: Database, query: CustomerQuery) -> CustomerPage:
    if not 1 <= query.first <= MAX_PAGE:
        raise UserError(f"first must be between 1 and {MAX_PAGE}, not {query.first}")
    conditions = [*search_conditions(query.search), *query.where]
    page = page_statement(query, conditions)
    total = _total(conditions)
    async with engine.connect() as connection:
        rows = (await connection.execute(page)).mappings().all()
        count = int(await connection.scalar(total) or 0) if query.count else 0
    customers = tuple(_customer_row(row) for row in rows[: query.first])
    after = tuple(cursors.encode((c.sort_value, c.id)) for c in customers)
    return CustomerPage(count, customers, after, has_next_page=len(rows) > query.first)


def _total(conditions: list[ColumnElement[bool]]) -> sa.Select[Any]:
    """How many customers match: every customer is the tally the triggers keep (O(1), see
    app.tables.customer_tally); a search or filter counts its matches."""
    if not conditions:
        return sa.select(sa.func.coalesce(sa.func.sum(customer_tally.c.customers), 0))
    return sa.select(sa.func.count()).select_from(customer).where(*conditions)


def _customer_row(row: Any) -> CustomerRow:
    return CustomerRow(
        id=row["id"],
        external_id=row["external_id"],
        source=row["source"],
        name=row["name"],
        email=row["email"],
        country=row["country"],
        customer_since=row["customer_since"],
        sort_value=row.get("sort_value"),
    )


async def customers_by_id(engine: Database, ids: Sequence[int]) -> list[CustomerRow | None]:
    async with engine.connect() as connection:
        rows = await connection.execute(sa.select(customer).where(customer.c.id.in_(ids)))
        found = {row["id"]: _customer_row(row) for row in rows.mappings()}
    return [found.get(ident) for ident in ids]


async def get_customer(engine: Database, ident: int) -> CustomerRow:
    [row] = await customers_by_id(engine, [ident])
    if row is None:
        raise NotFound(f"no customer with id {ident}")
    return row


async def states(engine: Database, ids: Sequence[int], at: date) -> list[CustomerState]:
    """MRR, status and churn facts of many customers, in one statement."""
    last = (
        sa.select(
            movement.c.customer_id,
            movement.c.kind,
            movement.c.before,
            movement.c.after,
            movement.c.day,
            movement.c.currency,
        )
        .where(movement.c.customer_id.in_(ids), movement.c.day <= at)
        .order_by(movement.c.customer_id, movement.c.day.desc())
        .ext(distinct_on(movement.c.customer_id))
    )
    trialing = (
        sa.select(subscription.c.customer_id)
        .join(subscription_version, subscription_version.c.subscription_id == subscription.c.id)
        .where(
            subscription.c.customer_id.in_(ids),
            subscription_version.c.status == "trialing",
            subscription_version.c.valid_from <= at,
            sa.or_(subscription_version.c.valid_to.is_(None), subscription_version.c.valid_to > at),
        )
        .distinct()
    )
    async with engine.connect() as connection:
        latest = {row["customer_id"]: row for row in (await connection.execute(last)).mappings()}
        on_trial = set(await connection.scalars(trialing))
    return [_state(latest.get(ident), ident in on_trial) for ident in ids]


def _state(row: Any, on_trial: bool) -> CustomerState:
    if row is not None and row["after"] > 0:
        return CustomerState(row["after"], row["currency"], "active", None, None)
    if row is not None:
        return CustomerState(0, row["currency"], "churned", row["day"], row["before"])
    return CustomerState(0, None, "trialing" if on_trial else "never_active", None, None)


async def subscriptions_of(
    engine: Database, ids: Sequence[int], at: date
) -> list[list[SubscriptionFacts]]:
    """Each customer's subscriptions: the version in force at `at` (else the last one)."""
    v = subscription_version
    ranked = (
        sa.select(
            subscription.c.customer_id,
            subscription.c.id,
            subscription.c.external_id,
            plan.c.name.label("plan"),
            v.c.quantity,
            v.c.billing_interval,
            v.c.interval_count,
            v.c.status,
            v.c.mrr,
            v.c.currency,
            sa.func.min(v.c.valid_from).over(partition_by=v.c.subscription_id).label("started"),
            sa.case(
                (
                    sa.func.bool_and(v.c.valid_to.is_not(None)).over(
                        partition_by=v.c.subscription_id
                    ),
                    sa.func.max(v.c.valid_to).over(partition_by=v.c.subscription_id),
                )
            ).label("ended"),
            sa.func.row_number()
            .over(
                partition_by=v.c.subscription_id,
                order_by=(sa.case((v.c.valid_from <= at, 0), else_=1), v.c.valid_from.desc()),
            )
            .label("n"),
        )
        .join(v, v.c.subscription_id == subscription.c.id)
        .outerjoin(plan, plan.c.id == v.c.plan_id)
        .where(subscription.c.customer_id.in_(ids))
        .subquery("ranked")
    )
    query = sa.select(ranked).where(ranked.c.n == 1).order_by(ranked.c.started, ranked.c.id)
    by_customer: dict[int, list[SubscriptionFacts]] = {ident: [] for ident in ids}
    async with engine.connect() as connection:
        for row in (await connection.execute(query)).mappings():
            by_customer[row["customer_id"]].append(_subscription(row))
    return [by_customer[ident] for ident in ids]


def _subscription(row: Any) -> SubscriptionFacts:
    count = row["interval_count"]
    interval = row["billing_interval"] if count == 1 else f"{count} {row['billing_interval']}"
    return SubscriptionFacts(
        id=row["id"],
        external_id=row["external_id"],
        plan=row["plan"],
        quantity=row["quantity"],
        interval=interval,
        status=row["status"],
        mrr=row["mrr"],
        currency=row["currency"],
        started=row["started"],
        ended=row["ended"],
    )


async def activities_of(engine: Database, ids: Sequence[int]) -> list[list[Activity]]:
    """Each customer's movements, newest first, described from the plans that changed."""
    changes = (
        sa.select(
            mrr_change.c.customer_id,
            mrr_change.c.day,
            sa.func.array_agg(sa.distinct(sa.func.coalesce(plan.c.name, "(no plan)")))
            .filter(mrr_change.c.delta < 0)
            .label("stopped"),
            sa.func.array_agg(sa.distinct(sa.func.coalesce(plan.c.name, "(no plan)")))
            .filter(mrr_change.c.delta > 0)
            .label("started"),
        )
        .outerjoin(plan, plan.c.id == mrr_change.c.plan_id)
        .where(mrr_change.c.customer_id.in_(ids))
        .group_by(mrr_change.c.customer_id, mrr_change.c.day)
        .subquery("changes")
    )
    query = (
        sa.select(movement, changes.c.stopped, changes.c.started)
        .outerjoin(
            changes,
            sa.and_(
                changes.c.customer_id == movement.c.customer_id, changes.c.day == movement.c.day
            ),
        )
        .where(movement.c.customer_id.in_(ids))
        .order_by(movement.c.customer_id, movement.c.day.desc())
    )
    by_customer: dict[int, list[Activity]] = {ident: [] for ident in ids}
    async with engine.connect() as connection:
        for row in (await connection.execute(query)).mappings():
            by_customer[row["customer_id"]].append(_activity(row))
    return [by_customer[ident] for ident in ids]


def describe(kind: str, stopped: Sequence[str], started: Sequence[str]) -> str:
    """A human sentence for a movement, e.g. "upgraded from Basic to Pro"."""
    left, joined = ", ".join(sorted(stopped)), ", ".join(sorted(started))
    changed_plan = bool(stopped and started and set(stopped) != set(started))
    match kind:
        case "new":
            return f"subscribed to {joined}" if joined else "subscribed"
        case "reactivation":
            return f"reactivated on {joined}" if joined else "reactivated"
        case "churn":
            return f"canceled {left}" if left else "canceled"
        case "expansion" if changed_plan:
            return f"upgraded from {left} to {joined}"
        case "contraction" if changed_plan:
            return f"downgraded from {left} to {joined}"
        case "expansion":
            return f"expanded {joined or left}".strip()
        case _:
            return f"contracted {left or joined}".strip()


def _activity(row: Any) -> Activity:
    description = describe(row["kind"], row["stopped"] or [], row["started"] or [])
    return Activity(
        row["day"], row["kind"], row["amount"], row["before"], row["after"], description
    )


@dataclass(frozen=True)
class MrrAt:
    """A customer's MRR (its currency) at the end of one period."""

    date: datetime.date
    end_date: datetime.date
    mrr: int


@dataclass(frozen=True)
class MrrSeriesRequest:
    start: date
    end: date
    interval: Interval = Interval.MONTH


MAX_CUSTOMER_POINTS = 3_700


def mrr_series_problems(request: MrrSeriesRequest) -> list[str]:
    if request.start > request.end:
        return [f"start {request.start} is after end {request.end}"]
    count = period_count(request.start, request.end, request.interval)
    if count > MAX_CUSTOMER_POINTS:
        return [f"the series would have {count} points; at most {MAX_CUSTOMER_POINTS}"]
    return []


async def mrr_series(
    engine: Database, ids: Sequence[int], request: MrrSeriesRequest
) -> list[list[MrrAt]]:
    """Each customer's MRR at the end of every period of the request: the `after` of its
    latest movement on or before that day (METRICS.md 3), one statement for all of them."""
    if problems := mrr_series_problems(request):
        raise InvalidQuery(problems)
    if not ids:
        return []
    bounds = periods(request.start, request.end, request.interval)
    customers = sa.func.unnest(sa.bindparam("ids", list(ids), ARRAY(sa.BigInteger)))
    days = sa.func.unnest(
        sa.bindparam("a", [a for a, _ in bounds], ARRAY(sa.Date)),
        sa.bindparam("b", [b for _, b in bounds], ARRAY(sa.Date)),
    )
    ids_ = customers.table_valued("customer_id").render_derived("ids")
    days_ = days.table_valued("a", "b").render_derived("days")
    grid = (
        sa.select(ids_.c.customer_id, days_.c.a, days_.c.b)
        .join_from(ids_, days_, sa.true())
        .subquery("grid")
    )
    latest = (
        sa.select(movement.c.after)
        .where(movement.c.customer_id == grid.c.customer_id, movement.c.day <= grid.c.b)
        .order_by(movement.c.day.desc())
        .limit(1)
        .scalar_subquery()
    )
    query = sa.select(grid.c.customer_id, grid.c.a, grid.c.b, sa.func.coalesce(latest, 0))
    by_customer: dict[int, list[MrrAt]] = {ident: [] for ident in ids}
    async with engine.connect() as connection:
        for ident, a, b, mrr in await connection.execute(
            query.order_by(grid.c.customer_id, grid.c.a)
        ):
            by_customer[ident].append(MrrAt(a, b, mrr))
    return [by_customer[ident] for ident in ids]


def spec_conditions(cube: Cube, spec: QuerySpec, at: date) -> list[ColumnElement[bool]]:
    """Metric-spec filters and segment as conditions on `customer`: customer-level dimensions
    directly, the others as "has MRR (ever) in that scope" (e.g. plan = Pro: ever paid for
    Pro)."""
    problems = ["customers take filters, not dimensions"] if spec.dimensions else []
    if spec.compare:
        problems.append("customers take a segment, not compareSegments")
    validate(cube, spec, [*problems, *spec_segment_problems(cube, spec)])
    end = sa.bindparam("customers_at", at, type_=sa.Date)
    conditions = [customer_condition(cube, item, end) for item in spec.filters]
    if spec.segment is not None:
        conditions.append(tree_condition(segment_cube(cube), spec.segment, end))
    return conditions
