"""An INDEXED metric's rollup built beside the event stores (app/usage/builds.py).

Each test hooks the build at the moment it reads the events (the definition committed, the
snapshot taken) and does there what a live system does: stores events, reads values, changes
the definition. A rollup that misses or doubles an event shows in the values, and in its rows
against those of the same metric built afterwards with nothing running beside it.

Events (tokens), all for acme:
  before the metric: a1 2026-10-05 10:00 5, a2 2026-10-05 11:00 7
  during its build:  d1 2026-10-05 10:30 3, d2 2026-10-05 12:00 7, d3 2026-11-02 09:00 4
October (a1 a2 d1 d2): COUNT 4, SUM 22, MIN 3, MAX 7, AVG 5.5, UNIQUE_COUNT 3 (5 7 3),
LATEST 7 (d2, the last); all time adds d3: COUNT 5, SUM 26, AVG 5.2, UNIQUE_COUNT 4, LATEST 4.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.metrics.service import MetricsEngine
from app.metrics.spec import FilterOp
from app.metrics.usage import Aggregation, PropertyFilter, QueryType, UsageMetric, Window
from app.tables import customer, usage_rollup, usage_rollup_day, usage_rollup_value
from app.usage import builds, definitions
from app.usage.definitions import MetricInput, MetricUpdate
from app.usage.ingest import ingest
from app.usage.service import UsageSeriesRequest, UsageService
from tests.conftest import execute

OCTOBER = Window(datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
ALL_TIME = Window()


def event(ident: str, moment: str, tokens: int, model: str = "a") -> dict[str, Any]:
    properties = {"tokens": tokens, "model": model}
    return {"id": ident, "customer": "acme", "name": "api_call", "timestamp": moment} | {
        "properties": properties
    }


BEFORE = [event("a1", "2026-10-05T10:00:00Z", 5), event("a2", "2026-10-05T11:00:00Z", 7)]
DURING = [
    event("d1", "2026-10-05T10:30:00Z", 3),
    event("d2", "2026-10-05T12:00:00Z", 7),
    event("d3", "2026-11-02T09:00:00Z", 4),  # a month with no partition when the build began
]
EXPECTED = {  # aggregation: (October, all time)
    Aggregation.COUNT: (4, 5),
    Aggregation.SUM: (22, 26),
    Aggregation.MIN: (3, 3),
    Aggregation.MAX: (7, 7),
    Aggregation.AVG: (5.5, 5.2),
    Aggregation.UNIQUE_COUNT: (3, 4),
    Aggregation.LATEST: (7, 4),
}
Build = Callable[[AsyncConnection, UsageMetric], Awaitable[list[date]]]


def tokens(name: str, aggregation: Aggregation, **given: Any) -> MetricInput:
    prop = None if aggregation is Aggregation.COUNT else "tokens"
    return MetricInput(name, "api_call", aggregation, prop, query_type=QueryType.INDEXED, **given)


def during_the_build(monkeypatch: pytest.MonkeyPatch, work: Callable[[], Awaitable[None]]) -> None:
    """Run `work` once, when the first build is about to read its snapshot's events."""
    real: Build = builds._build
    done: list[int] = []

    async def build(builder: AsyncConnection, metric: UsageMetric) -> list[date]:
        if not done:
            done.append(1)
            await work()
        return await real(builder, metric)

    monkeypatch.setattr(builds, "_build", build)


async def values(metrics: MetricsEngine, ident: int) -> tuple[float | None, float | None]:
    service = UsageService(metrics)
    async with metrics.engine.connect() as connection:
        query = sa.select(customer.c.id).where(customer.c.external_id == "acme")
        who = int(await connection.scalar(query) or 0)
    october = await service.value(ident, who, OCTOBER)
    return october.value, (await service.value(ident, who, ALL_TIME)).value


async def rollup_rows(engine: AsyncEngine, ident: int) -> list[tuple[Any, ...]]:
    """The metric's rows in each rollup table, without its id (to compare two metrics)."""
    rows: list[tuple[Any, ...]] = []
    async with engine.connect() as connection:
        for table in (usage_rollup, usage_rollup_day, usage_rollup_value):
            columns = [c for c in table.columns if c.name != "metric_id"]
            query = sa.select(*columns).where(table.c.metric_id == ident).order_by(*columns)
            rows += [(table.name, *row) for row in await connection.execute(query)]
    return rows


async def built_afresh(engine: AsyncEngine, metric: MetricInput) -> int:
    """The same definition built with nothing beside it (the reference rollup)."""
    fresh = await definitions.create(engine, metric)
    assert fresh.rollup_build is None
    return fresh.id


@pytest.mark.parametrize("aggregation", list(Aggregation))
async def test_events_stored_during_a_build_are_counted_once(
    engine: AsyncEngine,
    metrics: MetricsEngine,
    monkeypatch: pytest.MonkeyPatch,
    aggregation: Aggregation,
) -> None:
    assert (await ingest(engine, BEFORE)).accepted == 2
    seen: dict[str, Any] = {}

    async def store_and_read() -> None:
        # held back by the old build (inside the definition's transaction) until it ended
        result = await asyncio.wait_for(ingest(engine, DURING), timeout=20)
        seen["accepted"] = result.accepted
        (building,) = await definitions.list_metrics(engine)
        seen["building"] = building.rollup_build is not None
        seen["values"] = await values(metrics, building.id)  # from the events meanwhile

    during_the_build(monkeypatch, store_and_read)
    metric = await definitions.create(engine, tokens("t", aggregation))
    assert seen == {"accepted": 3, "building": True, "values": EXPECTED[aggregation]}
    assert metric.rollup_build is None
    assert await values(metrics, metric.id) == EXPECTED[aggregation]
    reference = await built_afresh(engine, tokens("reference", aggregation))
    assert await rollup_rows(engine, metric.id) == await rollup_rows(engine, reference)
    assert await rollup_rows(engine, metric.id)  # the rollup is what answered


async def test_a_whole_series_reads_the_merged_per_day_totals(
    engine: AsyncEngine, metrics: MetricsEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ingest(engine, BEFORE)

    async def store() -> None:
        await asyncio.wait_for(ingest(engine, DURING), timeout=20)

    during_the_build(monkeypatch, store)
    metric = await definitions.create(engine, tokens("t", Aggregation.SUM))
    request = UsageSeriesRequest(metric.id, date(2026, 9, 1), date(2026, 11, 30))
    points = await UsageService(metrics).points(request)
    assert [(p.date, p.value) for p in points] == [
        (date(2026, 9, 1), 0),
        (date(2026, 10, 1), 22),
        (date(2026, 11, 1), 4),
    ]


async def test_a_change_during_a_build_supersedes_it(
    engine: AsyncEngine, metrics: MetricsEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refiltered (model b only) while its first build runs: the first build stops before
    merging, the change's own build counts the b events only (the d events are b)."""
    await ingest(engine, BEFORE)
    by_model = {m: (PropertyFilter("model", FilterOp.EQ, (m,)),) for m in ("a", "b")}
    created: list[UsageMetric] = []

    async def refilter() -> None:
        (metric,) = await definitions.list_metrics(engine)
        await ingest(
            engine, [{**e, "properties": {**e["properties"], "model": "b"}} for e in DURING]
        )
        created.append(
            await definitions.update(engine, metric.id, MetricUpdate(filters=by_model["b"]))
        )

    during_the_build(monkeypatch, refilter)
    metric = await definitions.create(engine, tokens("t", Aggregation.SUM, filters=by_model["a"]))
    assert metric.filters == by_model["b"]  # as stored when the first build gave up
    assert created[0].rollup_build is None  # the change's build, finished first
    assert await values(metrics, metric.id) == (10, 14)  # d1 3 + d2 7; with d3 4
    reference = await built_afresh(
        engine, tokens("reference", Aggregation.SUM, filters=by_model["b"])
    )
    assert await rollup_rows(engine, metric.id) == await rollup_rows(engine, reference)


async def test_a_rename_during_a_build_leaves_it_to_its_builder(
    engine: AsyncEngine, metrics: MetricsEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A change that counts the same (a name, a description) does not empty the rollup, and
    does not build it again beside the build at work (from no snapshot, it would count the
    events stored since the change twice)."""
    await ingest(engine, BEFORE)
    renamed: list[UsageMetric] = []

    async def rename() -> None:
        await asyncio.wait_for(ingest(engine, DURING), timeout=20)
        (metric,) = await definitions.list_metrics(engine)
        renamed.append(await definitions.update(engine, metric.id, MetricUpdate(name="t2")))

    during_the_build(monkeypatch, rename)
    metric = await definitions.create(engine, tokens("t", Aggregation.SUM))
    assert renamed[0].rollup_build is not None  # answered at once, the build still at work
    assert (metric.name, metric.rollup_build) == ("t2", None)  # as stored once built
    assert await values(metrics, metric.id) == (22, 26)
    reference = await built_afresh(engine, tokens("reference", Aggregation.SUM))
    assert await rollup_rows(engine, metric.id) == await rollup_rows(engine, reference)


async def test_a_failed_build_is_read_from_events_until_resumed(
    engine: AsyncEngine,
    metrics: MetricsEngine,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await ingest(engine, BEFORE + DURING)
    real = builds._merge

    async def fail(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("the connection broke")

    monkeypatch.setattr(builds, "_merge", fail)
    with caplog.at_level(logging.ERROR, logger="tidemill.usage"):
        metric = await definitions.create(engine, tokens("t", Aggregation.SUM))
    assert metric.rollup_build is not None  # created, still building
    assert "building the rollup of usage metric" in caplog.text
    assert await rollup_rows(engine, metric.id) == []  # nothing half-merged
    assert await values(metrics, metric.id) == (22, 26)  # from the events
    monkeypatch.setattr(builds, "_merge", real)
    assert await definitions.resume_builds(engine) == [metric.id]
    assert (await definitions.get(engine, metric.id)).rollup_build is None
    assert await values(metrics, metric.id) == (22, 26)
    reference = await built_afresh(engine, tokens("reference", Aggregation.SUM))
    assert await rollup_rows(engine, metric.id) == await rollup_rows(engine, reference)
    assert await definitions.resume_builds(engine) == []  # nothing left


async def test_a_build_at_work_is_not_started_again(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await ingest(engine, BEFORE)
    resumed: list[list[int]] = []

    async def resume() -> None:
        resumed.append(await definitions.resume_builds(engine))

    during_the_build(monkeypatch, resume)
    metric = await definitions.create(engine, tokens("t", Aggregation.SUM))
    assert resumed == [[]]  # its builder held the build's lock
    assert metric.rollup_build is None


CREATE = """
mutation($input: UsageMetricInput!) { createUsageMetric(input: $input) { id name } }
"""


async def test_a_graphql_operation_builds_once_it_has_committed(
    engine: AsyncEngine, metrics: MetricsEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mutation operation is one transaction (schema/transactions.py): the build starts
    when it has committed, and events are stored meanwhile."""
    await ingest(engine, BEFORE)

    async def store() -> None:
        await asyncio.wait_for(ingest(engine, DURING), timeout=20)

    during_the_build(monkeypatch, store)
    given = {"name": "t", "eventName": "api_call", "aggregation": "SUM", "property": "tokens"}
    data = await execute(metrics, CREATE, {"input": given | {"queryType": "INDEXED"}})
    ident = int(data["createUsageMetric"]["id"])
    assert (await definitions.get(engine, ident)).rollup_build is None
    assert await values(metrics, ident) == (22, 26)
    reference = await built_afresh(engine, tokens("reference", Aggregation.SUM))
    assert await rollup_rows(engine, ident) == await rollup_rows(engine, reference)


def test_merges_cover_each_day_of_the_months_read_once() -> None:
    months = [date(2024, 2, 1), date(2026, 10, 1)]  # 29 and 31 days
    bounds = [(w.start, w.end) for w in builds._spans(months)]
    days, lengths = [], []
    for start, end in bounds:
        assert start is not None
        assert end is not None
        assert start.tzinfo is UTC
        lengths.append((end - start).days)
        days += [(start + timedelta(days=n)).date() for n in range(lengths[-1])]
    feb = [date(2024, 2, 1) + timedelta(days=n) for n in range(29)]
    october = [date(2026, 10, 1) + timedelta(days=n) for n in range(31)]
    assert days == feb + october
    assert max(lengths) == builds.MERGE_DAYS
