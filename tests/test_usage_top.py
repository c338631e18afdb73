"""usageTop's entries carry their Customer node, read through the customer loaders: one
statement per loader for the whole ranking, whatever its length (the dashboard's usage view
links each ranked customer to its page)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.metrics.service import MetricsEngine
from app.usage.ingest import ingest
from tests.conftest import execute

CREATE = """mutation { createUsageMetric(input: {name: "tokens", eventName: "api_call",
    aggregation: SUM, property: "tokens"}) { id } }"""
TOP = """query($id: ID!, $first: Int!) {
    usageTop(id: $id, start: "2026-10-01", end: "2026-10-31", first: $first) {
        customerId value
        customer { id externalId country mrr status subscriptions { plan } usage(metricId: $id) }
    } }"""


def calls(customers: int) -> list[dict[str, Any]]:
    """cust00..cust29: customer i makes two calls of i tokens each in October (SUM 2 i)."""
    return [
        {
            "id": f"c{i}-{j}",
            "customer": f"cust{i:02}",
            "name": "api_call",
            "timestamp": f"2026-10-{5 + j:02}T00:00:00Z",
            "properties": {"tokens": i},
        }
        for i in range(customers)
        for j in range(2)
    ]


@pytest.fixture
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    sa.event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_ranked_customers_come_as_nodes_in_one_statement_per_loader(
    engine: AsyncEngine, metrics: MetricsEngine, statements: list[str]
) -> None:
    assert (await ingest(engine, calls(30))).accepted == 60
    tokens = (await execute(metrics, CREATE))["createUsageMetric"]["id"]
    counts = []
    for size in (3, 30):
        statements.clear()
        ranks = (await execute(metrics, TOP, {"id": tokens, "first": size}))["usageTop"]
        # cust29 first (58 tokens), down to cust00 (0): each entry's node is its customer
        expected = [29 - n for n in range(size)]
        assert [r["value"] for r in ranks] == [2 * i for i in expected]
        assert [r["customer"]["externalId"] for r in ranks] == [f"cust{i:02}" for i in expected]
        for rank in ranks:
            node = rank["customer"]
            assert node["id"] == rank["customerId"]
            # bare customers (created by their events): no country, no MRR, no subscription
            assert (node["country"], node["mrr"], node["status"]) == (None, 0, "never_active")
            assert node["subscriptions"] == []
            assert node["usage"] == rank["value"]  # all time: October's calls only
        counts.append(len(statements))
    assert counts[0] == counts[1]


async def test_without_customer_selected_no_customer_is_read(
    engine: AsyncEngine, metrics: MetricsEngine, statements: list[str]
) -> None:
    assert (await ingest(engine, calls(3))).accepted == 6
    tokens = (await execute(metrics, CREATE))["createUsageMetric"]["id"]
    statements.clear()
    query = """query($id: ID!) { usageTop(id: $id, start: "2026-10-01", end: "2026-10-31")
        { customerId value } }"""
    ranks = (await execute(metrics, query, {"id": tokens}))["usageTop"]
    assert [r["value"] for r in ranks] == [4, 2, 0]
    assert not [s for s in statements if "FROM customer" in s and "customer.email" in s]
