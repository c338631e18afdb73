"""A breakdown's top values plus one "other" entry (app/metrics/top.py), by hand: the other
entry is its own scope, not the sum of the values it holds."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.metrics.service import MetricsEngine
from tests.conftest import execute, execute_errors, import_text

# Monthly MRR in dollars, Jan-Mar 2024:
#   A  US  Pro 300 throughout
#   B  US  Basic 100 throughout
#   C  DE  Mini 20 in Jan-Feb, then Micro 30 from Mar 1 (a plan switch)
#   D  DE  Micro 10 and Mini 5 from Feb 1 (two plans at once)
# At Mar 31: Pro 30000, Basic 10000, Micro 4000 (C 3000 + D 1000), Mini 500 (D).
PERIODS = """subscription_id,customer_id,start_date,end_date,monthly_amount,plan,country
a,A,2024-01-01,,300,Pro,US
b,B,2024-01-01,,100,Basic,US
c1,C,2024-01-01,2024-03-01,20,Mini,DE
c2,C,2024-03-01,,30,Micro,DE
d1,D,2024-02-01,,10,Micro,DE
d2,D,2024-02-01,,5,Mini,DE
"""
QUERY = """query($spec: QuerySpecInput, $top: Int) {
  series(start: "2024-01-01", end: "2024-03-31", spec: $spec) {
    breakdown(top: $top) { key label other
      points { mrr customers new expansion churn newCustomers } } } }"""
CREATE = """mutation($name: String!, $definition: SegmentNodeInput!) {
  createSegment(name: $name, definition: $definition) { id } }"""


@pytest.fixture
async def company(engine: AsyncEngine) -> None:
    await import_text(engine, PERIODS)


async def entries(metrics: MetricsEngine, top: int | None, **spec: Any) -> dict[str, Any]:
    spec = {"dimensions": ["plan"]} | spec
    data = await execute(metrics, QUERY, {"spec": spec, "top": top})
    return {" / ".join(e["key"]): e for e in data["series"]["breakdown"]}


def column(entry: dict[str, Any], field: str) -> list[int]:
    return [point[field] for point in entry["points"]]


@pytest.mark.usefixtures("company")
async def test_the_other_entry_is_one_scope(metrics: MetricsEngine) -> None:
    found = await entries(metrics, top=2)
    assert list(found) == ["Pro", "Basic", "(other)"]
    assert [e["other"] for e in found.values()] == [False, False, True]
    other = found["(other)"]
    assert other["label"] == "Other"
    # Jan: C 2000. Feb: D joins with 1000 + 500 (one new customer). Mar: C's move from Mini
    # to Micro stays inside the scope: an expansion of 1000, not churn plus new.
    assert column(other, "mrr") == [2000, 3500, 4500]
    assert column(other, "customers") == [1, 2, 2]
    assert column(other, "new") == [2000, 1500, 0]
    assert column(other, "newCustomers") == [1, 1, 0]
    assert column(other, "expansion") == [0, 0, 1000]
    assert column(other, "churn") == [0, 0, 0]
    assert column(found["Pro"], "mrr") == [30000, 30000, 30000]


@pytest.mark.usefixtures("company")
async def test_top_values_are_those_with_the_most_mrr_at_the_end(metrics: MetricsEngine) -> None:
    found = await entries(metrics, top=3)
    assert list(found) == ["Pro", "Basic", "Micro", "(other)"]
    # Mini alone: C until its switch (churned from the scope on Mar 1), then D's 500.
    assert column(found["(other)"], "mrr") == [2000, 2500, 500]
    assert column(found["(other)"], "churn") == [0, 0, -2000]


@pytest.mark.usefixtures("company")
async def test_no_other_entry_when_every_value_fits(metrics: MetricsEngine) -> None:
    assert await entries(metrics, top=4) == await entries(metrics, top=None)
    assert "(other)" not in await entries(metrics, top=4)


@pytest.mark.usefixtures("company")
async def test_top_with_compared_segments_gives_each_segment_its_other(
    metrics: MetricsEngine,
) -> None:
    ids = []
    for country in ("US", "DE"):
        definition = {"field": "customer_country", "values": [country]}
        created = await execute(metrics, CREATE, {"name": country, "definition": definition})
        ids.append(created["createSegment"]["id"])
    found = await entries(metrics, top=1, compareSegments=ids)
    assert list(found) == ["US / Pro", "US / (other)", "DE / (other)"]
    assert found["US / (other)"]["label"] == "US / Other"
    assert column(found["US / (other)"], "mrr") == [10000, 10000, 10000]
    assert column(found["DE / (other)"], "mrr") == [2000, 3500, 4500]
    assert column(found["DE / (other)"], "expansion") == [0, 0, 1000]


@pytest.mark.usefixtures("company")
async def test_customer_level_other(metrics: MetricsEngine) -> None:
    found = await entries(metrics, top=1, dimensions=["customer_country"])
    assert list(found) == ["US", "(other)"]
    assert column(found["(other)"], "mrr") == [2000, 3500, 4500]
    assert column(found["(other)"], "customers") == [1, 2, 2]


@pytest.mark.usefixtures("company")
async def test_top_needs_one_dimension_and_a_sane_count(metrics: MetricsEngine) -> None:
    errors = await execute_errors(
        metrics, QUERY, {"spec": {"dimensions": ["plan", "customer_country"]}, "top": 0}
    )
    [error] = errors
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "top takes exactly one dimension, not 2" in error["message"]
    assert "top must be between 1 and 100, not 0" in error["message"]
