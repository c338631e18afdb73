"""The MRR waterfall of one period (app/metrics/waterfall.py), by hand."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.metrics.service import MetricsEngine
from tests.conftest import execute, execute_errors, import_text
from tests.test_movements import COMPANY

QUERY = """query($period: Date) {
  series(start: "2024-01-01", end: "2024-04-30") {
    waterfall(date: $period) { date endDate steps { kind amount start end base size } } } }"""


@pytest.fixture
async def company(engine: AsyncEngine) -> None:
    await import_text(engine, COMPANY)


@pytest.mark.usefixtures("company")
async def test_march_step_by_step(metrics: MetricsEngine) -> None:
    data = await execute(metrics, QUERY, {"period": "2024-03-01"})
    waterfall = data["series"]["waterfall"]
    assert (waterfall["date"], waterfall["endDate"]) == ("2024-03-01", "2024-03-31")
    # Feb 29: 33000. March: E new +1000, A +5000, C -8000, E churns -1000. Mar 31: 30000.
    assert [
        (s["kind"], s["amount"], s["start"], s["end"], s["base"], s["size"])
        for s in waterfall["steps"]
    ] == [
        ("opening", 33000, 0, 33000, 0, 33000),
        ("new", 1000, 33000, 34000, 33000, 1000),
        ("expansion", 5000, 34000, 39000, 34000, 5000),
        ("reactivation", 0, 39000, 39000, 39000, 0),
        ("contraction", -8000, 39000, 31000, 31000, 8000),
        ("churn", -1000, 31000, 30000, 30000, 1000),
        ("fx_adjustment", 0, 30000, 30000, 30000, 0),
        ("closing", 30000, 0, 30000, 0, 30000),
    ]


@pytest.mark.usefixtures("company")
async def test_the_last_period_by_default(metrics: MetricsEngine) -> None:
    steps = (await execute(metrics, QUERY))["series"]["waterfall"]["steps"]
    # April: B reactivates at 4000, from 30000 to 34000.
    assert {s["kind"]: s["amount"] for s in steps if s["amount"]} == {
        "opening": 30000,
        "reactivation": 4000,
        "closing": 34000,
    }


@pytest.mark.usefixtures("company")
async def test_a_day_that_starts_no_period(metrics: MetricsEngine) -> None:
    [error] = await execute_errors(metrics, QUERY, {"period": "2024-03-02"})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "no period of the series starts on 2024-03-02" in error["message"]
    assert "2024-01-01 .. 2024-04-01" in error["message"]
