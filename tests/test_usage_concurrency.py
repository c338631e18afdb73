"""Metric definitions changing while events are on their way (app/usage/definitions.py).

A batch is checked by the definitions read before its transaction; a definition made in
between used to be missed: an INDEXED metric created then built its rollup before the batch
was stored, and the store, by the old definitions, did not add the batch to it (its value
short of the batch for good), nor refused a non-number the new SUM reads. Each test makes
the change at that moment, from another connection, by hooking the step that runs between
the check and the store (the partitions' check), and reads the values back.

Batch: b1 acme 5 tokens, b2 acme 7, b3 acme "lots" (not a number), all on 2026-10-05.
SUM of tokens for acme in October: 5 + 7 = 12, b3 refused once the SUM exists.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import UserError
from app.metrics.service import MetricsEngine
from app.metrics.spec import FilterOp
from app.metrics.usage import Aggregation, PropertyFilter, QueryType, Window
from app.tables import customer, usage_metric
from app.usage import bulk, definitions
from app.usage import ingest as ingest_module
from app.usage.bulk import import_events
from app.usage.definitions import MetricInput, MetricUpdate
from app.usage.ingest import ingest
from app.usage.service import UsageService

OCTOBER = Window(datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
BATCH = [
    {
        "id": ident,
        "customer": "acme",
        "name": "api_call",
        "timestamp": "2026-10-05T10:00:00Z",
        "properties": {"tokens": tokens},
    }
    for ident, tokens in (("b1", 5), ("b2", 7), ("b3", "lots"))
]
Ensure = Callable[[Any, Iterable[date]], Awaitable[None]]


def tokens(name: str, kind: QueryType) -> MetricInput:
    return MetricInput(name, "api_call", Aggregation.SUM, "tokens", query_type=kind)


def change_before_the_first_store(
    monkeypatch: pytest.MonkeyPatch, module: Any, change: Callable[[], Awaitable[None]]
) -> list[int]:
    """Run `change` (on its own connections, committed) once, after the first batch was
    checked and before it is stored; the list counts the stores begun."""
    real: Ensure = module.ensure_partitions
    begun: list[int] = []

    async def ensure_then_change(database: Any, months: Iterable[date]) -> None:
        await real(database, months)
        begun.append(1)
        if len(begun) == 1:
            await change()

    monkeypatch.setattr(module, "ensure_partitions", ensure_then_change)
    return begun


async def acme(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        query = sa.select(customer.c.id).where(customer.c.external_id == "acme")
        return int(await connection.scalar(query) or 0)


async def sums(metrics: MetricsEngine, who: int, *idents: int) -> list[float | None]:
    service = UsageService(metrics)
    return [(await service.value(ident, who, OCTOBER)).value for ident in idents]


async def test_an_indexed_metric_created_while_a_batch_is_stored_counts_it(
    engine: AsyncEngine, metrics: MetricsEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    created: list[int] = []

    async def create() -> None:
        created.append((await definitions.create(engine, tokens("t", QueryType.INDEXED))).id)

    begun = change_before_the_first_store(monkeypatch, ingest_module, create)
    result = await ingest(engine, BATCH)
    assert len(begun) == 2  # checked again by the definitions that hold now, stored once
    assert (result.accepted, result.duplicates) == (2, 0)
    assert [(r.id, r.index) for r in result.rejected] == [("b3", 2)]
    assert "metric 't' (SUM) reads it as one" in result.rejected[0].reason
    simple = await definitions.create(engine, tokens("t_simple", QueryType.SIMPLE))
    assert await sums(metrics, await acme(engine), created[0], simple.id) == [12, 12]


async def test_a_filter_changed_while_a_batch_is_stored_applies_to_it(
    engine: AsyncEngine, metrics: MetricsEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An INDEXED SUM over `model = a` events is refiltered to `model = b` while a batch of
    one `a` event (10 tokens) and one `b` event (20) is on its way: the rollup, rebuilt by
    the change, must hold the `b` event only (by the old filter the store added the `a`)."""
    by_model = {m: (PropertyFilter("model", FilterOp.EQ, (m,)),) for m in ("a", "b")}
    metric = await definitions.create(
        engine,
        MetricInput(
            "t",
            "api_call",
            Aggregation.SUM,
            "tokens",
            filters=by_model["a"],
            query_type=QueryType.INDEXED,
        ),
    )

    async def refilter() -> None:
        await definitions.update(engine, metric.id, MetricUpdate(filters=by_model["b"]))

    change_before_the_first_store(monkeypatch, ingest_module, refilter)
    batch = [
        {**BATCH[0], "id": "m1", "properties": {"tokens": 10, "model": "a"}},
        {**BATCH[0], "id": "m2", "properties": {"tokens": 20, "model": "b"}},
    ]
    assert (await ingest(engine, batch)).accepted == 2
    assert await sums(metrics, await acme(engine), metric.id) == [20]


async def test_a_bulk_import_reads_again_a_chunk_checked_by_old_definitions(
    engine: AsyncEngine, metrics: MetricsEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two lines a chunk: the first chunk (b1, b2) is checked, the metric is created, the
    chunk is refused by the store and the file read again from its start, by the new
    definitions: b3 is refused (line 3), nothing is counted twice."""
    path = tmp_path / "events.ndjson"
    path.write_text("".join(json.dumps(item) + "\n" for item in BATCH))
    monkeypatch.setattr(bulk, "CHUNK", 2)
    created: list[int] = []

    async def create() -> None:
        created.append((await definitions.create(engine, tokens("t", QueryType.INDEXED))).id)

    begun = change_before_the_first_store(monkeypatch, bulk, create)
    summary = await import_events(engine, path)
    assert len(begun) == 3  # the first chunk twice, then the second
    assert (summary.lines, summary.accepted, summary.duplicates, summary.rejected) == (3, 2, 0, 1)
    assert [(r.index, r.id) for r in summary.reasons] == [(3, "b3")]
    simple = await definitions.create(engine, tokens("t_simple", QueryType.SIMPLE))
    assert await sums(metrics, await acme(engine), created[0], simple.id) == [12, 12]


async def test_two_metrics_created_at_once_never_share_a_name(engine: AsyncEngine) -> None:
    outcomes = await asyncio.gather(
        *(definitions.create(engine, tokens("same", QueryType.INDEXED)) for _ in range(4)),
        return_exceptions=True,
    )
    refused = [o for o in outcomes if isinstance(o, UserError)]
    assert len(refused) == 3
    assert all("a metric named 'same' exists" in str(error) for error in refused)
    async with engine.connect() as connection:
        named = await connection.scalar(
            sa.select(sa.func.count()).where(usage_metric.c.name == "same")
        )
    assert named == 1


async def test_a_composite_and_a_rename_of_what_it_reads_at_once(engine: AsyncEngine) -> None:
    """Whichever commits first, the other sees it: either the COMPOSITE is refused (no
    metric named `t` any more) or the rename is (`t` is read by a COMPOSITE)."""
    base = await definitions.create(engine, tokens("t", QueryType.SIMPLE))
    composite = MetricInput("twice", query_type=QueryType.COMPOSITE, expression="t + t")
    outcomes = await asyncio.gather(
        definitions.create(engine, composite),
        definitions.update(engine, base.id, MetricUpdate(name="renamed")),
        return_exceptions=True,
    )
    assert sum(isinstance(outcome, UserError) for outcome in outcomes) == 1
    async with engine.connect() as connection:
        live = await definitions.live_metrics(connection)
    for metric in live.values():
        if metric.expression:
            assert metric.expression == "t + t"
            assert "t" in live
