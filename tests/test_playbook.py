"""Acceptance on dbt's mrr-playbook data, imported through the real CLI."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from app.cli import cli
from app.metrics.service import MetricsEngine
from tests.conftest import PLAYBOOK, execute

SERIES = """
query { series(start: "2017-09-01", end: "2020-01-31", interval: MONTH) {
  points { date endDate mrr customers new expansion contraction churn reactivation netNewMrr
           churnedCustomers customersDiff }
} }"""


@pytest.fixture
async def playbook(engine: AsyncEngine, database_url: str) -> None:
    runner = CliRunner()
    env = {"TIDEMILL_DATABASE_URL": database_url}
    args = ["import", "subscriptions", str(PLAYBOOK)]
    result = await asyncio.to_thread(runner.invoke, cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert "imported 121 rows" in result.output


async def monthly(metrics: MetricsEngine) -> dict[str, dict[str, Any]]:
    data = await execute(metrics, SERIES)
    return {point["date"][:7]: point for point in data["series"]["points"]}


@pytest.mark.usefixtures("playbook")
async def test_april_and_august_2019(metrics: MetricsEngine) -> None:
    points = await monthly(metrics)
    april, august = points["2019-04"], points["2019-08"]
    assert (april["mrr"], april["customers"]) == (89500, 17)
    assert (april["new"], april["reactivation"], april["expansion"]) == (12000, 5000, 6500)
    assert (august["mrr"], august["customers"], august["new"]) == (124000, 26, 10500)
    assert (august["churn"], august["churnedCustomers"], august["contraction"]) == (
        -16000,
        3,
        -5500,
    )


@pytest.mark.usefixtures("playbook")
async def test_every_month_mrr_change_is_the_sum_of_movements(metrics: MetricsEngine) -> None:
    points = list((await monthly(metrics)).values())
    assert len(points) == 29
    previous_mrr, previous_customers = 0, 0
    for point in points:
        kinds = ("new", "expansion", "contraction", "churn", "reactivation")
        assert point["netNewMrr"] == sum(point[kind] for kind in kinds)
        assert point["mrr"] - previous_mrr == point["netNewMrr"], point["date"]
        assert point["customers"] - previous_customers == point["customersDiff"]
        previous_mrr, previous_customers = point["mrr"], point["customers"]


@pytest.mark.usefixtures("playbook")
async def test_reimporting_the_same_file_changes_nothing(
    engine: AsyncEngine, database_url: str, metrics: MetricsEngine
) -> None:
    before = await monthly(metrics)
    runner = CliRunner()
    args = ["import", "subscriptions", str(PLAYBOOK)]
    env = {"TIDEMILL_DATABASE_URL": database_url}
    result = await asyncio.to_thread(runner.invoke, cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert "0 subscriptions changed, 0 customers recomputed" in result.output
    assert await monthly(metrics) == before
