"""The dimensions of the MRR cube: region, customer_age, status, pricing_model, currency —
breakdowns by hand, and for customer-level ones the breakdown adds up to the total."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.metrics.service import MetricsEngine
from tests.conftest import execute, import_text

PERIODS = """subscription_id,customer_id,start_date,end_date,amount,interval,quantity,status,country
a,US1,2023-01-01,,100,month,,active,US
b,DE1,2024-05-01,,30,month,3,active,DE
c,JP1,2024-01-15,2024-04-01,50,month,,active,JP
c,JP1,2024-04-01,,50,month,,past_due,JP
d,XX1,2024-06-01,,1200,year,,active,
"""


async def breakdown(metrics: MetricsEngine, dimension: str) -> dict[str, dict[str, Any]]:
    query = """query($d: [String!]!) { series(start: "2024-06-01", end: "2024-06-30",
        spec: {dimensions: $d}) { points { mrr customers }
        breakdown { label points { mrr customers } } } }"""
    series = (await execute(metrics, query, {"d": [dimension]}))["series"]
    entries = {e["label"]: e["points"][0] for e in series["breakdown"]}
    entries["TOTAL"] = series["points"][0]
    return entries


@pytest.fixture
async def world(engine: AsyncEngine) -> None:
    await import_text(engine, PERIODS)


@pytest.mark.usefixtures("world")
@pytest.mark.parametrize(
    ("dimension", "expected"),
    [
        ("region", {"North America": 10000, "Europe": 9000, "Asia Pacific": 5000, "Other": 10000}),
        # at Jun 30: US1 since 2023-01 (17 months), JP1 since 2024-01 (5), DE1 and XX1 new
        ("customer_age", {"12-24": 10000, "0-6": 24000}),
        ("status", {"active": 29000, "past_due": 5000}),
        ("pricing_model", {"flat": 25000, "per_unit": 9000}),
        ("currency", {"USD": 34000}),
    ],
)
async def test_breakdowns_by_hand(
    metrics: MetricsEngine, dimension: str, expected: dict[str, int]
) -> None:
    entries = await breakdown(metrics, dimension)
    total = entries.pop("TOTAL")
    assert {label: point["mrr"] for label, point in entries.items()} == expected
    assert total["mrr"] == 34000
    assert sum(point["mrr"] for point in entries.values()) == total["mrr"]


@pytest.mark.usefixtures("world")
async def test_customer_level_breakdowns_add_up(metrics: MetricsEngine) -> None:
    for dimension in ("customer_country", "region", "customer_age", "currency"):
        entries = await breakdown(metrics, dimension)
        total = entries.pop("TOTAL")
        assert sum(p["customers"] for p in entries.values()) == total["customers"], dimension


@pytest.mark.usefixtures("world")
async def test_region_filter(metrics: MetricsEngine) -> None:
    query = """{ snapshot(at: "2024-06-30", spec: {filters: [
        {field: "region", op: IN, values: ["Europe", "Asia Pacific"]}]}) { mrr customers } }"""
    assert (await execute(metrics, query))["snapshot"] == {"mrr": 14000, "customers": 2}
