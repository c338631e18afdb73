"""Usage metric values: one customer's, a series sliced like MRR's, a ranking of customers.

Every value is one statement compiled by `app.metrics.usage.compile_usage` (a COMPOSITE
metric: one per metric its expression reads, combined by `app.usage.expression.evaluate`).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from app import attributes
from app.db import SharedTransaction
from app.errors import InvalidQuery, NotFound, UserError
from app.metrics.cube import Cube, validate
from app.metrics.mrr import NO_VALUE, group_names
from app.metrics.periods import period_count, period_start, periods
from app.metrics.service import MAX_POINTS, MetricsEngine
from app.metrics.spec import Filter, FilterOp, Interval, QuerySpec
from app.metrics.universe import spec_segment_problems
from app.metrics.usage import (
    ADDITIVE,
    PROPERTY_NAME,
    PROPERTY_PREFIX,
    USAGE_CUBE,
    QueryType,
    UsageMetric,
    UsageQuery,
    Window,
    compile_usage,
    range_end,
    reads_rollup,
    with_properties,
)
from app.tables import customer, usage_metric
from app.usage import definitions
from app.usage.expression import evaluate, parse_expression, references

MAX_TOP = 1_000
MAX_KNOWN = 1_000  # usage metric definitions remembered per process (`value`)
# A series read from the events: PostgreSQL's own cost of passing a row from a parallel worker
# (the session's is far lower, for the MRR statements), so that it aggregates in each worker
# rather than ship every event to the leader, since it cannot count the periods in advance.
EVENT_SERIES_SETTING = "SET LOCAL parallel_tuple_cost = 0.1"
NOT_A_NUMBER = "22P02"  # PostgreSQL's invalid_text_representation: a cast of a non-number
Key = tuple[str, ...]
Grouped = dict[Key, dict[datetime.date | None, Decimal | None]]  # exact, as PostgreSQL gave them
Wrap = Callable[[sa.Select[Any]], sa.Select[Any]]
# Definitions by id, as last read: `value` compiles from them and checks them in the same
# statement, so one changed or deleted since is never used (it is read again).
KNOWN_DEFINITIONS: dict[int, UsageMetric] = {}


@dataclass(frozen=True)
class Values:
    """A metric's values by group key and period key; `default` where there are none."""

    by_group: Grouped
    default: Decimal | None

    def get(self, key: Key = (), period: datetime.date | None = None) -> Decimal | None:
        return self.by_group.get(key, {}).get(period, self.default)

    def number(self, key: Key = (), period: datetime.date | None = None) -> float | None:
        """The value as the API serves it (a Float)."""
        return _float(self.get(key, period))


@dataclass(frozen=True)
class UsageValue:
    metric: UsageMetric
    customer_id: int | None
    value: float | None
    window: Window


@dataclass(frozen=True)
class UsagePoint:
    date: datetime.date
    end_date: datetime.date
    value: float | None


@dataclass(frozen=True)
class UsageBreakdown:
    key: Key
    label: str
    points: tuple[UsagePoint, ...]


@dataclass(frozen=True)
class UsageSeriesRequest:
    metric_id: int
    start: datetime.date
    end: datetime.date
    interval: Interval = Interval.MONTH
    spec: QuerySpec = field(default_factory=QuerySpec)


@dataclass(frozen=True)
class UsageRank:
    customer_id: int
    value: float | None


def _exact(value: Any) -> Decimal | None:
    """A value of a row (numeric or bigint) as a Decimal, exactly."""
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return Decimal(value)
    return Decimal(repr(value)) if isinstance(value, float) else None


def _float(value: Decimal | None) -> float | None:
    """The nearest float (+ 0.0: a negated zero is served as 0); a value beyond the largest
    float (a sum of huge properties, a COMPOSITE's product) is an error, never infinity."""
    if value is None:
        return None
    number = float(value) + 0.0
    if math.isinf(number):
        raise UserError(
            f"a value of {value:.6E} is beyond what a Float holds (at most about 1.8E+308 in "
            "absolute value); narrow the timeframe or rescale the metric (a COMPOSITE can divide)"
        )
    return number


def empty_value(metric: UsageMetric) -> Decimal | None:
    """A metric's value over no events: 0 for counts and sums, null otherwise."""
    return Decimal(0) if metric.aggregation in ADDITIVE else None


def series_problems(request: UsageSeriesRequest) -> list[str]:
    if request.start > request.end:
        return [f"start {request.start} is after end {request.end}"]
    count = period_count(request.start, request.end, request.interval)
    if count > MAX_POINTS:
        return [f"the series would have {count} points; at most {MAX_POINTS} are served"]
    return []


def _property_problems(spec: QuerySpec) -> list[str]:
    names = [*spec.dimensions, *(item.field for item in spec.filters)]
    return [
        f"{name!r}: property names are 1-100 letters, digits or _.$@:/- after `property.`"
        for name in names
        if name.startswith(PROPERTY_PREFIX)
        and not PROPERTY_NAME.match(name.removeprefix(PROPERTY_PREFIX))
    ]


class UsageService:
    """Usage metric values over the database of a MetricsEngine (its cubes too)."""

    def __init__(self, metrics: MetricsEngine) -> None:
        self.metrics = metrics
        self.engine = metrics.engine

    async def metric(self, ident: int) -> UsageMetric:
        return await definitions.get(self.engine, ident)

    async def _cubes(self, connection: AsyncConnection, spec: QuerySpec) -> tuple[Cube, Cube]:
        """The usage cube and the segments' (MRR) cube, with the attribute dimensions when
        the spec may name one (no statement otherwise: a customer's value is one statement)."""
        extra = await attributes.dimensions(connection) if _names_attributes(spec) else []
        usage = with_properties(USAGE_CUBE.with_dimensions(extra), spec)
        return usage, self.metrics.cube.with_dimensions(extra)

    async def _prepared(
        self, connection: AsyncConnection, query: UsageQuery, problems: Sequence[str]
    ) -> UsageQuery:
        """The query with its cubes, once its spec is checked (InvalidQuery otherwise)."""
        spec = query.spec
        cube, segment_cube = await self._cubes(connection, spec)
        found = [*problems, *_property_problems(spec), *spec_segment_problems(segment_cube, spec)]
        validate(cube, spec, found)
        return replace(query, cube=cube, segment_cube=segment_cube)

    async def _grouped(
        self,
        query: UsageQuery,
        problems: Sequence[str] = (),
        connection: AsyncConnection | None = None,
    ) -> Grouped:
        """Run one (non-COMPOSITE) query: values by group key and period key (on
        `connection`, or one of its own)."""
        if connection is None:
            async with self.engine.connect() as own:
                return await self._grouped(query, problems, own)
        spec = query.spec
        rows = await self._rows(connection, await self._prepared(connection, query, problems))
        groups = group_names(spec)
        grouped: Grouped = {}
        for row in rows:
            key = tuple(str(row[g]) for g in groups)
            grouped.setdefault(key, {})[row.get("k")] = _exact(row["value"])
        return grouped

    async def _rows(
        self, connection: AsyncConnection, query: UsageQuery, wrap: Wrap = lambda s: s
    ) -> Sequence[Any]:
        """The query's rows (of its statement as `wrap` makes it): first casting properties
        unchecked (fast), and when a stored event holds a non-number there, again with every
        value checked. Not inside a shared transaction (a mutation's), which a failed
        statement would abort."""

        assert query.segment_cube is not None
        spec, members = await self.metrics.listing(
            connection, query.segment_cube, query.spec, range_end(query.window)
        )
        query = replace(query, spec=spec)

        async def run(statement: sa.Select[Any]) -> Sequence[Any]:
            if query.interval is not None and not reads_rollup(query):
                await connection.exec_driver_sql(EVENT_SERIES_SETTING)
            rows: Sequence[Any] = (await connection.execute(statement, members)).mappings().all()
            return rows

        if not isinstance(self.engine, SharedTransaction):
            try:
                return await run(wrap(compile_usage(replace(query, trust_numbers=True))))
            except DBAPIError as error:
                if getattr(error.orig, "sqlstate", None) != NOT_A_NUMBER:
                    raise
                await connection.rollback()
        return await run(wrap(compile_usage(query)))

    async def _references(self, metric: UsageMetric) -> dict[str, UsageMetric]:
        assert metric.expression is not None
        live = await _live(self)
        names = references(parse_expression(metric.expression))
        missing = [name for name in names if name not in live]
        if missing:
            raise InvalidQuery(
                [f"{metric.name!r} reads {name!r}, which is not defined" for name in missing]
            )
        return {name: live[name] for name in names}

    async def grouped(
        self,
        query: UsageQuery,
        problems: Sequence[str] = (),
        connection: AsyncConnection | None = None,
    ) -> Values:
        """Values by group and period; a COMPOSITE metric's combined from its operands'."""
        metric = query.metric
        if metric.query_type is not QueryType.COMPOSITE:
            return Values(await self._grouped(query, problems, connection), empty_value(metric))
        assert metric.expression is not None
        tree = parse_expression(metric.expression)
        operands = {
            name: Values(
                await self._grouped(replace(query, metric=found), problems), empty_value(found)
            )
            for name, found in (await self._references(metric)).items()
        }
        keys = {
            (g, k) for found in operands.values() for g, by in found.by_group.items() for k in by
        }
        combined: Grouped = {}
        for group, period in keys:
            values = {name: found.get(group, period) for name, found in operands.items()}
            combined.setdefault(group, {})[period] = evaluate(tree, values)
        default = evaluate(tree, {name: found.default for name, found in operands.items()})
        return Values(combined, default)

    async def value(self, ident: int, customer_id: int, window: Window) -> UsageValue:
        """The metric's value for one customer over `window` (half-open). With the metric's
        definition known from an earlier call, one statement: the value, whether the
        customer exists, and the definition as stored, which must equal the one the value
        was compiled from (else it is read again, and the value computed again)."""
        spec = QuerySpec(filters=(Filter("customer", FilterOp.EQ, (str(customer_id),)),))
        async with self.engine.connect() as connection:
            remembered = KNOWN_DEFINITIONS.get(ident)
            if remembered is not None:
                query = UsageQuery(remembered, window, spec)
                found = await self._checked_value(connection, query, customer_id)
                if found is not None:
                    return found
            metric = await definitions.fetch(connection, ident)
            _remember(metric)
            query = UsageQuery(metric, window, spec)
            again = await self._checked_value(connection, query, customer_id)
            if again is not None:
                return again
            known = sa.select(customer.c.id).where(customer.c.id == customer_id)
            if await connection.scalar(known) is None:
                raise NotFound(f"no customer with id {customer_id}")
            values = await self.grouped(query, _window_problems(window), connection)
        return UsageValue(metric, customer_id, values.number(), window)

    async def _checked_value(
        self, connection: AsyncConnection, query: UsageQuery, customer_id: int
    ) -> UsageValue | None:
        """One customer's value of a non-COMPOSITE metric in one statement (`value`); None
        for a COMPOSITE metric, or when the stored definition is not `query.metric` (changed
        or deleted since it was read)."""
        metric = query.metric
        if metric.query_type is QueryType.COMPOSITE:
            return None
        prepared = await self._prepared(connection, query, _window_problems(query.window))

        def checked(statement: sa.Select[Any]) -> sa.Select[Any]:
            known = sa.exists().where(customer.c.id == customer_id).correlate(None)
            value = statement.correlate(None).scalar_subquery()
            return sa.select(
                usage_metric, known.label("customer_known"), value.label("usage_value")
            ).where(usage_metric.c.id == metric.id)

        rows = await self._rows(connection, prepared, checked)
        if not rows or definitions.from_row(SimpleNamespace(**rows[0])) != metric:
            KNOWN_DEFINITIONS.pop(metric.id, None)
            return None
        if not rows[0]["customer_known"]:
            raise NotFound(f"no customer with id {customer_id}")
        found = _exact(rows[0]["usage_value"])
        value = empty_value(metric) if found is None else found
        return UsageValue(metric, customer_id, _float(value), query.window)

    async def values_of(
        self, ident: int, window: Window, customer_ids: Sequence[int]
    ) -> list[float | None]:
        """The metric's value for each customer (one statement per metric read)."""
        metric = await self.metric(ident)
        ids = tuple(str(customer_id) for customer_id in customer_ids)
        spec = QuerySpec(dimensions=("customer",), filters=(Filter("customer", FilterOp.IN, ids),))
        found = await self.grouped(UsageQuery(metric, window, spec), _window_problems(window))
        return [found.number((str(c),)) for c in customer_ids]

    async def _series(self, request: UsageSeriesRequest, spec: QuerySpec) -> Values:
        metric = await self.metric(request.metric_id)
        query = UsageQuery(metric, Window.days(request.start, request.end), spec, request.interval)
        return await self.grouped(query, series_problems(request))

    async def points(self, request: UsageSeriesRequest) -> tuple[UsagePoint, ...]:
        """The total over the spec's universe and filters (its dimensions ignored)."""
        total = replace(request.spec, dimensions=(), compare=())
        return _points(request, await self._series(request, total), ())

    async def breakdown(self, request: UsageSeriesRequest) -> tuple[UsageBreakdown, ...]:
        """One series per value combination of the dimensions (and compared segment)."""
        if not request.spec.groups:
            return ()
        found = await self._series(request, request.spec)
        order = {branch.name: index for index, branch in enumerate(request.spec.compare)}
        keys = sorted(found.by_group, key=lambda key: (order.get(key[0], 0) if order else 0, key))
        return tuple(
            UsageBreakdown(key, " / ".join(key), _points(request, found, key)) for key in keys
        )

    async def top(
        self,
        ident: int,
        start: datetime.date,
        end: datetime.date,
        first: int,
        within: QuerySpec | None = None,
    ) -> tuple[UsageRank, ...]:
        """The customers with the highest values over [start, end] (days, UTC), among those
        `within`'s filters and segment keep (its events' filters too: `property.<name>`)."""
        problems = [] if 1 <= first <= MAX_TOP else [f"first must be 1 to {MAX_TOP}, not {first}"]
        if start > end:
            problems.append(f"start {start} is after end {end}")
        within = within or QuerySpec()
        if within.dimensions or within.compare:
            problems.append(
                "a ranking is by customer: its spec takes filters and a segment, not "
                "dimensions or compareSegments"
            )
        metric = await self.metric(ident)
        spec = QuerySpec(dimensions=("customer",), filters=within.filters, segment=within.segment)
        query = UsageQuery(metric, Window.days(start, end), spec)
        if metric.query_type is not QueryType.COMPOSITE:
            query = replace(query, order_by_value=first)
        found = await self.grouped(query, problems)
        ranks = [UsageRank(int(key[0]), found.number(key)) for key in found.by_group]
        ranks.sort(key=lambda rank: (rank.value is None, -(rank.value or 0), rank.customer_id))
        return tuple(ranks[:first])


def _remember(metric: UsageMetric) -> None:
    if len(KNOWN_DEFINITIONS) >= MAX_KNOWN:
        KNOWN_DEFINITIONS.clear()
    KNOWN_DEFINITIONS[metric.id] = metric


def _names_attributes(spec: QuerySpec) -> bool:
    names = [*spec.dimensions, *(item.field for item in spec.filters)]
    named = any(name.startswith(attributes.PREFIX) for name in names)
    return named or spec.segment is not None or bool(spec.compare)


async def _live(service: UsageService) -> dict[str, UsageMetric]:
    async with service.engine.connect() as connection:
        return await definitions.live_metrics(connection)


def _window_problems(window: Window) -> list[str]:
    if window.start is not None and window.end is not None and window.start > window.end:
        return [f"timeframe: from {window.start.isoformat()} is after to {window.end.isoformat()}"]
    return []


def _points(request: UsageSeriesRequest, found: Values, key: Key) -> tuple[UsagePoint, ...]:
    return tuple(
        UsagePoint(a, b, found.number(key, period_start(a, request.interval)))
        for a, b in periods(request.start, request.end, request.interval)
    )


__all__ = ["NO_VALUE", "UsageService"]
