"""Only the selected fields are computed: a query for `mrr` alone runs neither the
per-customer (churn, NRR) SQL nor the churn-average history, by either plan (the movement scan,
or the rollup: it then reads no per-customer columns)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.metrics.service import MetricsEngine
from tests.conftest import execute, import_text
from tests.test_movements import COMPANY


@pytest.fixture
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    sa.event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(engine.sync_engine, "before_cursor_execute", record)


async def run(metrics: MetricsEngine, fields: str) -> None:
    await execute(
        metrics, f'{{ series(start: "2024-01-01", end: "2024-04-30") {{ points {{ {fields} }} }} }}'
    )


def metric_statements(statements: list[str]) -> list[str]:
    return [s for s in statements if "generate_series" in s]


@pytest.fixture
def scan(engine: AsyncEngine) -> MetricsEngine:
    return MetricsEngine(engine, rollups=False)


async def test_mrr_alone_runs_one_lean_statement(
    engine: AsyncEngine, scan: MetricsEngine, statements: list[str]
) -> None:
    await import_text(engine, COMPANY)
    statements.clear()
    await run(scan, "mrr")
    [series] = metric_statements(statements)
    assert "first_before" not in series  # no per-customer pass


async def test_nrr_adds_the_per_customer_pass_and_ltv_the_history(
    engine: AsyncEngine, scan: MetricsEngine, statements: list[str]
) -> None:
    await import_text(engine, COMPANY)
    statements.clear()
    await run(scan, "mrr nrr")
    [series] = metric_statements(statements)
    assert "first_before" in series
    statements.clear()
    await run(scan, "mrr ltv")
    assert len(metric_statements(statements)) == 2  # the series and the monthly churn history


async def test_the_rollup_reads_per_customer_columns_only_when_asked(
    engine: AsyncEngine, metrics: MetricsEngine, statements: list[str]
) -> None:
    await import_text(engine, COMPANY)
    statements.clear()
    await run(metrics, "mrr")
    [series] = metric_statements(statements)
    assert "FROM rollup" in series
    assert "retained_delta" not in series
    statements.clear()
    await run(metrics, "mrr nrr")
    [series] = metric_statements(statements)
    assert "retained_delta" in series
    statements.clear()
    await run(metrics, "mrr ltv")
    assert len(metric_statements(statements)) == 2


async def test_a_cut_range_reads_movements_only_for_per_customer_fields(
    engine: AsyncEngine, metrics: MetricsEngine, statements: list[str]
) -> None:
    """A range that cuts its first and last months: sums and stocks come from rollup rows
    alone; a distinct count adds a pass over the cut months' own movements."""
    await import_text(engine, COMPANY)
    cut = '{ series(start: "2024-01-15", end: "2024-04-10") { points { %s } } }'
    statements.clear()
    await execute(metrics, cut % "mrr churn customers")
    [series] = metric_statements(statements)
    assert "FROM rollup" in series
    assert "FROM movement" not in series
    statements.clear()
    await execute(metrics, cut % "mrr churnCustomers")
    [series] = metric_statements(statements)
    assert "FROM rollup" in series
    assert "FROM movement" in series
