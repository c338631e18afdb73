"""Usage metric definitions: create, update, soft-delete, list (METRICS.md 9).

`aggregation` and `valueType` are immutable once created. Deletion is soft: a deleted metric is
left out of the list but stays readable by id, with `deletedAt`, and its values stay
queryable. Names are identifiers (a COMPOSITE expression names metrics), unique among the
metrics not deleted. An INDEXED metric's rollup is built when it is created and rebuilt when
what it counts changes (event name, property, filters, query type).

Definitions change one at a time, and never while events are being stored: a change holds a
transaction-scoped advisory lock (DEFINITIONS_LOCK) that each event store takes shared and
checks the definitions under (app/usage/ingest.py). So two metrics never take one name, a
COMPOSITE never names a metric renamed or deleted at the same moment, and a rollup built or
rebuilt by a change holds every event stored before it, while every event stored after it
is rolled up by the store itself.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import Database
from app.errors import NotFound, UserError
from app.metrics.spec import FilterOp
from app.metrics.usage import (
    NUMERIC,
    PROPERTY_NAME,
    Aggregation,
    PropertyFilter,
    QueryType,
    UsageMetric,
    ValueType,
    filter_problems,
    rollup_inserts,
)
from app.tables import (
    usage_metric,
    usage_rollup,
    usage_rollup_day,
    usage_rollup_value,
)
from app.usage import partitions
from app.usage.expression import parse_expression, references

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
MAX_FILTERS = 20
MAX_EVENT_NAME = 200
REBUILD_WORK_MEM = "256MB"  # a month's events sorted by customer and day in memory
DEFINITIONS_LOCK = 0x75736D64  # "usmd": changes of usage metric definitions (module doc)
UPDATABLE = ("name", "description", "event_name", "property", "filters", "query_type", "expression")


@dataclass(frozen=True)
class MetricInput:
    name: str
    event_name: str | None = None
    aggregation: Aggregation | None = None
    property: str | None = None
    value_type: ValueType = ValueType.FLOAT
    filters: tuple[PropertyFilter, ...] = ()
    query_type: QueryType = QueryType.SIMPLE
    expression: str | None = None
    description: str = ""


@dataclass(frozen=True)
class MetricUpdate:
    """The fields to change (None: keep). `aggregation` and `value_type` are refused when
    they differ from the metric's."""

    name: str | None = None
    description: str | None = None
    event_name: str | None = None
    property: str | None = None
    filters: tuple[PropertyFilter, ...] | None = None
    query_type: QueryType | None = None
    expression: str | None = None
    aggregation: Aggregation | None = None
    value_type: ValueType | None = None


def from_row(row: Any) -> UsageMetric:
    filters = tuple(
        PropertyFilter(item["property"], FilterOp(item["op"]), tuple(item["values"]))
        for item in row.filters
    )
    return UsageMetric(
        id=row.id,
        name=row.name,
        description=row.description,
        event_name=row.event_name,
        aggregation=Aggregation(row.aggregation) if row.aggregation else None,
        property=row.property,
        value_type=ValueType(row.value_type),
        filters=filters,
        query_type=QueryType(row.query_type),
        expression=row.expression,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
    )


def _values(metric: MetricInput) -> dict[str, Any]:
    return {
        "name": metric.name,
        "description": metric.description,
        "event_name": metric.event_name,
        "aggregation": metric.aggregation.value if metric.aggregation else None,
        "property": metric.property,
        "value_type": metric.value_type.value,
        "filters": [
            {"property": f.property, "op": f.op.value, "values": list(f.values)}
            for f in metric.filters
        ],
        "query_type": metric.query_type.value,
        "expression": metric.expression,
    }


def _composite_problems(metric: MetricInput, live: dict[str, UsageMetric]) -> list[str]:
    problems = []
    if metric.expression is None or not metric.expression.strip():
        return ["a COMPOSITE metric needs an expression, e.g. `input_tokens + output_tokens`"]
    for name in ("event_name", "aggregation", "property"):
        if getattr(metric, name) is not None:
            problems.append(f"a COMPOSITE metric takes no {_camel(name)} (its expression says all)")
    if metric.filters:
        problems.append("a COMPOSITE metric takes no filters (filter the metrics it reads)")
    try:
        tree = parse_expression(metric.expression)
    except UserError as error:
        return [*problems, str(error)]
    for name in references(tree):
        found = live.get(name)
        if found is None:
            known = ", ".join(sorted(live)) or "none yet"
            problems.append(f"expression: no metric named {name!r}; metrics: {known}")
        elif found.query_type is QueryType.COMPOSITE:
            problems.append(f"expression: {name!r} is COMPOSITE; name SIMPLE or INDEXED metrics")
    return problems


def _event_problems(metric: MetricInput) -> list[str]:
    problems = []
    if metric.expression is not None:
        problems.append("only a COMPOSITE metric takes an expression")
    if not metric.event_name or len(metric.event_name) > MAX_EVENT_NAME:
        problems.append(f"eventName is required (1-{MAX_EVENT_NAME} characters)")
    aggregation = metric.aggregation
    if aggregation is None:
        accepted = ", ".join(a.value for a in Aggregation)
        problems.append(f"aggregation is required; accepted: {accepted}")
    elif metric.property is None and aggregation is not Aggregation.COUNT:
        problems.append(f"{aggregation.value} needs a property (the event property it reads)")
    if metric.property is not None and not PROPERTY_NAME.match(metric.property):
        problems.append("property names are 1-100 letters, digits or _.$@:/-")
    if aggregation in NUMERIC and metric.value_type is ValueType.STRING:
        problems.append(f"{aggregation.value} reads numbers: valueType must be INTEGER or FLOAT")
    if len(metric.filters) > MAX_FILTERS:
        problems.append(f"at most {MAX_FILTERS} filters")
    for index, item in enumerate(metric.filters):
        problems += filter_problems(item, index)
    return problems


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def problems_of(metric: MetricInput, live: dict[str, UsageMetric], ident: int | None) -> list[str]:
    """Everything wrong with a definition, given the metrics not deleted (by name)."""
    problems = []
    if not NAME.match(metric.name):
        problems.append(
            f"name {metric.name[:100]!r} must be an identifier (letters, digits, _; not "
            "starting with a digit; at most 100), so expressions can name it"
        )
    other = live.get(metric.name)
    if other is not None and other.id != ident:
        problems.append(f"a metric named {metric.name!r} exists (id {other.id})")
    if metric.query_type is QueryType.COMPOSITE:
        return problems + _composite_problems(metric, live)
    return problems + _event_problems(metric)


def _check(metric: MetricInput, live: dict[str, UsageMetric], ident: int | None = None) -> None:
    problems = problems_of(metric, live, ident)
    if problems:
        raise UserError("; ".join(problems), problems)


async def lock_definitions(connection: AsyncConnection, shared: bool = False) -> None:
    """Hold the definitions' lock to the end of the transaction: exclusive to change them,
    shared to store events by them (module doc)."""
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    await connection.execute(sa.text(f"SELECT {function}(:key)"), {"key": DEFINITIONS_LOCK})


async def live_metrics(connection: AsyncConnection) -> dict[str, UsageMetric]:
    """The metrics not deleted, by name."""
    rows = await connection.execute(
        sa.select(usage_metric).where(usage_metric.c.deleted_at.is_(None))
    )
    return {metric.name: metric for metric in map(from_row, rows)}


async def _rebuild(connection: AsyncConnection, metric: UsageMetric) -> None:
    """Drop the metric's rollup and, when INDEXED, build it from every event: one statement
    per month's partition (each well under the statement timeout at 10 million events a
    year), its sorts in memory."""
    for table in (usage_rollup, usage_rollup_day, usage_rollup_value):
        await connection.execute(sa.delete(table).where(table.c.metric_id == metric.id))
    if metric.query_type is QueryType.INDEXED and metric.deleted_at is None:
        await connection.exec_driver_sql(f"SET LOCAL work_mem = '{REBUILD_WORK_MEM}'")
        for month in await partitions.existing(connection):
            await connection.execute(rollup_inserts(metric, partitions.partition_table(month)))


async def create(database: Database, metric: MetricInput) -> UsageMetric:
    async with database.begin() as connection:
        await lock_definitions(connection)
        _check(metric, await live_metrics(connection))
        statement = sa.insert(usage_metric).values(_values(metric)).returning(usage_metric)
        created = from_row((await connection.execute(statement)).one())
        await _rebuild(connection, created)
    return created


async def fetch(connection: AsyncConnection, ident: int, lock: bool = False) -> UsageMetric:
    query = sa.select(usage_metric).where(usage_metric.c.id == ident)
    row = (await connection.execute(query.with_for_update() if lock else query)).one_or_none()
    if row is None:
        raise NotFound(f"no usage metric with id {ident}; see `usageMetrics`")
    return from_row(row)


def _as_input(metric: UsageMetric) -> MetricInput:
    return MetricInput(
        name=metric.name,
        event_name=metric.event_name,
        aggregation=metric.aggregation,
        property=metric.property,
        value_type=metric.value_type,
        filters=metric.filters,
        query_type=metric.query_type,
        expression=metric.expression,
        description=metric.description,
    )


def immutable_problems(metric: UsageMetric, change: MetricUpdate) -> list[str]:
    problems = []
    if change.aggregation is not None and change.aggregation is not metric.aggregation:
        was = metric.aggregation.value if metric.aggregation else "none"
        problems.append(
            f"aggregation is immutable: metric {metric.name!r} aggregates {was}; "
            "create a new metric for another aggregation"
        )
    if change.value_type is not None and change.value_type is not metric.value_type:
        problems.append(
            f"valueType is immutable: metric {metric.name!r} is {metric.value_type.value}; "
            "create a new metric for another value type"
        )
    composite = QueryType.COMPOSITE
    if change.query_type is not None and (change.query_type is composite) != (
        metric.query_type is composite
    ):
        problems.append("queryType cannot change to or from COMPOSITE; create a new metric")
    return problems


def _changed(current: MetricInput, change: MetricUpdate) -> MetricInput:
    given = {name: value for name in UPDATABLE if (value := getattr(change, name)) is not None}
    return replace(current, **given)


async def update(database: Database, ident: int, change: MetricUpdate) -> UsageMetric:
    async with database.begin() as connection:
        await lock_definitions(connection)
        metric = await fetch(connection, ident, lock=True)
        if metric.deleted_at is not None:
            raise UserError(f"usage metric {ident} is deleted; deleted metrics are read-only")
        if problems := immutable_problems(metric, change):
            raise UserError("; ".join(problems), problems)
        wanted = _changed(_as_input(metric), change)
        _check(wanted, await live_metrics(connection), ident)
        if wanted.name != metric.name and (users := await _readers(connection, metric)):
            raise UserError(  # they name it in their expressions
                f"metric {metric.name!r} is read by COMPOSITE {', '.join(users)}, which name "
                "it; redefine those first to rename it"
            )
        statement = (
            sa.update(usage_metric)
            .where(usage_metric.c.id == ident)
            .values(**_values(wanted), updated_at=sa.func.now())
            .returning(usage_metric)
        )
        updated = from_row((await connection.execute(statement)).one())
        if _counts_differently(metric, updated):
            await _rebuild(connection, updated)
    return updated


def _counts_differently(before: UsageMetric, after: UsageMetric) -> bool:
    fields = ("event_name", "property", "filters", "query_type")
    return any(getattr(before, name) != getattr(after, name) for name in fields)


async def _readers(connection: AsyncConnection, metric: UsageMetric) -> list[str]:
    """The COMPOSITE metrics (not deleted) whose expression reads `metric`, by name."""
    return sorted(
        other.name
        for other in (await live_metrics(connection)).values()
        if other.expression and metric.name in references(parse_expression(other.expression))
    )


async def delete(database: Database, ident: int) -> UsageMetric:
    """Soft-delete: refused while a COMPOSITE metric not deleted reads it."""
    async with database.begin() as connection:
        await lock_definitions(connection)
        metric = await fetch(connection, ident, lock=True)
        if metric.deleted_at is not None:
            return metric
        if users := await _readers(connection, metric):
            raise UserError(
                f"metric {metric.name!r} is read by COMPOSITE {', '.join(users)}; "
                "delete or redefine those first"
            )
        statement = (
            sa.update(usage_metric)
            .where(usage_metric.c.id == ident)
            .values(deleted_at=sa.func.now())
            .returning(usage_metric)
        )
        deleted = from_row((await connection.execute(statement)).one())
        await _rebuild(connection, deleted)  # a deleted metric is read from its events
    return deleted


async def get(database: Database, ident: int) -> UsageMetric:
    async with database.connect() as connection:
        return await fetch(connection, ident)


async def list_metrics(database: Database, include_deleted: bool = False) -> list[UsageMetric]:
    query = sa.select(usage_metric).order_by(usage_metric.c.id)
    if not include_deleted:
        query = query.where(usage_metric.c.deleted_at.is_(None))
    async with database.connect() as connection:
        return [from_row(row) for row in await connection.execute(query)]


async def fetch_many(connection: AsyncConnection, ids: Sequence[int]) -> dict[int, UsageMetric]:
    rows = await connection.execute(sa.select(usage_metric).where(usage_metric.c.id.in_(ids)))
    return {metric.id: metric for metric in map(from_row, rows)}
