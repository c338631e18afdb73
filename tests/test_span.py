"""dataRange: the span of the stored subscription history."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.metrics.coverage import compile_range
from app.metrics.service import MetricsEngine
from tests.conftest import execute, import_text

QUERY = "{ dataRange { first last } }"
PERIODS = """subscription_id,customer_id,start_date,end_date,monthly_amount,status
s1,A,2024-02-10,2024-03-05,100,trialing
s1,A,2024-03-05,,100,active
s2,B,2024-01-20,2024-06-01,50,active
s3,C,2024-04-01,2024-05-15,70,active
"""


async def test_no_data_has_no_days(engine: AsyncEngine, metrics: MetricsEngine) -> None:
    assert await execute(metrics, QUERY) == {"dataRange": {"first": None, "last": None}}


async def test_from_the_first_start_to_the_last_start_or_end(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    await import_text(engine, PERIODS)
    data = await execute(metrics, QUERY)
    assert data == {"dataRange": {"first": "2024-01-20", "last": "2024-06-01"}}


async def test_an_open_period_started_last_ends_the_range(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    await import_text(engine, PERIODS + "s4,D,2024-07-02,,30,active\n")
    data = await execute(metrics, QUERY)
    assert data == {"dataRange": {"first": "2024-01-20", "last": "2024-07-02"}}


async def test_the_range_reads_the_ends_of_two_indexes(engine: AsyncEngine) -> None:
    """Its first and last day come from the ends of an index each (migration 0029), not from
    every period (2.1 s at a million customers); with sequential scans priced out, as the
    table is tiny here, the plan shows which ones."""
    await import_text(engine, PERIODS)
    sql = compile_range().compile(dialect=engine.dialect)
    async with engine.connect() as connection:
        await connection.execute(sa.text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(await connection.scalars(sa.text(f"EXPLAIN {sql}")))
    assert "Seq Scan" not in plan
    assert "Index Only Scan using subscription_version_valid_from_idx" in plan
    assert "Index Scan Backward using subscription_version_last_change_idx" in plan
