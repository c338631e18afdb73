"""MRR family (METRICS.md 3-4): the cube and the series compiler.

The compiler takes a frozen `SeriesRequest` and returns one SQL statement; it does no I/O.
Rows come back per (group, period) with integer aggregates; `app.metrics.points` turns them into
Point values (ratios, rounding).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.expression import ColumnElement, FromClause, Select

from app.metrics.cube import Cube, Dimension, Level, Sources, dimension_condition
from app.metrics.fx import (
    Currencies,
    as_of,
    conversion_table,
    converted_movements,
    missing_rate,
    movement_days,
    point_days,
    revaluation,
)
from app.metrics.periods import period_end, period_start
from app.metrics.regions import COUNTRY_REGION, OTHER, REGIONS
from app.metrics.spec import FilterOp, Interval, QuerySpec, SeriesRequest
from app.metrics.universe import branch_specs, universe
from app.movements import ALONE_BITS, movements_from_changes
from app.tables import customer, movement, movement_scope, mrr_change, plan

NO_VALUE = "(none)"
KINDS = ("new", "expansion", "contraction", "churn", "reactivation")
# Point fields that need per-customer aggregation inside a period.
CUSTOMER_FIELDS = frozenset(
    {f"{kind}_customers" for kind in KINDS}
    | {"churned_customers", "customer_churn_rate", "customer_retention_rate", "nrr", "grr", "asp"}
)

# Point fields that count customers and read no money: a request for only these needs no rate
# (the LTV's churn history is one).
COUNT_FIELDS = frozenset(
    {f"{kind}_customers" for kind in KINDS}
    | {"date", "end_date", "customers", "customers_diff", "churned_customers"}
    | {"customer_churn_rate", "customer_retention_rate"}
)

AGE_BUCKETS = ("0-6", "6-12", "12-24", "24+")


AGE_MONTHS = (6, 12, 24)  # where the buckets part


def customer_age(since: ColumnElement[Any], end: ColumnElement[Any]) -> ColumnElement[Any]:
    """The MRR-timeline age bucket of a customer whose first `new` was on `since`.

    The age in months is that of PostgreSQL's `age(end, since)`: whole months, a month less when
    `end`'s day of the month is before `since`'s. A customer is thus at least k months old
    exactly when `since` is on or before `end - k months` (the day clamped to the month's last,
    as PostgreSQL subtracts months). Each bound is a one-row subquery on the query's `end`, so
    PostgreSQL computes it once (an InitPlan) and a scan compares dates per row instead of
    calling `age()` and two `extract`s. tests/test_dimensions.py holds the two rules equal
    over every day of several years."""
    younger = [
        since
        > sa.select(
            sa.cast(end - sa.cast(sa.literal(f"{months} months"), sa.Interval), sa.Date)
        ).scalar_subquery()
        for months in AGE_MONTHS
    ]
    return sa.case(
        (since.is_(None), sa.null()),
        *((condition, bucket) for condition, bucket in zip(younger, AGE_BUCKETS, strict=False)),
        else_=AGE_BUCKETS[-1],
    )


# Where a customer is: dimensions every cube over customers offers (MRR, usage).
CUSTOMER_COUNTRY = Dimension(
    "customer_country",
    "Customer's country (ISO 3166 alpha-2)",
    Level.CUSTOMER,
    lambda s: s.customer.c.country,
    reads_customer=True,
)
REGION = Dimension(
    "region",
    f"Sales region of the customer's country: {', '.join(REGIONS)}",
    Level.CUSTOMER,
    lambda s: sa.case(COUNTRY_REGION, value=s.customer.c.country, else_=OTHER),
    reads_customer=True,
)

MRR_CUBE = Cube(
    name="mrr",
    description="Monthly recurring revenue, its movements and churn (METRICS.md 3-4).",
    dimensions=(
        Dimension(
            "plan",
            "Plan name of the subscription",
            Level.SUBSCRIPTION,
            lambda s: s.plan.c.name,
            needs_plan=True,
            materialized=True,
        ),
        Dimension(
            "currency",
            "Currency the customer is billed in (one per customer)",
            Level.CUSTOMER,
            lambda s: s.rows.c.currency,
        ),
        Dimension(
            "plan_interval",
            "Billing frequency: day, week, month, year, or e.g. '3 month'",
            Level.SUBSCRIPTION,
            lambda s: s.rows.c.plan_interval,
        ),
        CUSTOMER_COUNTRY,
        REGION,
        Dimension(
            "customer_age",
            "Months from the customer's first `new` to the end of the range: "
            f"{', '.join(AGE_BUCKETS)}",
            Level.CUSTOMER,
            lambda s: customer_age(s.customer.c.customer_since, s.end),
            reads_customer=True,
        ),
        Dimension(
            "status",
            "Subscription status while it earns MRR: active or past_due",
            Level.SUBSCRIPTION,
            lambda s: s.rows.c.status,
        ),
        Dimension(
            "pricing_model",
            "How the subscription is priced: flat, per_unit or tiered",
            Level.SUBSCRIPTION,
            lambda s: s.rows.c.pricing_model,
        ),
        Dimension(
            "product",
            "Product of the plan (sources with products, e.g. Stripe)",
            Level.SUBSCRIPTION,
            lambda s: s.plan.c.product,
            needs_plan=True,
        ),
        Dimension(
            "collection_method",
            "How the subscription is paid: charge_automatically or send_invoice",
            Level.SUBSCRIPTION,
            lambda s: s.rows.c.collection_method,
        ),
    ),
)


@dataclass(frozen=True)
class Scope:
    """Which dimensions the request uses, and so where its movements come from."""

    cube: Cube
    spec: QuerySpec
    end: ColumnElement[Any]  # the query's `end` parameter (time-relative dimensions read it)

    def used(self) -> list[Dimension]:
        names = [*self.spec.dimensions, *(item.field for item in self.spec.filters)]
        return [self.cube.dimension(name) for name in dict.fromkeys(names)]

    @property
    def subscription_level(self) -> list[Dimension]:
        return [d for d in self.used() if d.level is Level.SUBSCRIPTION]

    @property
    def needs_customer(self) -> bool:
        """Whether the rows are joined with their customer's row (an attribute is read by the
        rows' customer id)."""
        return any(d.reads_customer and not d.keyed_by_customer for d in self.used())

    @property
    def derives(self) -> bool:
        """Whether its movements are derived from the ledger at query time (no stored ones)."""
        return bool(self.subscription_level) and self.materialized() is None

    def materialized(self) -> Dimension | None:
        """The one subscription-level dimension whose per-value movements are stored, when
        the spec breaks down by it (without filtering it) or filters it with one EQ."""
        if len(self.subscription_level) != 1 or not self.subscription_level[0].materialized:
            return None
        dimension = self.subscription_level[0]
        filters = [f for f in self.spec.filters if f.field == dimension.name]
        as_breakdown = self.spec.dimensions.count(dimension.name) == 1 and not filters
        as_one_value = (
            dimension.name not in self.spec.dimensions
            and len(filters) == 1
            and filters[0].op is FilterOp.EQ
        )
        return dimension if as_breakdown or as_one_value else None


def group_names(spec: QuerySpec) -> list[str]:
    return [f"g{index}" for index in range(len(spec.groups))]


Expressions = dict[str, ColumnElement[Any]]


def expressions_for(scope: Scope, rows: FromClause, override: Expressions) -> Expressions:
    """SQL of each dimension the spec uses, reading `rows` (or as overridden)."""
    sources = Sources(rows=rows, plan=plan, customer=customer, end=scope.end)
    return {d.name: override.get(d.name, d.expression(sources)) for d in scope.used()}


def group_columns(spec: QuerySpec, expressions: Expressions) -> list[ColumnElement[str]]:
    return [
        sa.func.coalesce(sa.cast(expressions[name], sa.Text), NO_VALUE).label(label)
        for name, label in zip(spec.dimensions, group_names(spec), strict=True)
    ]


def where_clauses(
    scope: Scope, spec: QuerySpec, rows: FromClause, override: Expressions
) -> list[ColumnElement[bool]]:
    """The spec's filters over `rows` (a dimension in `override` is filtered on that
    expression, e.g. a stored value column)."""
    sources = Sources(rows=rows, plan=plan, customer=customer, end=scope.end)
    return [
        dimension_condition(
            scope.cube.dimension(item.field), sources, item, override.get(item.field)
        )
        for item in spec.filters
    ]


@dataclass(frozen=True)
class Within:
    """What a caller of `movement_source` reads: movements from `first` to `last` only and,
    where `sign` is not 0, only those whose amount has that sign (-1: churn and contraction,
    +1: new, expansion and reactivation)."""

    first: ColumnElement[Any]
    last: ColumnElement[Any]
    sign: int = 0


def movement_source(
    cube: Cube,
    spec: QuerySpec,
    end: ColumnElement[Any],
    name: str = "mv",
    within: Within | None = None,
) -> FromClause:
    """Movement rows (customer_id, g0.., day, kind, before, after, amount, currency, prev_day,
    next_day) in the spec's scope, in each customer's own currency. Three sources, one rule:
    the stored customer movements (customer-level dimensions only), the stored per-value
    movements of one dimension (movement_scope), or movements derived here from the ledger.
    Compared segments are branches of a union: a customer in two segments is in both.

    `within`: the caller reads no movement outside those days (nor of the other sign), so
    movements derived from the ledger are derived for the customers whose ledger in the spec's
    scope changed in them only (`_changed_within`); each keeps its whole history, so the rows
    read are exact."""
    if spec.compare:
        return _compared(cube, spec, end, name, within)
    scope = Scope(cube, spec, end)
    materialized = scope.materialized()
    if not scope.subscription_level:
        return _stored(movement, spec, scope, {}, name)
    if materialized is not None:
        stored = (
            sa.select(movement_scope)
            .where(movement_scope.c.dimension == materialized.name)
            .subquery("scoped")
        )
        value = sa.func.nullif(stored.c.value, NO_VALUE)
        return _stored(stored, spec, scope, {materialized.name: value}, name)
    return _derived(cube, spec, scope, name, within)


def _compared(
    cube: Cube, spec: QuerySpec, end: ColumnElement[Any], name: str, within: Within | None
) -> FromClause:
    """The union of each compared segment's movements, its name as the first group `g0`."""
    branches = []
    for index, branch in enumerate(branch_specs(spec)):
        branches.append(
            (
                movement_source(cube, branch, end, f"{name}_{index}", within),
                group_names(branch),
            )
        )
    # the columns every branch has (a branch derived from the ledger has no `alone`)
    shared = set.intersection(*({c.key for c in rows.c} for rows, _ in branches))
    return sa.union_all(
        *(
            sa.select(
                sa.literal(segment.name, sa.Text).label("g0"),
                *(rows.c[g].label(f"g{i + 1}") for i, g in enumerate(dimensions)),
                *(c for c in rows.c if c.key not in dimensions and c.key in shared),
            )
            for segment, (rows, dimensions) in zip(spec.compare, branches, strict=True)
        )
    ).subquery(name)


def _stored(
    rows: FromClause, spec: QuerySpec, scope: Scope, override: Expressions, name: str
) -> FromClause:
    expressions = expressions_for(scope, rows, override)
    query = sa.select(rows, *group_columns(spec, expressions)).where(
        *where_clauses(scope, spec, rows, override),
        *universe(scope.cube, spec, rows.c.customer_id, scope.end),
    )
    if scope.needs_customer:
        query = query.join_from(rows, customer, customer.c.id == rows.c.customer_id)
    return grouping_joins(query, scope, rows).subquery(name)


def grouping_joins(query: Select[Any], scope: Scope, rows: FromClause) -> Select[Any]:
    """Outer-join the tables that the breakdown's dimensions read (after the customer)."""
    sources = Sources(rows=rows, plan=plan, customer=customer, end=scope.end)
    for name in scope.spec.dimensions:
        dimension = scope.cube.dimension(name)
        if dimension.join is not None:
            table, on = dimension.join(sources)
            query = query.outerjoin(table, on)
    return query


def _changed_within(scope: Scope, spec: QuerySpec, within: Within) -> ColumnElement[bool]:
    """The ledger's rows of the customers who may have a movement `within` reads: a movement
    in the scope is a day's nonzero net change of the customer's ledger rows in that scope, so
    it needs a row on that day matching the spec's subscription-level filters, and one of its
    amount's sign (read by the day index; customer-level filters and segments are left to the
    caller's own conditions: a wider set of customers, never a narrower one)."""
    changed, changed_plan = mrr_change.alias("changed"), plan.alias("changed_plan")
    sources = Sources(rows=changed, plan=changed_plan, customer=customer, end=scope.end)
    filters = [
        (dimension, item)
        for item in spec.filters
        if (dimension := scope.cube.dimension(item.field)).level is Level.SUBSCRIPTION
        and not dimension.reads_customer
    ]
    rows: FromClause = changed
    if any(dimension.needs_plan for dimension, _ in filters):
        rows = changed.outerjoin(changed_plan, changed_plan.c.id == changed.c.plan_id)
    signs = {-1: [changed.c.delta < 0], 0: [], 1: [changed.c.delta > 0]}
    return mrr_change.c.customer_id.in_(
        sa.select(changed.c.customer_id)
        .select_from(rows)
        .where(
            changed.c.day.between(within.first, within.last),
            *signs[within.sign],
            *(dimension_condition(dimension, sources, item) for dimension, item in filters),
        )
    )


def _derived(
    cube: Cube, spec: QuerySpec, scope: Scope, name: str, within: Within | None = None
) -> FromClause:
    expressions = expressions_for(scope, mrr_change, {})
    changes = sa.select(
        mrr_change.c.customer_id,
        mrr_change.c.day,
        mrr_change.c.delta,
        mrr_change.c.currency,
        *group_columns(spec, expressions),
    )
    if any(d.needs_plan for d in scope.used()):
        changes = changes.outerjoin_from(mrr_change, plan, plan.c.id == mrr_change.c.plan_id)
    if scope.needs_customer:
        changes = changes.join_from(mrr_change, customer, customer.c.id == mrr_change.c.customer_id)
    scoped = (
        grouping_joins(changes, scope, mrr_change)
        .where(
            *where_clauses(scope, spec, mrr_change, {}),
            *universe(cube, spec, mrr_change.c.customer_id, scope.end),
            *([_changed_within(scope, spec, within)] if within is not None else []),
        )
        .subquery("scoped")
    )
    return movements_from_changes(scoped, [*group_names(spec), "currency"]).cte(name)


def period_key(day: ColumnElement[object], interval: Interval) -> ColumnElement[object]:
    truncated = sa.func.date_trunc(interval.value, sa.cast(day, sa.DateTime))
    return sa.cast(truncated, sa.Date)


STEPS = {
    Interval.DAY: "1 day",
    Interval.WEEK: "1 week",
    Interval.MONTH: "1 month",
    Interval.QUARTER: "3 months",
    Interval.YEAR: "1 year",
}


def step(interval: Interval) -> ColumnElement[object]:
    return sa.cast(sa.literal(STEPS[interval]), sa.Interval)


def _active(column: ColumnElement[int]) -> ColumnElement[int]:
    return sa.case((column > 0, 1), else_=0)


def _kind_sum(mv: FromClause, kind: str) -> ColumnElement[int]:
    return sa.func.sum(mv.c.amount).filter(mv.c.kind == kind).label(kind)


EPOCH = date(1900, 1, 1)


def _day_and(value: ColumnElement[Any], day: ColumnElement[Any]) -> ColumnElement[Any]:
    days = sa.cast(day - sa.literal(EPOCH, sa.Date), sa.BigInteger)
    return postgresql.array([days, sa.cast(value, sa.BigInteger)])


def _by_day(aggregate: Any, value: ColumnElement[Any], day: ColumnElement[Any]) -> Any:
    pair = aggregate(_day_and(value, day), type_=postgresql.ARRAY(sa.BigInteger))
    return sa.cast(pair[2], sa.BigInteger)


def _first_by_day(value: ColumnElement[Any], day: ColumnElement[Any]) -> ColumnElement[int]:
    """`value` of the earliest row of a group: the min of [day, value] arrays, so PostgreSQL
    can hash-aggregate instead of sorting, whatever the size of the value."""
    first: ColumnElement[int] = _by_day(sa.func.min, value, day)
    return first


def _last_by_day(value: ColumnElement[Any], day: ColumnElement[Any]) -> ColumnElement[int]:
    last: ColumnElement[int] = _by_day(sa.func.max, value, day)
    return last


def _flow_sums(mv: FromClause) -> list[ColumnElement[Any]]:
    """Per-kind sums, the net change and the change in active customers of some movements."""
    active_change = _active(mv.c.after) - _active(mv.c.before)
    return [
        *(_kind_sum(mv, kind) for kind in KINDS),
        sa.func.sum(mv.c.amount).label("net"),
        sa.func.sum(active_change).label("customers_net"),
    ]


@dataclass(frozen=True)
class Period:
    """The period key of a movement and the clipped bounds [a, b] of that period."""

    key: ColumnElement[Any]
    a: ColumnElement[Any]
    b: ColumnElement[Any]


def whole_periods(request: SeriesRequest) -> tuple[date, date] | None:
    """The first and last day of the series' periods that lie wholly in its range (its
    first and last may be cut by `start` and `end`), or None when there is none."""
    interval = request.interval
    first = period_start(request.start, interval)
    if first < request.start:
        first = period_end(first, interval) + timedelta(days=1)
    last = period_end(period_start(request.end, interval), interval)
    if last > request.end:
        last = period_start(request.end, interval) - timedelta(days=1)
    return (first, last) if first <= last else None


def _alone(mv: FromClause, period: Period, request: SeriesRequest) -> ColumnElement[bool]:
    """Whether a movement is its customer's only one in its (clipped) period: its neighbouring
    movement days are outside the period's bounds. In a whole week, month, quarter or year a
    stored movement's `alone` bit says so (app.movements.ALONE_BITS), and only the rows of a
    cut first or last period compare their neighbours with the bounds."""
    compared = sa.and_(
        sa.or_(mv.c.prev_day.is_(None), mv.c.prev_day < period.a),
        sa.or_(mv.c.next_day.is_(None), mv.c.next_day > period.b),
    )
    bit = ALONE_BITS.get(request.interval.value)
    whole = whole_periods(request)
    if bit is None or whole is None or "alone" not in mv.c:
        return compared
    inside = mv.c.day.between(
        sa.bindparam("whole_first", whole[0], type_=sa.Date),
        sa.bindparam("whole_last", whole[1], type_=sa.Date),
    )
    return sa.case((inside, mv.c.alone.op("&")(bit) != 0), else_=compared)


def _customer_level(
    mv: FromClause, period: Period, groups: list[str], alone: ColumnElement[bool]
) -> tuple[Select[tuple[object, ...]], Select[tuple[object, ...]]]:
    """Per (group, period, customer): movement sums per kind, the state before the first and
    after the last movement in the period (= the states at a-1 and at b), as two selects:
    the customers whose only movement in the period is the row itself (`alone`: the common
    case, found from its neighbouring movement days, so not grouped) and the others, grouped."""
    group_columns = [mv.c[g] for g in groups]
    singles = sa.select(
        *group_columns,
        period.key.label("k"),
        *(sa.case((mv.c.kind == kind, mv.c.amount)).label(kind) for kind in KINDS),
        mv.c.amount.label("net"),
        (_active(mv.c.after) - _active(mv.c.before)).label("customers_net"),
        mv.c.before.label("first_before"),
        mv.c.after.label("last_after"),
    ).where(alone)
    several = (
        sa.select(
            *group_columns,
            period.key.label("k"),
            *_flow_sums(mv),
            _first_by_day(mv.c.before, mv.c.day).label("first_before"),
            _last_by_day(mv.c.after, mv.c.day).label("last_after"),
        )
        .where(sa.not_(alone))
        .group_by(*group_columns, period.key, mv.c.customer_id)
    )
    return singles, several


SUMS = (*KINDS, "net", "customers_net")
CUSTOMER_COUNTS = (
    *(f"{kind}_customers" for kind in KINDS),
    "churned_customers",
    "retained_delta",
    "gross_retained_delta",
)


def _period_level(
    per_customer: FromClause, groups: list[str], with_customers: bool
) -> Select[tuple[object, ...]]:
    c = per_customer.c
    sums = [sa.func.sum(c[name]).label(name) for name in SUMS]
    counts: list[ColumnElement[Any]] = []
    if with_customers:
        held = c.first_before > 0
        counts = [
            *(sa.func.count(c[kind]).label(f"{kind}_customers") for kind in KINDS),
            sa.func.count().filter(held & (c.last_after == 0)).label("churned_customers"),
            sa.func.sum(c.last_after - c.first_before).filter(held).label("retained_delta"),
            sa.func.sum(sa.func.least(c.last_after - c.first_before, 0))
            .filter(held)
            .label("gross_retained_delta"),
        ]
    return sa.select(*(c[g] for g in groups), c.k, *sums, *counts).group_by(
        *(c[g] for g in groups), c.k
    )


def _summed(parts: Sequence[Select[Any]], groups: list[str]) -> Select[tuple[object, ...]]:
    """Per (group, period) the sums of the per-(group, period) aggregates of `parts`: each is
    a sum or a count over customers, so the parts add up (NULL where every part is NULL, as
    a sum over no rows). Aggregating each part first lets PostgreSQL do it in its parallel
    workers, which otherwise hand every row to one process."""
    both = sa.union_all(*parts).subquery("parts")
    keys = [both.c[g] for g in groups]

    def total(name: str) -> ColumnElement[Any]:
        summed = sa.func.sum(both.c[name])
        counted = name.endswith("_customers")  # a count stays an integer
        return (sa.cast(summed, sa.BigInteger) if counted else summed).label(name)

    totals = [total(name) for name in (*SUMS, *CUSTOMER_COUNTS)]
    return sa.select(*keys, both.c.k, *totals).group_by(*keys, both.c.k)


def currencies_of(
    request: SeriesRequest, base_currency: str, present: frozenset[str]
) -> Currencies:
    spec = request.spec
    return Currencies(
        base=base_currency,
        report=spec.currency or base_currency,
        fixed_on=request.start if spec.fix_fx else None,
        present=present,
    )


def _periods(request: SeriesRequest, end: ColumnElement[Any]) -> FromClause:
    """One row per period of the series: key `k` (calendar start) and `b` (clipped end)."""
    interval = request.interval
    start = sa.bindparam("start", request.start, type_=sa.Date)
    series = sa.select(
        sa.func.generate_series(
            sa.func.date_trunc(interval.value, sa.cast(start, sa.DateTime)),
            sa.cast(end, sa.DateTime),
            step(interval),
        ).label("k")
    ).subquery("series")
    return sa.select(
        sa.cast(series.c.k, sa.Date).label("k"),
        sa.func.greatest(sa.cast(series.c.k, sa.Date), start).label("a"),
        sa.func.least(_last_day(series.c.k, interval), end).label("b"),
    ).subquery("periods")


def _last_day(key: ColumnElement[Any], interval: Interval) -> ColumnElement[Any]:
    return sa.cast(
        sa.cast(key, sa.DateTime) + step(interval) - sa.text("interval '1 day'"), sa.Date
    )


def _period_of(day: ColumnElement[Any], request: SeriesRequest) -> Period:
    start = sa.bindparam("start", request.start, type_=sa.Date)
    end = sa.bindparam("end", request.end, type_=sa.Date)
    key = period_key(day, request.interval)
    return Period(
        key=key,
        a=sa.func.greatest(key, start),
        b=sa.func.least(_last_day(key, request.interval), end),
    )


def _flows(
    mv: FromClause, periods: FromClause, request: SeriesRequest, groups: list[str]
) -> FromClause:
    """Per (group, period): movement sums and, when asked for, per-customer facts."""
    wanted = request.fields
    with_customers = not wanted or bool(wanted & CUSTOMER_FIELDS)
    period = _period_of(mv.c.day, request)
    in_range = mv.c.day.between(
        sa.bindparam("start", request.start, type_=sa.Date),
        sa.bindparam("end", request.end, type_=sa.Date),
    )
    if with_customers:
        rows = sa.select(mv).where(in_range).subquery("in_range")
        bounds = _period_of(rows.c.day, request)
        alone = _alone(rows, bounds, request)
        singles, several = _customer_level(rows, bounds, groups, alone)
        parts = [
            _period_level(part.subquery(name), groups, with_customers=True)
            for part, name in ((singles, "singles"), (several, "several"))
        ]
        return _summed(parts, groups).cte("flows")
    group_columns = [mv.c[g] for g in groups]
    per_period = (
        sa.select(*group_columns, period.key.label("k"), *_flow_sums(mv))
        .where(in_range)
        .group_by(*group_columns, period.key)
        .subquery("per_period")
    )
    return _period_level(per_period, groups, with_customers=False).cte("flows")


def _opening(mv: FromClause, request: SeriesRequest, groups: list[str]) -> FromClause:
    """MRR and active customers before the first period, per group."""
    start = sa.bindparam("start", request.start, type_=sa.Date)
    return (
        sa.select(
            *(mv.c[g] for g in groups),
            sa.func.sum(mv.c.amount).label("mrr"),
            sa.func.sum(_active(mv.c.after) - _active(mv.c.before)).label("customers"),
        )
        .where(mv.c.day < start)
        .group_by(*(mv.c[g] for g in groups))
        .cte("opening")
    )


def _grid(
    periods: FromClause, spec: QuerySpec, flows: FromClause, opening: FromClause
) -> FromClause:
    """Every period for every group value seen up to the end (dense breakdown series): the
    values with a movement before the start (`opening`) or in the range (`flows`), read from
    those aggregates rather than from the movements again; with compared segments, also every
    segment's placeholder, its dimensions `(none)`, so an empty segment has a (zero) series
    too."""
    groups = group_names(spec)
    if not groups:
        return sa.select(periods.c.k).subquery("grid")
    group_values: FromClause
    seen = sa.union(*(sa.select(*(part.c[g] for g in groups)) for part in (flows, opening)))
    if spec.compare:
        placeholders = sa.values(*(sa.column(g, sa.Text) for g in groups), name="branches").data(
            [placeholder_key(spec, branch.name) for branch in spec.compare]
        )
        every_branch = sa.select(*(placeholders.c[g] for g in groups))
        group_values = (
            every_branch if not spec.dimensions else sa.union(seen, every_branch)
        ).subquery("group_values")
    else:
        group_values = seen.subquery("group_values")
    return (
        sa.select(periods.c.k, *(group_values.c[g] for g in groups))
        .join_from(periods, group_values, sa.true())
        .subquery("grid")
    )


def placeholder_key(spec: QuerySpec, segment: str) -> tuple[str, ...]:
    """The breakdown key of a compared segment with no data: its name, then `(none)` for each
    dimension."""
    return (segment, *(NO_VALUE for _ in spec.dimensions))


def compile_series(
    cube: Cube,
    request: SeriesRequest,
    base_currency: str = "USD",
    present: frozenset[str] = frozenset(),
) -> Select[tuple[object, ...]]:
    """One statement giving, per group and period key `k`, the flows of the period and the
    stocks at its end (`mrr_end`, `customers_end`), with the FX revaluation of the stocks at
    the period's end and start (`reval_end`, `reval_start`), in the report currency.
    `present` are the currencies the ledger holds (conversion is skipped when all are R)."""
    groups = group_names(request.spec)
    currencies = currencies_of(request, base_currency, present)
    end: ColumnElement[Any] = sa.bindparam("end", request.end, type_=sa.Date)
    original = movement_source(cube, request.spec, end)
    periods = _periods(request, end)
    counts_only = bool(request.fields) and request.fields <= COUNT_FIELDS
    if currencies.needs_conversion and not counts_only:
        needed = as_of(original, groups, request.start, end)
        days = sa.union(
            movement_days(needed, currencies.report),
            point_days(needed, currencies.report, periods),
        )
        conv = conversion_table(days, currencies)
        mv = converted_movements(needed, conv, groups, currencies.report)
        # materialized: the spans of the revaluation compare plain dates, not each period's
        # end arithmetic per pair
        ends = sa.select(periods).cte("period_ends").prefix_with("MATERIALIZED")
        fx = FxTerms(
            reval=revaluation(mv, conv, groups, ends, currencies.report, "reval"),
            missing=missing_rate(conv),
        )
    else:
        mv, fx = original, None
    flows = _flows(mv, periods, request, groups)
    opening = _opening(mv, request, groups)
    grid = _grid(periods, request.spec, flows, opening)
    return _assemble(grid, flows, opening, fx, groups)


@dataclass(frozen=True)
class FxTerms:
    reval: FromClause  # per (group, period): stock at b's rate minus the converted flows
    missing: ColumnElement[Any]


def _assemble(
    grid: FromClause,
    flows: FromClause,
    opening: FromClause,
    fx: FxTerms | None,
    groups: list[str],
) -> Select[tuple[object, ...]]:
    """Dense rows over the grid: flows, running stocks, FX revaluation."""

    def joined(table: FromClause, on_key: bool = True) -> ColumnElement[bool]:
        conditions = [table.c[g] == grid.c[g] for g in groups]
        if on_key:
            conditions.append(table.c.k == grid.c.k)
        return sa.and_(sa.true(), *conditions)

    partition = [grid.c[g] for g in groups]

    def running_total(value: ColumnElement[Any]) -> ColumnElement[Any]:
        return sa.func.sum(value).over(partition_by=partition or None, order_by=grid.c.k)

    zero = sa.literal(0, sa.BigInteger)
    reval_end: ColumnElement[Any] = zero
    reval_start: ColumnElement[Any] = zero
    missing: ColumnElement[Any] = sa.null()
    if fx is not None:
        reval_end = sa.func.coalesce(fx.reval.c.reval, 0)
        previous = sa.func.lag(reval_end).over(partition_by=partition or None, order_by=grid.c.k)
        reval_start = sa.func.coalesce(previous, 0)  # the opening is at start-1's rate
        missing = fx.missing
    net_mrr = sa.func.coalesce(flows.c.net, 0)
    net_customers = sa.func.coalesce(flows.c.customers_net, 0)
    flow_columns = [c for c in flows.c if c.key not in {"k", *groups}]
    statement = (
        sa.select(
            *(grid.c[g] for g in groups),
            grid.c.k,
            *(sa.cast(sa.func.coalesce(c, 0), sa.BigInteger).label(c.key) for c in flow_columns),
            sa.cast(
                sa.func.coalesce(opening.c.mrr, 0) + running_total(net_mrr) + reval_end,
                sa.BigInteger,
            ).label("mrr_end"),
            sa.cast(
                sa.func.coalesce(opening.c.customers, 0) + running_total(net_customers),
                sa.BigInteger,
            ).label("customers_end"),
            sa.cast(reval_end, sa.BigInteger).label("reval_end"),
            sa.cast(reval_start, sa.BigInteger).label("reval_start"),
            missing.label("fx_missing"),
        )
        .select_from(grid)
        .outerjoin(flows, joined(flows))
        .outerjoin(opening, joined(opening, on_key=False))
    )
    if fx is not None:
        statement = statement.outerjoin(fx.reval, joined(fx.reval))
    return statement.order_by(*partition, grid.c.k)
