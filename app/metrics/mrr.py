"""MRR family (METRICS.md 3-4): the cube and the series compiler.

The compiler takes a frozen `SeriesRequest` and returns one SQL statement; it does no I/O.
Rows come back per (group, period) with integer aggregates; `app.metrics.points` turns them into
Point values (ratios, rounding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.sql.expression import ColumnElement, FromClause, Select

from app.metrics.cube import Cube, Dimension, Level, Sources, filter_clause
from app.metrics.spec import Interval, QuerySpec, SeriesRequest
from app.movements import movements_from_changes
from app.tables import customer, movement, mrr_change, plan

NO_VALUE = "(none)"
KINDS = ("new", "expansion", "contraction", "churn", "reactivation")
# Point fields that need per-customer aggregation inside a period.
CUSTOMER_FIELDS = frozenset(
    {f"{kind}_customers" for kind in KINDS}
    | {"churned_customers", "customer_churn_rate", "customer_retention_rate", "nrr", "grr", "asp"}
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
        ),
        Dimension(
            "currency",
            "Original currency of the subscription",
            Level.SUBSCRIPTION,
            lambda s: s.ledger.c.currency,
        ),
        Dimension(
            "plan_interval",
            "Billing frequency: day, week, month, year, or e.g. '3 month'",
            Level.SUBSCRIPTION,
            lambda s: s.ledger.c.plan_interval,
        ),
        Dimension(
            "customer_country",
            "Customer's country (ISO 3166 alpha-2)",
            Level.CUSTOMER,
            lambda s: s.customer.c.country,
        ),
    ),
)

SOURCES = Sources(ledger=mrr_change, plan=plan, customer=customer)


@dataclass(frozen=True)
class Scope:
    """Which dimensions the request uses, and so which tables the movement source needs."""

    cube: Cube
    spec: QuerySpec

    def used(self) -> list[Dimension]:
        names = [*self.spec.dimensions, *(item.field for item in self.spec.filters)]
        return [self.cube.dimension(name) for name in dict.fromkeys(names)]

    @property
    def subscription_level(self) -> bool:
        return any(d.level is Level.SUBSCRIPTION for d in self.used())

    @property
    def needs_plan(self) -> bool:
        return any(d.needs_plan for d in self.used())

    @property
    def needs_customer(self) -> bool:
        return any(d.level is Level.CUSTOMER for d in self.used())


def group_names(spec: QuerySpec) -> list[str]:
    return [f"g{index}" for index in range(len(spec.dimensions))]


def _group_columns(cube: Cube, spec: QuerySpec) -> list[ColumnElement[str]]:
    return [
        sa.func.coalesce(
            sa.cast(cube.dimension(name).expression(SOURCES), sa.Text), NO_VALUE
        ).label(label)
        for name, label in zip(spec.dimensions, group_names(spec), strict=True)
    ]


def _where(cube: Cube, spec: QuerySpec) -> list[ColumnElement[bool]]:
    return [
        filter_clause(cube.dimension(item.field).expression(SOURCES), item) for item in spec.filters
    ]


def movement_source(cube: Cube, spec: QuerySpec) -> FromClause:
    """Movement rows (customer_id, g0.., day, kind, before, after, amount) in the spec's scope."""
    scope = Scope(cube, spec)
    groups = _group_columns(cube, spec)
    if not scope.subscription_level:
        query = sa.select(movement, *groups).where(*_where(cube, spec))
        if scope.needs_customer:
            query = query.join_from(movement, customer, customer.c.id == movement.c.customer_id)
        return query.cte("mv")
    changes = sa.select(mrr_change.c.customer_id, mrr_change.c.day, mrr_change.c.delta, *groups)
    if scope.needs_plan:
        changes = changes.outerjoin_from(mrr_change, plan, plan.c.id == mrr_change.c.plan_id)
    if scope.needs_customer:
        changes = changes.join_from(mrr_change, customer, customer.c.id == mrr_change.c.customer_id)
    scoped = changes.where(*_where(cube, spec)).subquery("scoped")
    return movements_from_changes(scoped, group_names(spec)).cte("mv")


def _period_key(day: ColumnElement[object], interval: Interval) -> ColumnElement[object]:
    truncated = sa.func.date_trunc(interval.value, sa.cast(day, sa.DateTime))
    return sa.cast(truncated, sa.Date)


STEPS = {
    Interval.DAY: "1 day",
    Interval.WEEK: "1 week",
    Interval.MONTH: "1 month",
    Interval.QUARTER: "3 months",
    Interval.YEAR: "1 year",
}


def _step(interval: Interval) -> ColumnElement[object]:
    return sa.cast(sa.literal(STEPS[interval]), sa.Interval)


def _active(column: ColumnElement[int]) -> ColumnElement[int]:
    return sa.case((column > 0, 1), else_=0)


def _kind_sum(mv: FromClause, kind: str) -> ColumnElement[int]:
    return sa.func.sum(mv.c.amount).filter(mv.c.kind == kind).label(kind)


def _ordered_first(value: ColumnElement[Any], order: ColumnElement[Any]) -> ColumnElement[int]:
    """The first `value` in `order` within a group: (array_agg(value ORDER BY order))[1]."""
    aggregated = sa.func.array_agg(aggregate_order_by(value, order), type_=ARRAY(sa.BigInteger))
    return aggregated[1]


def _flow_sums(mv: FromClause) -> list[ColumnElement[Any]]:
    """Per-kind sums, the net change and the change in active customers of some movements."""
    active_change = _active(mv.c.after) - _active(mv.c.before)
    return [
        *(_kind_sum(mv, kind) for kind in KINDS),
        sa.func.sum(mv.c.amount).label("net"),
        sa.func.sum(active_change).label("customers_net"),
    ]


def _customer_level(
    mv: FromClause, key: ColumnElement[object], groups: list[str]
) -> Select[tuple[object, ...]]:
    """Per (group, period, customer): movement sums per kind, the state before the first and
    after the last movement in the period (= the states at a-1 and at b)."""
    return sa.select(
        *(mv.c[g] for g in groups),
        key.label("k"),
        *_flow_sums(mv),
        _ordered_first(mv.c.before, mv.c.day.asc()).label("first_before"),
        _ordered_first(mv.c.after, mv.c.day.desc()).label("last_after"),
    ).group_by(*(mv.c[g] for g in groups), key, mv.c.customer_id)


def _period_level(
    per_customer: FromClause, groups: list[str], with_customers: bool
) -> Select[tuple[object, ...]]:
    c = per_customer.c
    sums = [sa.func.sum(c[name]).label(name) for name in (*KINDS, "net", "customers_net")]
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


def compile_series(cube: Cube, request: SeriesRequest) -> Select[tuple[object, ...]]:
    """One statement giving, per group and period key `k`, the flows of the period and the
    stocks at its end (`mrr_end`, `customers_end`) and their changes over it."""
    spec, interval = request.spec, request.interval
    groups = group_names(spec)
    mv = movement_source(cube, spec)
    start: ColumnElement[Any] = sa.bindparam("start", request.start, type_=sa.Date)
    end: ColumnElement[Any] = sa.bindparam("end", request.end, type_=sa.Date)
    key = _period_key(mv.c.day, interval)
    wanted = request.fields
    with_customers = not wanted or bool(wanted & CUSTOMER_FIELDS)

    in_range = mv.c.day.between(start, end)
    if with_customers:
        per_customer = _customer_level(mv, key, groups).where(in_range).subquery("per_customer")
    else:
        per_customer = (
            sa.select(*(mv.c[g] for g in groups), key.label("k"), *_flow_sums(mv))
            .where(in_range)
            .group_by(*(mv.c[g] for g in groups), key)
            .subquery("per_customer")
        )
    flows = _period_level(per_customer, groups, with_customers).subquery("flows")
    active_change = _active(mv.c.after) - _active(mv.c.before)
    opening = (
        sa.select(
            *(mv.c[g] for g in groups),
            sa.func.sum(mv.c.amount).label("mrr"),
            sa.func.sum(active_change).label("customers"),
        )
        .where(mv.c.day < start)
        .group_by(*(mv.c[g] for g in groups))
        .subquery("opening")
    )
    periods = sa.select(
        sa.cast(
            sa.func.generate_series(
                sa.func.date_trunc(interval.value, sa.cast(start, sa.DateTime)),
                sa.cast(end, sa.DateTime),
                _step(interval),
            ),
            sa.Date,
        ).label("k")
    ).subquery("periods")
    if groups:
        seen = sa.select(*(mv.c[g] for g in groups)).where(mv.c.day <= end).distinct()
        group_values = seen.subquery("group_values")
        grid = (
            sa.select(periods.c.k, *(group_values.c[g] for g in groups))
            .join_from(periods, group_values, sa.true())
            .subquery("grid")
        )
    else:
        grid = sa.select(periods.c.k).subquery("grid")

    def joined(table: FromClause, on_key: bool = True) -> ColumnElement[bool]:
        conditions = [table.c[g] == grid.c[g] for g in groups]
        if on_key:
            conditions.append(table.c.k == grid.c.k)
        return sa.and_(sa.true(), *conditions)

    partition = [grid.c[g] for g in groups]

    def running_total(value: ColumnElement[Any]) -> ColumnElement[Any]:
        return sa.func.sum(value).over(partition_by=partition or None, order_by=grid.c.k)

    net_mrr = sa.func.coalesce(flows.c.net, 0)
    net_customers = sa.func.coalesce(flows.c.customers_net, 0)
    flow_columns = [c for c in flows.c if c.key not in {"k", *groups}]
    return (
        sa.select(
            *(grid.c[g] for g in groups),
            grid.c.k,
            *(sa.cast(sa.func.coalesce(c, 0), sa.BigInteger).label(c.key) for c in flow_columns),
            sa.cast(
                sa.func.coalesce(opening.c.mrr, 0) + running_total(net_mrr),
                sa.BigInteger,
            ).label("mrr_end"),
            sa.cast(
                sa.func.coalesce(opening.c.customers, 0) + running_total(net_customers),
                sa.BigInteger,
            ).label("customers_end"),
        )
        .select_from(grid)
        .outerjoin(flows, joined(flows))
        .outerjoin(opening, joined(opening, on_key=False))
        .order_by(*partition, grid.c.k)
    )
