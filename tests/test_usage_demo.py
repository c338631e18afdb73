"""The demo company's usage events and metrics (app/demo/usage.py)."""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.demo import DemoCompany
from app.demo.usage import DAYS, METRICS, load_usage
from app.metrics.service import MetricsEngine
from app.metrics.usage import Window
from app.tables import usage_event
from app.usage import definitions
from app.usage.service import UsageService


def _quiet(_stage: str, _count: int) -> None:
    """No progress display."""


async def test_the_demo_streams_usage_and_defines_metrics(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    company = DemoCompany.at(datetime.date(2026, 11, 30), size=20)
    line = await load_usage(engine, company, _quiet)
    assert line.startswith("usage: ")
    assert f"over {DAYS} days" in line
    again = await load_usage(engine, company, _quiet)
    assert again.startswith("usage: 0 events stored")
    found = {m.name: m for m in await definitions.list_metrics(engine)}
    assert sorted(found) == sorted(metric.name for metric in METRICS)
    async with engine.connect() as connection:
        first = await connection.scalar(sa.select(sa.func.min(usage_event.c.ts)))
        who = await connection.scalar(sa.select(sa.func.min(usage_event.c.customer_id)))
    assert first.date() == datetime.date(2026, 11, 30) - datetime.timedelta(days=DAYS - 1)
    service = UsageService(metrics)

    async def value(name: str) -> float | None:
        return (await service.value(found[name].id, who, Window())).value

    tokens, calls = await value("tokens"), await value("api_calls")
    assert calls
    assert tokens
    assert await value("tokens_per_call") == tokens / calls
    assert (await value("large_model_tokens") or 0) < tokens
