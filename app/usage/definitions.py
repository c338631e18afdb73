"""Usage metric definitions: create, update, soft-delete, list (METRICS.md 9).

`aggregation` and `valueType` are immutable once created. Deletion is soft: a deleted metric is
left out of the list but stays readable by id, with `deletedAt`, and its values stay
queryable. Names are identifiers (a COMPOSITE expression names metrics), unique among the
metrics not deleted. An INDEXED metric's rollup is built when it is created and rebuilt when
what it counts changes (event name, property, filters, query type).

Definitions change one at a time, and never while events are being stored: a change holds a
transaction-scoped advisory lock (app/usage/locks.py) that each event store takes shared and
checks the definitions under (app/usage/ingest.py). So two metrics never take one name, and a
COMPOSITE never names a metric renamed or deleted at the same moment. A rollup built or
rebuilt by a change holds every event stored before it, from a snapshot taken under that
lock, while every event stored after it is rolled up by the store itself; the build runs
after the change has committed, without holding events back (app/usage/builds.py). The
change answers once the build is done; should it fail, the metric is read from its events
until `resume_builds` has built it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import Database, SharedTransaction
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
)
from app.tables import usage_metric
from app.usage import builds
from app.usage.expression import parse_expression, references
from app.usage.locks import hold_build, lock_definitions

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}\Z")  # \Z: `$` matches before a final newline
MAX_FILTERS = 20
MAX_EVENT_NAME = 200
log = logging.getLogger("tidemill.usage")
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
        rollup_build=row.rollup_build,
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


async def live_metrics(connection: AsyncConnection) -> dict[str, UsageMetric]:
    """The metrics not deleted, by name."""
    rows = await connection.execute(
        sa.select(usage_metric).where(usage_metric.c.deleted_at.is_(None))
    )
    return {metric.name: metric for metric in map(from_row, rows)}


async def _built(
    database: Database, builder: AsyncConnection | None, metric: UsageMetric
) -> UsageMetric:
    """The metric as stored once the build its change started is done (module doc); still
    building when the build failed (logged), or when the change is part of a GraphQL
    operation's transaction (built once that has committed)."""
    if metric.rollup_build is None:
        return metric
    if builder is None:
        assert isinstance(database, SharedTransaction)
        _build_after_commit(database, metric.id)
        return metric
    try:
        await builds.finish(builder, metric)  # whole, or superseded by a later change
    except Exception:  # the change stands, its values exact: the build is started again
        log.exception("building the rollup of usage metric %s failed", metric.id)
        return metric
    async with database.connect() as connection:  # as it is now (changed meanwhile?)
        return await fetch(connection, metric.id)


def _build_after_commit(operation: SharedTransaction, ident: int) -> None:
    engine = operation.connection.engine

    async def build() -> None:
        try:
            await resume_builds(engine, ident)
        except Exception:  # the change has committed: the server's next round builds it
            log.exception("building the rollup of usage metric %s failed", ident)

    operation.after_commit.append(build)


async def create(database: Database, metric: MetricInput) -> UsageMetric:
    async with builds.builder(database) as builder:
        async with database.begin() as connection:
            await lock_definitions(connection)
            _check(metric, await live_metrics(connection))
            statement = sa.insert(usage_metric).values(_values(metric)).returning(usage_metric)
            created = from_row((await connection.execute(statement)).one())
            created = await builds.restart(connection, builder, created)
        return await _built(database, builder, created)


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
    async with builds.builder(database) as builder:
        updated, rebuilt = await _update(database, builder, ident, change)
        # a change that counts the same leaves a build at work (if any) to its builder
        return await _built(database, builder, updated) if rebuilt else updated


async def _update(
    database: Database, builder: AsyncConnection | None, ident: int, change: MetricUpdate
) -> tuple[UsageMetric, bool]:
    """The metric as changed, and whether the change emptied its rollup (`builds.restart`)."""
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
        if not _counts_differently(metric, updated):
            return updated, False
        return await builds.restart(connection, builder, updated), True


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
        return await builds.restart(connection, None, deleted)  # read from its events now


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


async def resume_builds(database: Database, only: int | None = None) -> list[int]:
    """Start again every rollup build (of metric `only`) held by no session: whose session
    is gone, or that waited for its change to commit (app/usage/builds.py). The metrics
    whose rollup it made whole."""
    pending = (
        sa.select(usage_metric.c.id, usage_metric.c.rollup_build)
        .where(usage_metric.c.rollup_build.is_not(None), usage_metric.c.deleted_at.is_(None))
        .order_by(usage_metric.c.id)
    )
    if only is not None:
        pending = pending.where(usage_metric.c.id == only)
    async with database.connect() as connection:
        found = (await connection.execute(pending)).all()
    built = []
    for ident, token in found:
        async with builds.builder(database) as builder:  # releases the tokens' locks at the end
            assert builder is not None, "resumed on an engine, never in an operation"
            if not await hold_build(builder, token):
                continue  # its builder is at work
            await builder.commit()
            metric = await _restarted(database, builder, ident, token)
            if (
                metric is not None
                and (await _built(database, builder, metric)).rollup_build is None
            ):
                built.append(ident)
    return built


async def _restarted(
    database: Database, builder: AsyncConnection, ident: int, token: int
) -> UsageMetric | None:
    """The metric with a new build begun, if build `token` is still its own."""
    async with database.begin() as connection:
        await lock_definitions(connection)
        metric = await fetch(connection, ident, lock=True)
        if metric.rollup_build != token or metric.deleted_at is not None:
            return None
        return await builds.restart(connection, builder, metric)


async def keep_built(database: Database, every: float = 60.0) -> None:
    """`resume_builds` now and every `every` seconds, until cancelled (the server's task)."""
    while True:
        try:
            await resume_builds(database)
        except Exception:  # the next round tries again
            log.exception("resuming usage rollup builds failed")
        await asyncio.sleep(every)
