"""Retention cohorts and realized cohort LTV (METRICS.md 5), computed by hand."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.metrics.service import MetricsEngine
from tests.conftest import execute, execute_errors, import_text
from tests.test_movements import COMPANY

QUERY = """query($spec: QuerySpecInput) {
  cohorts(start: "2024-01-01", end: "2024-04-30", spec: $spec) {
    cohort size ltv
    cells { offset month activeCustomers mrr customerRetention mrrRetention } } }"""


async def cohorts(metrics: MetricsEngine, spec: Any = None) -> dict[str, Any]:
    data = await execute(metrics, QUERY, {"spec": spec})
    return {row["cohort"]: row for row in data["cohorts"]}


async def test_cohort_matrix_by_hand(engine: AsyncEngine, metrics: MetricsEngine) -> None:
    await import_text(engine, COMPANY)
    rows = await cohorts(metrics)
    assert list(rows) == ["2024-01-01", "2024-02-01", "2024-03-01"]
    january = rows["2024-01-01"]  # A, B and D
    assert january["size"] == 3
    cells = [(c["offset"], c["activeCustomers"], c["mrr"]) for c in january["cells"]]
    # B churns in Feb and comes back in Apr: a reactivated member counts again.
    assert cells == [(0, 3, 18000), (1, 2, 13000), (2, 2, 18000), (3, 3, 22000)]
    assert [c["customerRetention"] for c in january["cells"]] == pytest.approx([1, 2 / 3, 2 / 3, 1])
    assert [c["mrrRetention"] for c in january["cells"]] == pytest.approx([1, 13 / 18, 1, 22 / 18])
    february = rows["2024-02-01"]  # C: 200, then 120 from Mar 15
    assert [(c["month"], c["mrr"]) for c in february["cells"]] == [
        ("2024-02-01", 20000),
        ("2024-03-01", 12000),
        ("2024-04-01", 12000),
    ]
    march = rows["2024-03-01"]  # E joined and left inside March
    assert [(c["activeCustomers"], c["mrr"], c["mrrRetention"]) for c in march["cells"]] == [
        (0, 0, None),
        (0, 0, None),
    ]


async def test_realized_cohort_ltv_by_hand(engine: AsyncEngine, metrics: MetricsEngine) -> None:
    await import_text(engine, COMPANY)
    rows = await cohorts(metrics)
    # Jan: A 10000x60 + 15000x61 days, B 5000x26 + 4000x30, D 3000x121 = 2,128,000 cent-days;
    # x 12/365 / 3 members = 23320.55 -> 23321.
    assert rows["2024-01-01"]["ltv"] == 23321
    # Feb: C 20000x43 + 12000x47 = 1,424,000 x 12/365 = 46816.44 -> 46816.
    assert rows["2024-02-01"]["ltv"] == 46816
    # Mar: E 1000 for one day: 32.88 -> 33.
    assert rows["2024-03-01"]["ltv"] == 33


async def test_cohorts_follow_filters_and_refuse_dimensions(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    await import_text(engine, COMPANY)
    pro = await cohorts(metrics, {"filters": [{"field": "plan", "values": ["Pro"]}]})
    assert list(pro) == ["2024-02-01"]
    [error] = await execute_errors(metrics, QUERY, {"spec": {"dimensions": ["plan"]}})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "cohorts take filters, not dimensions" in error["message"]


@pytest.mark.parametrize(
    ("start", "end", "months"),
    [("2024-01-01", "2074-01-31", 601), ("1900-01-01", "2200-12-31", 3612)],
)
async def test_cohorts_over_more_than_fifty_years_are_refused(
    engine: AsyncEngine, metrics: MetricsEngine, start: str, end: str, months: int
) -> None:
    """A matrix grows with the square of its months: one that would span more than 600 is
    refused, naming its span, before any statement runs."""
    await import_text(engine, COMPANY)
    document = f'{{ cohorts(start: "{start}", end: "{end}") {{ cohort size }} }}'
    [error] = await execute_errors(metrics, document)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert f"would span {months} months; at most 600 (fifty years) are served" in error["message"]


async def test_cohorts_over_exactly_fifty_years_are_served(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    await import_text(engine, COMPANY)
    data = await execute(metrics, '{ cohorts(start: "2024-01-01", end: "2073-12-31") { cohort } }')
    assert [row["cohort"] for row in data["cohorts"]] == ["2024-01-01", "2024-02-01", "2024-03-01"]
