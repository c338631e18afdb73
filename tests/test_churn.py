"""Churn detail: churned customers and revenue-churn events, paginated, by hand."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.metrics.service import MetricsEngine
from tests.conftest import execute, execute_errors, import_text
from tests.test_movements import COMPANY

QUERY = """query($first: Int!, $after: String, $spec: QuerySpecInput) {
  churn(start: "2024-01-01", end: "2024-04-30", spec: $spec) {
    currency
    churnedCustomers(first: $first, after: $after) {
      totalCount totalAmount pageInfo { endCursor hasNextPage }
      events { externalId day kind amount mrrBefore mrrAfter plans } }
    revenueChurn(first: $first, after: $after) {
      totalCount totalAmount pageInfo { endCursor hasNextPage }
      events { externalId day kind amount plans } } } }"""


async def churn(metrics: MetricsEngine, **variables: Any) -> dict[str, Any]:
    data = await execute(metrics, QUERY, {"first": 50, **variables})
    result: dict[str, Any] = data["churn"]
    return result


@pytest.fixture
async def company(engine: AsyncEngine) -> None:
    await import_text(engine, COMPANY)


@pytest.mark.usefixtures("company")
async def test_churned_customers_and_revenue_churn(metrics: MetricsEngine) -> None:
    data = await churn(metrics)
    logo = data["churnedCustomers"]
    # B churns Feb 10 (-5000, Basic), E churns Mar 2 (-1000, Basic).
    assert (logo["totalCount"], logo["totalAmount"]) == (2, -6000)
    assert [
        (e["externalId"], e["day"], e["amount"], e["mrrBefore"], e["plans"]) for e in logo["events"]
    ] == [
        ("B", "2024-02-10", -5000, 5000, ["Basic"]),
        ("E", "2024-03-02", -1000, 1000, ["Basic"]),
    ]
    revenue = data["revenueChurn"]
    # ... plus C's contraction from 200 to 120 on Mar 15 (Pro): -8000.
    assert (revenue["totalCount"], revenue["totalAmount"]) == (3, -14000)
    assert [(e["externalId"], e["kind"], e["plans"]) for e in revenue["events"]] == [
        ("B", "churn", ["Basic"]),
        ("E", "churn", ["Basic"]),
        ("C", "contraction", ["Pro"]),
    ]


@pytest.mark.usefixtures("company")
async def test_events_add_up_to_the_series(metrics: MetricsEngine) -> None:
    data = await execute(
        metrics,
        """{ series(start: "2024-01-01", end: "2024-04-30",
        interval: YEAR) { points { churn contraction } } }""",
    )
    [point] = data["series"]["points"]
    revenue = (await churn(metrics))["revenueChurn"]
    assert revenue["totalAmount"] == point["churn"] + point["contraction"]


@pytest.mark.usefixtures("company")
async def test_pages_follow_the_cursor(metrics: MetricsEngine) -> None:
    first = (await churn(metrics, first=2))["revenueChurn"]
    assert [e["externalId"] for e in first["events"]] == ["B", "E"]
    assert first["pageInfo"]["hasNextPage"] is True
    second = (await churn(metrics, first=2, after=first["pageInfo"]["endCursor"]))["revenueChurn"]
    assert [e["externalId"] for e in second["events"]] == ["C"]
    assert second["pageInfo"]["hasNextPage"] is False
    assert second["totalCount"] == 3


@pytest.mark.usefixtures("company")
async def test_filters_and_bad_arguments(metrics: MetricsEngine) -> None:
    pro = await churn(metrics, spec={"filters": [{"field": "plan", "values": ["Pro"]}]})
    assert pro["churnedCustomers"]["totalCount"] == 0
    assert pro["revenueChurn"]["totalAmount"] == -8000
    [error] = await execute_errors(metrics, QUERY, {"first": 50, "after": "nonsense"})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "'nonsense' is not a cursor returned by this field" in error["message"]
    [error] = await execute_errors(metrics, QUERY, {"first": 0})
    assert "first must be between 1 and 500, not 0" in error["message"]
