"""`tidemill usage metrics|value|series` against a real server (the fixtures of test_server)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.metrics.service import MetricsEngine
from app.metrics.usage import Aggregation, QueryType
from app.usage import definitions
from app.usage.definitions import MetricInput
from app.usage.ingest import ingest
from tests.test_cli_client import tidemill_json
from tests.test_server import server

__all__ = ["server"]


@pytest.fixture
async def usage(engine: AsyncEngine) -> None:
    events = [
        {
            "id": f"e{day}",
            "customer": "acme",
            "name": "api_call",
            "timestamp": f"2026-{month:02}-{day:02}T10:00:00Z",
            "properties": {"tokens": day},
        }
        for month, day in ((9, 1), (10, 2), (10, 3), (11, 4))
    ]
    assert (await ingest(engine, events)).accepted == 4
    tokens = MetricInput("tokens", "api_call", Aggregation.SUM, "tokens", description="Tokens")
    await definitions.create(engine, tokens)
    calls = MetricInput("calls", "api_call", Aggregation.COUNT, query_type=QueryType.INDEXED)
    await definitions.create(engine, calls)


@pytest.mark.usefixtures("usage")
async def test_usage_commands(server: str, metrics: MetricsEngine) -> None:
    listed = await tidemill_json(server, "usage", "metrics")
    assert [(m["name"], m["aggregation"], m["queryType"]) for m in listed] == [
        ("tokens", "SUM", "SIMPLE"),
        ("calls", "COUNT", "INDEXED"),
    ]
    october = ["--from", "2026-10-01", "--to", "2026-11-01"]
    [found] = await tidemill_json(server, "usage", "value", "tokens", "--customer", "1", *october)
    assert (found["name"], found["value"]) == ("tokens", 5)
    series = await tidemill_json(
        server, "usage", "series", "2", "--start", "2026-09-01", "--end", "2026-11-30"
    )
    assert [(p["date"], p["value"]) for p in series] == [
        ("2026-09-01", 1),
        ("2026-10-01", 2),
        ("2026-11-01", 1),
    ]
    broken_down = await tidemill_json(
        server,
        "usage",
        "series",
        "tokens",
        "--start",
        "2026-10-01",
        "--end",
        "2026-10-31",
        "-d",
        "customer",
    )
    assert [(row["key"], row["value"]) for row in broken_down] == [("1", 5)]


@pytest.mark.usefixtures("usage")
async def test_usage_series_filters_with_every_operator(server: str) -> None:
    """Tokens per event: 1 (September), 2 and 3 (October), 4 (November)."""

    async def calls(*filters: str) -> list[object]:
        args = [arg for item in filters for arg in ("--filter", item)]
        series = await tidemill_json(
            server,
            "usage",
            "series",
            "calls",
            "--start",
            "2026-09-01",
            "--end",
            "2026-11-30",
            *args,
        )
        return [p["value"] for p in series]

    assert await calls("property.tokens>2") == [0, 1, 1]
    assert await calls("property.tokens>=2", "property.tokens<4") == [0, 2, 0]
    assert await calls("property.tokens<=1.5") == [1, 0, 0]
    assert await calls("property.tokens=2,4") == [0, 1, 1]
    assert await calls("property.tokens!=2,4") == [1, 1, 0]
    assert await calls("property.tokens!=3") == [1, 1, 1]
    assert await calls("property.tokens~4") == [0, 0, 1]


@pytest.mark.usefixtures("usage")
async def test_usage_top_ranks_customers(server: str, engine: AsyncEngine) -> None:
    """acme: 1 + 2 + 3 + 4 tokens; beta: 6 in October."""
    beta = {"id": "b1", "customer": "beta", "name": "api_call"}
    more = [{**beta, "timestamp": "2026-10-09T00:00:00Z", "properties": {"tokens": 6}}]
    assert (await ingest(engine, more)).accepted == 1
    window = ["--start", "2026-09-01", "--end", "2026-11-30"]
    ranked = await tidemill_json(server, "usage", "top", "tokens", *window)
    assert [(r["externalId"], r["value"]) for r in ranked] == [("acme", 10), ("beta", 6)]
    narrowed = await tidemill_json(
        server, "usage", "top", "tokens", *window, "--filter", "property.tokens>2", "--first", "1"
    )
    assert [(r["externalId"], r["value"]) for r in narrowed] == [("acme", 7)]
