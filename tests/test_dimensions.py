"""The dimensions of the MRR cube: region, customer_age, status, pricing_model, currency —
breakdowns by hand, and for customer-level ones the breakdown adds up to the total."""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.metrics.mrr import AGE_BUCKETS, customer_age
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


def _age_by_definition(since: Any, end: Any) -> Any:
    """The bucket as docs/metrics.md words it: the months of `age(end, since)`."""
    age = sa.func.age(end, since)
    months = sa.extract("year", age) * 12 + sa.extract("month", age)
    return sa.case(
        (since.is_(None), sa.null()),
        (months < 6, "0-6"),
        (months < 12, "6-12"),
        (months < 24, "12-24"),
        else_="24+",
    )


async def test_customer_age_counts_the_months_of_age(engine: AsyncEngine) -> None:
    # every first `new` day of five years (and none) against every end day of a leap year and
    # the next (month ends, February 29, days before the first's day of the month), the end a
    # parameter as in a request
    days = (
        sa.func.generate_series(
            sa.literal(date(2021, 1, 1)), sa.literal(date(2025, 12, 31)), sa.text("'1 day'")
        )
        .table_valued("day")
        .render_derived()
    )
    since = sa.union_all(
        sa.select(sa.cast(days.c.day, sa.Date).label("day")), sa.select(sa.null())
    ).subquery()
    end = sa.bindparam("end", type_=sa.Date)
    bucket = customer_age(since.c.day, end)
    query = sa.select(
        bucket,
        sa.func.count(),
        sa.func.count().filter(bucket.is_distinct_from(_age_by_definition(since.c.day, end))),
    ).group_by(bucket)
    counted: Counter[str | None] = Counter()
    differing: Counter[str | None] = Counter()
    async with engine.connect() as connection:
        for offset in range(731):
            at = {"end": date(2024, 1, 1) + timedelta(days=offset)}
            for label, count, wrong in await connection.execute(query, at):
                counted[label] += count
                differing[label] += wrong
    assert set(counted) == {*AGE_BUCKETS, None}
    assert counted.total() == 1827 * 731
    assert differing.total() == 0, differing


@pytest.mark.usefixtures("world")
async def test_region_filter(metrics: MetricsEngine) -> None:
    query = """{ snapshot(at: "2024-06-30", spec: {filters: [
        {field: "region", op: IN, values: ["Europe", "Asia Pacific"]}]}) { mrr customers } }"""
    assert (await execute(metrics, query))["snapshot"] == {"mrr": 14000, "customers": 2}
