"""Usage metrics (METRICS.md 9): their declarations, the usage cube and the value compiler.

A usage metric is a declaration (event name, aggregation, property, property filters) that
this module compiles to SQL with the same pieces as the MRR cube: the cube's dimensions, the
spec's filters (`app.metrics.cube`), the segment universe (`app.metrics.universe`), the group
columns and period keys of `app.metrics.mrr`. One statement gives one value per (group,
period); it reads either the events themselves (SIMPLE) or, for an INDEXED metric, its
per-(customer, day) rollup, which holds what each aggregation needs:

- COUNT, SUM: the day's count and sum, added up over the days;
- MIN, MAX: the day's min and max, whose min and max are the range's;
- AVG: not the average of daily averages, but sum(sum) / sum(count) over the days;
- LATEST: the day's latest value with its timestamp and event id; the range's is that of the
  greatest (timestamp, event id) among the days;
- UNIQUE_COUNT: distinct counts do not add up, so the rollup keeps each day's distinct values
  (`usage_rollup_value`) and a range counts the distinct values over its days.

The same aggregates are kept per day over every customer (`usage_rollup_day`): a query with no
dimension, filter or segment reads one row per day instead of one per customer and day.

A series of whole months, quarters or years read from the events is a union of one plain
aggregate per period (`_period_windows`), exact for every aggregation: each period's reads
exactly its events.

The rollup has whole UTC days: a timeframe that does not start and end at midnight UTC, or a
spec that reads event properties (`property.<name>`), is computed from the events, for INDEXED
metrics too, and so is a deleted metric (its rollup is dropped), and so is a metric whose
rollup is being built (app/usage/builds.py); both ways give the same values.
"""

from __future__ import annotations

import datetime
import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.sql.expression import ColumnElement, FromClause, Select

from app.ids import bigint
from app.limits import literal_problem
from app.metrics.cube import Cube, Dimension, Level, Sources, filter_clause
from app.metrics.mrr import (
    CUSTOMER_COUNTRY,
    REGION,
    Scope,
    expressions_for,
    group_columns,
    group_names,
    grouping_joins,
    period_key,
    where_clauses,
)
from app.metrics.periods import MONTHS_PER, period_start, periods
from app.metrics.spec import Filter, FilterOp, Interval, QuerySpec
from app.metrics.universe import branch_specs, universe
from app.tables import (
    customer,
    mrr_change,
    plan,
    usage_event,
    usage_rollup,
    usage_rollup_day,
    usage_rollup_value,
)


class Aggregation(enum.Enum):
    COUNT = "COUNT"
    SUM = "SUM"
    MIN = "MIN"
    MAX = "MAX"
    AVG = "AVG"
    UNIQUE_COUNT = "UNIQUE_COUNT"
    LATEST = "LATEST"


class QueryType(enum.Enum):
    SIMPLE = "SIMPLE"
    INDEXED = "INDEXED"
    COMPOSITE = "COMPOSITE"


class ValueType(enum.Enum):
    INTEGER = "INTEGER"
    FLOAT = "FLOAT"
    STRING = "STRING"


# Aggregations of a numeric property (an event whose property is not a number is refused).
NUMERIC = frozenset({Aggregation.SUM, Aggregation.MIN, Aggregation.MAX, Aggregation.AVG})
NUMERIC |= {Aggregation.LATEST}
# Aggregations whose value over no events is 0 (the others are null).
ADDITIVE = frozenset({Aggregation.COUNT, Aggregation.SUM, Aggregation.UNIQUE_COUNT})
PROPERTY_PREFIX = "property."
# \Z, not $: `$` also matches before a final newline ("model\n" was a property name)
PROPERTY_NAME = re.compile(r"^[A-Za-z0-9_$@:/-][A-Za-z0-9_.$@:/-]{0,99}\Z")
ORDERED = frozenset({FilterOp.GT, FilterOp.GTE, FilterOp.LT, FilterOp.LTE})
MEAN_SCALE = 34  # decimal places of an average (`mean`)


@dataclass(frozen=True)
class PropertyFilter:
    """A metric's condition on an event property: `{property, op, values}`."""

    property: str
    op: FilterOp = FilterOp.EQ
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class UsageMetric:
    id: int
    name: str
    description: str
    event_name: str | None
    aggregation: Aggregation | None
    property: str | None
    value_type: ValueType
    filters: tuple[PropertyFilter, ...]
    query_type: QueryType
    expression: str | None
    created_at: datetime.datetime
    updated_at: datetime.datetime
    deleted_at: datetime.datetime | None = None
    rollup_build: int | None = None  # INDEXED: its rollup being built (app/usage/builds.py)


@dataclass(frozen=True)
class Window:
    """Events with `start <= ts < end` (None: unbounded)."""

    start: datetime.datetime | None = None
    end: datetime.datetime | None = None

    @property
    def whole_days(self) -> bool:
        return all(_midnight(t) for t in (self.start, self.end) if t is not None)

    @classmethod
    def days(cls, first: datetime.date, last: datetime.date) -> Window:
        """The days first..last (inclusive), UTC."""
        return cls(_utc_midnight(first), _utc_midnight(last + datetime.timedelta(days=1)))


def _utc_midnight(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(), datetime.UTC)


def _midnight(moment: datetime.datetime) -> bool:
    return moment.astimezone(datetime.UTC).time() == datetime.time()


@dataclass(frozen=True)
class UsageQuery:
    """One usage metric's values in `window`, per group of `spec` (and per period of
    `interval`, when given). `cube` is the usage cube with the attribute and property
    dimensions; segments select customers through `segment_cube` (the MRR cube's)."""

    metric: UsageMetric
    window: Window
    spec: QuerySpec = field(default_factory=QuerySpec)
    interval: Interval | None = None
    cube: Cube | None = None
    segment_cube: Cube | None = None
    order_by_value: int | None = None  # keep the top N groups by value (usageTop)
    # cast the property unchecked: events are refused when a numeric metric of their name
    # reads a non-number, so one is rare (stored before the metric); `trusted_numeric`
    trust_numbers: bool = False


def _plan_of(sources: Sources) -> ColumnElement[Any]:
    """The plan of the customer's latest subscription start or change up to the range's end."""
    return (
        sa.select(plan.c.name)
        .join_from(mrr_change, plan, plan.c.id == mrr_change.c.plan_id)
        .where(
            mrr_change.c.customer_id == sources.customer.c.id,
            mrr_change.c.delta > 0,
            mrr_change.c.day <= sources.end,
        )
        .order_by(mrr_change.c.day.desc(), mrr_change.c.delta.desc())
        .limit(1)
        .correlate(sources.customer)
        .scalar_subquery()
    )


USAGE_CUBE = Cube(
    name="usage",
    description="Usage metrics over usage events (METRICS.md 9).",
    dimensions=(
        Dimension(
            "customer",
            "The customer's Tidemill id",
            Level.CUSTOMER,
            lambda s: s.rows.c.customer_id,
            kind="number",
            parse=bigint,
        ),
        CUSTOMER_COUNTRY,
        REGION,
        Dimension(
            "plan",
            "Plan of the customer's latest subscription start or change up to the range's end",
            Level.CUSTOMER,
            _plan_of,
            reads_customer=True,
        ),
    ),
)


def property_dimension(name: str) -> Dimension:
    """`property.<key>`: an event property as text (read from the events, never the rollup);
    a filter on it is a metric filter's condition: GT, GTE, LT, LTE compare numbers (an event
    whose property is not a JSON number fails them), the other operators text."""
    key = name.removeprefix(PROPERTY_PREFIX)
    return Dimension(
        name,
        f"The event property {key!r}",
        Level.CUSTOMER,
        lambda s: property_text(s.rows.c.properties, key),
        kind="property",
        parse_ordered=_decimal,
        condition=lambda s, item: property_condition(
            PropertyFilter(key, item.op, item.values), s.rows
        ),
    )


def property_names(spec: QuerySpec) -> list[str]:
    named = [*spec.dimensions, *(item.field for item in spec.filters)]
    return [
        name
        for name in dict.fromkeys(named)
        if name.startswith(PROPERTY_PREFIX)
        and PROPERTY_NAME.match(name.removeprefix(PROPERTY_PREFIX))
    ]


def with_properties(cube: Cube, spec: QuerySpec) -> Cube:
    """The cube with a `property.<key>` dimension for each one the spec names."""
    return cube.with_dimensions(property_dimension(name) for name in property_names(spec))


# --- values of events ----------------------------------------------------------------------------


def property_text(properties: ColumnElement[Any], key: str) -> ColumnElement[Any]:
    """A property as text (`->>`; JSON null is NULL). The operators, not jsonb subscripts:
    PostgreSQL evaluates `->` faster than `properties['key']`."""
    text: ColumnElement[Any] = properties.op("->>", return_type=sa.Text)(key)
    return text


def trusted_numeric(properties: ColumnElement[Any], key: str) -> ColumnElement[Any]:
    """A property cast to a number unchecked: PostgreSQL raises (SQLSTATE 22P02) on an event
    whose value is not one; the service then runs the query again with `numeric`."""
    return sa.cast(property_text(properties, key), sa.Numeric)


def numeric(properties: ColumnElement[Any], key: str) -> ColumnElement[Any]:
    """A property as a number; NULL when the event does not hold a JSON number there."""
    element = properties.op("->", return_type=postgresql.JSONB)(key)
    is_number = sa.func.jsonb_typeof(element) == "number"
    return sa.case((is_number, sa.cast(element, sa.Numeric)))


def event_value(
    metric: UsageMetric, events: FromClause, trusted: bool = False
) -> ColumnElement[Any] | None:
    """What the metric aggregates of an event (None: the event itself, for COUNT)."""
    if metric.property is None:
        return None
    if metric.aggregation in NUMERIC:
        cast = trusted_numeric if trusted else numeric
        return cast(events.c.properties, metric.property)
    return property_text(events.c.properties, metric.property)


def _decimal(text: str) -> Decimal:
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{text!r} is not a finite number")
    if problem := literal_problem(number):
        raise ValueError(f"{text[:40]!r} {problem}")
    return number


def property_condition(item: PropertyFilter, events: FromClause) -> ColumnElement[bool]:
    """A metric filter as a condition: ordered operators compare numbers, the others text."""
    condition = Filter(item.property, item.op, item.values)
    if item.op in ORDERED:
        return filter_clause(numeric(events.c.properties, item.property), condition, _decimal)
    return filter_clause(property_text(events.c.properties, item.property), condition)


def filter_problems(item: PropertyFilter, index: int) -> list[str]:
    where = f"filters[{index}] ({item.property} {item.op.value})"
    problems = []
    if not PROPERTY_NAME.match(item.property):
        problems.append(f"{where}: property names are 1-100 letters, digits or _.$@:/-")
    if item.op in (FilterOp.IS_NULL, FilterOp.IS_NOT_NULL):
        if item.values:
            problems.append(f"{where} takes no values")
    elif item.op in (FilterOp.IN, FilterOp.NOT_IN):
        if not item.values:
            problems.append(f"{where} needs at least one value")
    elif len(item.values) != 1:
        problems.append(f"{where} needs exactly one value")
    if item.op in ORDERED:
        for value in item.values:
            try:
                _decimal(value)
            except ValueError as error:
                problems.append(f"{where}: {error}; {item.op.value} compares numbers")
    return problems


def metric_conditions(
    metric: UsageMetric, events: FromClause, with_value: bool = True, trusted: bool = False
) -> list[ColumnElement[bool]]:
    """The events a metric reads; `with_value`: only those holding its property (queries
    leave that to the aggregate, which skips nulls, rather than compute the value twice)."""
    conditions = [events.c.name == metric.event_name]
    conditions += [property_condition(item, events) for item in metric.filters]
    value = event_value(metric, events, trusted)
    if value is not None and with_value:
        conditions.append(value.is_not(None))
    return conditions


def _latest(value: ColumnElement[Any], *order: ColumnElement[Any]) -> ColumnElement[Any]:
    ordered = aggregate_order_by(value, *(column.desc() for column in order))
    values = sa.func.array_agg(ordered, type_=ARRAY(sa.Numeric)).filter(value.is_not(None))
    return sa.type_coerce(values, ARRAY(sa.Numeric))[1]


def simple_aggregate(
    metric: UsageMetric, events: FromClause, trusted: bool = False
) -> ColumnElement[Any]:
    """The aggregation over matching events (nulls skipped)."""
    value = event_value(metric, events, trusted)
    match metric.aggregation:
        case Aggregation.COUNT | None:
            return sa.func.count() if value is None else sa.func.count(value)
        case Aggregation.UNIQUE_COUNT:
            assert value is not None
            return sa.func.count(sa.distinct(value))
        case Aggregation.LATEST:
            assert value is not None
            return _latest(value, events.c.ts, events.c.event_id)
    assert value is not None
    if metric.aggregation is Aggregation.AVG:
        return mean(sa.func.sum(value), sa.func.count(value))
    functions: dict[Aggregation, Callable[[ColumnElement[Any]], ColumnElement[Any]]] = {
        Aggregation.SUM: sa.func.sum,
        Aggregation.MIN: sa.func.min,
        Aggregation.MAX: sa.func.max,
    }
    return functions[metric.aggregation](value)


def mean(total: ColumnElement[Any], count: ColumnElement[Any]) -> ColumnElement[Any]:
    """total / count (NULL for no value) to MEAN_SCALE decimal places. PostgreSQL's own
    division (and avg) keeps 16 to 20 significant digits, and the float nearest such a
    rounded quotient is, for about one large average in twenty, one unit in the last place
    off the exact one's: 837866649012 / 2515 gives 333147772.96699801, served as
    333147772.966998 where the exact quotient's float is 333147772.96699804."""
    return sa.func.round(total, MEAN_SCALE) / sa.func.nullif(count, 0)


def rollup_aggregate(metric: UsageMetric, rollup: FromClause) -> ColumnElement[Any]:
    """The aggregation over the days of the rollup (module doc)."""
    c = rollup.c
    match metric.aggregation:
        case Aggregation.COUNT | None:
            return sa.func.sum(c["count"])
        case Aggregation.SUM:
            return sa.func.sum(c.sum)
        case Aggregation.MIN:
            return sa.func.min(c.min)
        case Aggregation.MAX:
            return sa.func.max(c.max)
        case Aggregation.AVG:
            return mean(sa.func.sum(c.sum), sa.func.sum(c["count"]))
        case Aggregation.LATEST:
            return _latest(c.latest_value, c.latest_at, c.latest_id)
        case Aggregation.UNIQUE_COUNT:
            return sa.func.count(sa.distinct(c.value))


# --- the compiler ------------------------------------------------------------------------------


def reads_rollup(query: UsageQuery) -> bool:
    """Whether the query is served by the metric's rollup (module doc)."""
    return (
        query.metric.query_type is QueryType.INDEXED
        and query.metric.deleted_at is None
        and query.metric.rollup_build is None
        and query.window.whole_days
        and not property_names(query.spec)
    )


def _utc_day(ts: ColumnElement[Any]) -> ColumnElement[Any]:
    return sa.cast(sa.func.timezone("UTC", ts), sa.Date)


def _day_of(moment: datetime.datetime) -> datetime.date:
    return moment.astimezone(datetime.UTC).date()


@dataclass(frozen=True)
class _Source:
    rows: FromClause
    day: ColumnElement[Any]
    conditions: list[ColumnElement[bool]]
    value: ColumnElement[Any]


def _events_source(query: UsageQuery) -> _Source:
    events, window = usage_event, query.window
    conditions = metric_conditions(query.metric, events, with_value=False)
    # unique names: a series of whole months has one window per period (`_period_windows`)
    if window.start is not None:
        conditions.append(events.c.ts >= sa.bindparam("window_start", window.start, unique=True))
    if window.end is not None:
        conditions.append(events.c.ts < sa.bindparam("window_end", window.end, unique=True))
    local = sa.func.timezone("UTC", events.c.ts, type_=sa.DateTime)  # periods truncate it
    value = simple_aggregate(query.metric, events, query.trust_numbers)
    return _Source(events, local, conditions, value)


def _whole(spec: QuerySpec) -> bool:
    """The spec reads every customer, undivided (the per-day totals serve it)."""
    return not (spec.dimensions or spec.filters or spec.segment is not None or spec.compare)


def _rollup_source(query: UsageQuery, spec: QuerySpec) -> _Source:
    metric, window = query.metric, query.window
    rows: sa.Table = usage_rollup_day if _whole(spec) else usage_rollup
    if metric.aggregation is Aggregation.UNIQUE_COUNT:
        rows = usage_rollup_value
    conditions = [rows.c.metric_id == metric.id]
    if window.start is not None:
        conditions.append(rows.c.day >= sa.bindparam("window_start", _day_of(window.start)))
    if window.end is not None:
        conditions.append(rows.c.day < sa.bindparam("window_end", _day_of(window.end)))
    return _Source(rows, rows.c.day, conditions, rollup_aggregate(metric, rows))


def range_end(window: Window) -> datetime.date:
    """The last day the query reads, for time-relative dimensions (plan) and segments."""
    last = datetime.date.max
    if window.end is not None:  # the day before `end` (none before 0001-01-01: that day)
        end = _day_of(window.end)
        last = end - datetime.timedelta(days=1) if end > datetime.date.min else end
    return min(last, datetime.date(2200, 12, 31))


def _range_end(window: Window) -> ColumnElement[Any]:
    return sa.bindparam("range_end", range_end(window), type_=sa.Date)


Period = tuple[datetime.date, Window]  # a period's key (first day) and its days in the range


def _period_windows(query: UsageQuery) -> list[Period] | None:
    """The periods of a series read from the events in periods of whole months, each with
    its days in the range; None for other queries. Such a series is a union of one plain
    aggregate per period rather than one aggregate grouped by period: PostgreSQL cannot
    estimate how many periods the events fall in, so it would sort every event by period
    (to disk, at millions) before aggregating, where each period's aggregate scans only its
    months' partitions of `usage_event` (monthly) and the periods run in parallel workers.
    Each partition is read by one period only, as periods of days or weeks would not."""
    window, interval = query.window, query.interval
    if interval not in MONTHS_PER or reads_rollup(query) or query.order_by_value is not None:
        return None
    if window.start is None or window.end is None or not window.whole_days:
        return None
    first, last = _day_of(window.start), _day_of(window.end) - datetime.timedelta(days=1)
    if first > last:
        return None
    return [
        (period_start(a, interval), Window.days(a, b)) for a, b in periods(first, last, interval)
    ]


def _branch(
    query: UsageQuery, spec: QuerySpec, label: str | None, period: Period | None = None
) -> Select[Any]:
    """The statement of one compared segment (`label`), or of the whole spec; with `period`,
    of that period only (its key a constant)."""
    assert query.cube is not None
    assert query.segment_cube is not None
    if period is not None:
        source = _events_source(replace(query, window=period[1]))
    else:
        source = _rollup_source(query, spec) if reads_rollup(query) else _events_source(query)
    end = _range_end(query.window)
    scope = Scope(query.cube, spec, end)
    expressions = expressions_for(scope, source.rows, {})
    groups: list[ColumnElement[Any]] = [*group_columns(spec, expressions)]
    if label is not None:
        groups = [sa.literal(label, sa.Text).label("g0")] + [
            column.label(f"g{index + 1}") for index, column in enumerate(groups)
        ]
    keys: list[ColumnElement[Any]] = [*groups]
    if period is not None:
        constant = sa.cast(sa.literal(period[0], sa.Date), sa.Date).label("k")
    elif query.interval is not None:
        keys.append(period_key(source.day, query.interval).label("k"))
    value = source.value
    if query.metric.aggregation in ADDITIVE:
        value = sa.func.coalesce(value, 0)  # a sum of no rows is 0
    columns = [*keys, constant] if period is not None else keys
    statement: Select[Any] = sa.select(*columns, value.label("value")).where(
        *source.conditions,
        *where_clauses(scope, spec, source.rows, {}),
        *(
            universe(query.segment_cube, spec, source.rows.c.customer_id, end)
            if spec.segment is not None
            else []
        ),
    )
    if scope.needs_customer:
        on = customer.c.id == source.rows.c.customer_id
        statement = statement.join_from(source.rows, customer, on)
    statement = grouping_joins(statement, scope, source.rows)
    return statement.group_by(*(sa.literal_column(key.name) for key in keys))


def compile_usage(query: UsageQuery) -> Select[Any]:
    """One statement: per group (`g0`..) and period (`k`, with an interval) the metric's
    `value`; compared segments are branches of a union, the segment's name as `g0`, and so
    are the periods of a series of whole months read from the events (`_period_windows`)."""
    spec = query.spec
    by_period = _period_windows(query)
    labelled: list[tuple[str | None, QuerySpec]] = [(None, spec)]
    if spec.compare:
        names = [segment.name for segment in spec.compare]
        labelled = list(zip(names, branch_specs(spec), strict=True))
    periods_of: list[Period | None] = [*by_period] if by_period is not None else [None]
    if not spec.compare and by_period is None:
        statement = _branch(query, spec, None)
    else:
        branches = [
            _branch(query, branch, label, period)
            for label, branch in labelled
            for period in periods_of
        ]
        statement = sa.select(sa.union_all(*branches).subquery("branches"))
    if query.order_by_value is not None:
        ranked = statement.subquery("ranked")
        order = [ranked.c.value.desc().nulls_last(), *(ranked.c[g] for g in group_names(spec))]
        return sa.select(ranked).order_by(*order).limit(query.order_by_value)
    keys = [*group_names(spec), *(["k"] if query.interval is not None else [])]
    if keys and not spec.compare:
        # in key order: PostgreSQL then plans the aggregate over many events in parallel
        # (partial aggregates per worker, merged in order), which it does not for a hash
        # aggregate whose number of groups it cannot estimate
        statement = statement.order_by(*(sa.literal_column(key) for key in keys))
    return statement


# --- keeping the rollup current ------------------------------------------------------------------


def _rollup_columns(
    metric: UsageMetric, fresh: FromClause, trusted: bool
) -> list[ColumnElement[Any]]:
    value = event_value(metric, fresh, trusted)
    # typed NULLs: the rows may be a CTE's, read by another statement
    kinds: dict[str, Any] = {"sum": sa.Numeric, "min": sa.Numeric, "max": sa.Numeric}
    kinds |= {"latest_at": sa.DateTime(timezone=True), "latest_id": sa.Text}
    kinds |= {"latest_value": sa.Numeric}
    if value is None or metric.aggregation not in NUMERIC:
        return [sa.func.count().label("count")] + [
            sa.cast(sa.null(), kind).label(name) for name, kind in kinds.items()
        ]
    latest = metric.aggregation is Aggregation.LATEST
    ordered = (fresh.c.ts, fresh.c.event_id)

    def last(column: ColumnElement[Any], kind: Any) -> ColumnElement[Any]:
        if not latest:
            return sa.cast(sa.null(), kind)
        values = sa.func.array_agg(aggregate_order_by(column, *(c.desc() for c in ordered)))
        return sa.type_coerce(values, ARRAY(kind))[1]

    return [
        sa.func.count().label("count"),
        sa.func.sum(value).label("sum"),
        sa.func.min(value).label("min"),
        sa.func.max(value).label("max"),
        last(fresh.c.ts, sa.DateTime(timezone=True)).label("latest_at"),
        last(fresh.c.event_id, sa.Text).label("latest_id"),
        last(value, sa.Numeric).label("latest_value"),
    ]


def _newer(table: sa.Table, new: Any) -> ColumnElement[bool]:
    """The incoming day's latest event is later than the stored one (by timestamp, event id)."""
    old = table.c
    theirs = sa.tuple_(new.latest_at, new.latest_id)
    ours = sa.tuple_(old.latest_at, old.latest_id)
    return sa.and_(new.latest_at.is_not(None), sa.or_(old.latest_at.is_(None), theirs > ours))


def _values_upsert(metric: UsageMetric, fresh: FromClause, trusted: bool) -> Any:
    value = event_value(metric, fresh, trusted)
    assert value is not None
    day = _utc_day(fresh.c.ts).label("day")
    select = (
        sa.select(sa.literal(metric.id), fresh.c.customer_id, day, value)
        .where(*metric_conditions(metric, fresh, trusted=trusted))
        .distinct()
    )
    insert = postgresql.insert(usage_rollup_value).from_select(
        ["metric_id", "customer_id", "day", "value"], select
    )
    return insert.on_conflict_do_nothing()


def _grouped(
    metric: UsageMetric, fresh: FromClause, trusted: bool, by_customer: bool
) -> tuple[Select[Any], list[str]]:
    """The matching events of `fresh` grouped by (customer and) day, as rollup rows."""
    keys = [fresh.c.customer_id] if by_customer else []
    day = _utc_day(fresh.c.ts).label("day")
    columns = _rollup_columns(metric, fresh, trusted)
    grouped = [*keys, sa.literal_column("day")]
    select = (
        sa.select(sa.literal(metric.id).label("metric_id"), *keys, day, *columns)
        .where(*metric_conditions(metric, fresh, trusted=trusted))
        .group_by(*grouped)
        .order_by(*grouped)
    )
    index = ["metric_id", *(key.name for key in keys), "day"]
    return select, [*index, *(c.name for c in columns if c.name is not None)]


def _upsert_rows(table: sa.Table, rows: Select[Any], names: list[str]) -> Any:
    """Add rollup rows (`names`: the table's key columns, then its aggregates) to `table`."""
    insert = postgresql.insert(table).from_select(names, rows)
    old, new = table.c, insert.excluded
    newer = _newer(table, new)
    return insert.on_conflict_do_update(
        index_elements=[name for name in names if name in ("metric_id", "customer_id", "day")],
        set_={
            "count": old["count"] + new["count"],
            "sum": sa.func.coalesce(old.sum + new.sum, old.sum, new.sum),
            "min": sa.func.least(old.min, new.min),
            "max": sa.func.greatest(old.max, new.max),
            "latest_at": sa.case((newer, new.latest_at), else_=old.latest_at),
            "latest_id": sa.case((newer, new.latest_id), else_=old.latest_id),
            "latest_value": sa.case((newer, new.latest_value), else_=old.latest_value),
        },
    )


def _days_of(metric: UsageMetric, per_customer: FromClause, numeric: bool) -> Select[Any]:
    """Per-day rollup rows from per-customer-and-day ones (`_grouped`): counts and sums add
    up, the minimum is the least, the latest the latest by (timestamp, event id)."""
    c = per_customer.c
    ordered = (c.latest_at.desc(), c.latest_id.desc())

    def last(column: ColumnElement[Any], kind: Any) -> ColumnElement[Any]:
        if metric.aggregation is not Aggregation.LATEST or not numeric:
            return sa.null()
        values = sa.func.array_agg(aggregate_order_by(column, *ordered))
        return sa.type_coerce(values, ARRAY(kind))[1]

    def total(function: Any, column: ColumnElement[Any]) -> ColumnElement[Any]:
        return function(column) if numeric else sa.null()

    columns = [
        sa.cast(sa.func.sum(c["count"]), sa.BigInteger).label("count"),
        total(sa.func.sum, c.sum).label("sum"),
        total(sa.func.min, c.min).label("min"),
        total(sa.func.max, c.max).label("max"),
        last(c.latest_at, sa.DateTime(timezone=True)).label("latest_at"),
        last(c.latest_id, sa.Text).label("latest_id"),
        last(c.latest_value, sa.Numeric).label("latest_value"),
    ]
    return sa.select(c.metric_id, c.day, *columns).group_by(c.metric_id, c.day).order_by(c.day)


def rollup_upsert_ctes(
    metric: UsageMetric, fresh: FromClause, trusted: bool, prefix: str
) -> list[Any]:
    """CTEs adding the matching events of `fresh` (usage_event's columns, e.g. a batch being
    stored) to the metric's rollups, merged with what they hold (named from `prefix`): the
    events grouped once by customer and day, the per-day totals made from those groups.
    `trusted`: the events' numeric properties were checked on ingest (cast unchecked)."""
    if metric.aggregation is Aggregation.UNIQUE_COUNT:
        return [_values_upsert(metric, fresh, trusted).cte(f"{prefix}_values")]
    rows, names = _grouped(metric, fresh, trusted, by_customer=True)
    per_customer = rows.cte(f"{prefix}_groups")
    numeric = event_value(metric, fresh, trusted) is not None and metric.aggregation in NUMERIC
    customers = _upsert_rows(usage_rollup, sa.select(per_customer), names)
    day_names = [name for name in names if name != "customer_id"]
    days = _upsert_rows(usage_rollup_day, _days_of(metric, per_customer, numeric), day_names)
    return [customers.cte(f"{prefix}_customers"), days.cte(f"{prefix}_days")]


class RollupTables(NamedTuple):
    """Where a metric's rollup rows go: the rollup itself, or a build's own tables
    (app/usage/builds.py) with the same columns."""

    customers: sa.TableClause = usage_rollup
    days: sa.TableClause = usage_rollup_day
    values: sa.TableClause = usage_rollup_value


def rollup_inserts(
    metric: UsageMetric, fresh: FromClause, tables: RollupTables = RollupTables()
) -> Any:
    """One statement storing the rollups of the matching events of `fresh` (usage_event's
    columns) where `tables` hold none of their days (a build, one month at a time): the
    events grouped once by customer and day, the per-day rows made from those groups; plain
    inserts, as there is nothing to merge with."""
    if metric.aggregation is Aggregation.UNIQUE_COUNT:
        value = event_value(metric, fresh)
        assert value is not None
        day = _utc_day(fresh.c.ts).label("day")
        distinct = (
            sa.select(sa.literal(metric.id), fresh.c.customer_id, day, value)
            .where(*metric_conditions(metric, fresh))
            .distinct()
        )
        names = ["metric_id", "customer_id", "day", "value"]
        return sa.insert(tables.values).from_select(names, distinct)
    rows, names = _grouped(metric, fresh, False, by_customer=True)
    groups = rows.cte("groups")
    customers = sa.insert(tables.customers).from_select(names, sa.select(groups)).cte("customers")
    numeric = event_value(metric, fresh) is not None and metric.aggregation in NUMERIC
    day_names = [name for name in names if name != "customer_id"]
    days = _days_of(metric, groups, numeric)
    return sa.insert(tables.days).from_select(day_names, days).add_cte(customers)


def rollup_merges(metric: UsageMetric, built: RollupTables, days: Window) -> list[Any]:
    """Statements adding the rows of `built` (a build's tables, `rollup_inserts`) on `days`
    to the metric's rollup, merged with what it holds as a late event's are."""
    merges = []
    for table, source in zip(RollupTables(), built, strict=True):
        if (metric.aggregation is Aggregation.UNIQUE_COUNT) != (table is usage_rollup_value):
            continue
        assert isinstance(table, sa.Table)
        names = [column.name for column in table.columns]
        keys = [source.c[name] for name in names if name in ("customer_id", "day", "value")]
        rows = sa.select(*(source.c[name] for name in names)).order_by(*keys)
        if days.start is not None:
            rows = rows.where(source.c.day >= _day_of(days.start))
        if days.end is not None:
            rows = rows.where(source.c.day < _day_of(days.end))
        if table is usage_rollup_value:
            insert = postgresql.insert(table).from_select(names, rows)
            merges.append(insert.on_conflict_do_nothing())
        else:
            merges.append(_upsert_rows(table, rows, names))
    return merges
