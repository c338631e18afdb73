"""The HTTP edge and the CLI client commands against a real running server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from app.cli import cli
from app.config import load_settings
from schema.asgi import create_app
from tests.conftest import PLAYBOOK, import_text
from tests.edge import real_app, running


@pytest.fixture
def server(database_url: str) -> Iterator[str]:
    """A real uvicorn server on a free loopback port, serving the (emptied) test database.

    One per test: a server remembers what it saw of the database at start-up (whether any API
    key exists), so it must not outlive the test whose database it started on."""
    with running(real_app(database_url)) as url:
        yield url


@pytest.fixture
async def playbook(engine: AsyncEngine) -> None:
    await import_text(engine, PLAYBOOK.read_text())


async def test_health_and_readiness(server: str, engine: AsyncEngine) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


async def test_readiness_fails_when_the_database_is_unreachable() -> None:
    settings = load_settings(database_url="postgresql://nobody@127.0.0.1:1/none")
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["database"] == "unreachable"


@pytest.mark.usefixtures("playbook")
async def test_graphql_over_http_and_graphiql(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        response = await client.post(
            "/graphql", json={"query": '{ snapshot(at: "2019-04-30") { mrr customers } }'}
        )
        page = await client.get("/graphql", headers={"Accept": "text/html"})
    assert response.json() == {
        "data": {"snapshot": {"mrr": 89500, "customers": 17}},
        "extensions": {"plan": "rollup"},  # a whole day: the per-period aggregates answer
    }
    assert response.headers["content-type"] == "application/json"
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()


def _tidemill(server: str, *args: str) -> Any:
    env = {"TIDEMILL_URL": f"{server}/graphql", "TIDEMILL_API_KEY": "", "COLUMNS": "200"}
    return CliRunner().invoke(cli, list(args), env=env)


@pytest.mark.usefixtures("playbook")
async def test_cli_mrr_at_a_day_as_json(server: str) -> None:
    result = await asyncio.to_thread(_tidemill, server, "mrr", "--at", "2019-06-30", "-f", "json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert (row["date"], row["mrr"], row["customers"]) == ("2019-06-30", 113500, 22)


@pytest.mark.usefixtures("playbook")
async def test_cli_mrr_series_as_csv_and_table(server: str) -> None:
    args = ("mrr", "--start", "2019-03-01", "--end", "2019-04-30", "--interval", "month")
    result = await asyncio.to_thread(_tidemill, server, *args, "--format", "csv")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        "date,endDate,mrr_cents,customers,arpa_cents,new_cents,expansion_cents,"
        "contraction_cents,churn_cents,reactivation_cents,netNewMrr_cents,currency"
    )
    assert lines[2] == "2019-04-01,2019-04-30,89500,17,5265,12000,6500,0,0,5000,23500,USD"
    table = await asyncio.to_thread(_tidemill, server, *args)
    assert table.exit_code == 0
    assert "895.00" in table.output
    assert "amounts in USD" in table.output


@pytest.mark.usefixtures("playbook")
async def test_cli_arr_breakdown_and_summary(server: str) -> None:
    arr = await asyncio.to_thread(_tidemill, server, "arr", "--at", "2019-04-30", "-f", "json")
    assert json.loads(arr.output)[0]["arr"] == 12 * 89500
    summary = await asyncio.to_thread(
        _tidemill, server, "summary", "--start", "2019-07-01", "--end", "2019-08-31", "-f", "json"
    )
    assert summary.exit_code == 0, summary.output
    rows = {row["metric"]: row for row in json.loads(summary.output)}
    assert (rows["mrr"]["current"], rows["mrr"]["previous"]) == (124000, 135000)
    assert rows["customers"]["current"] == 26
    assert isinstance(rows["customers"]["current"], int)  # a count, not 26.0
    assert rows["mrr"]["percentageChange"] == pytest.approx(-11000 / 135000)


async def test_cli_explains_unreachable_server_and_bad_arguments(server: str) -> None:
    down = await asyncio.to_thread(_tidemill, "http://127.0.0.1:1", "mrr")
    assert down.exit_code == 1
    assert "cannot reach the Tidemill server at http://127.0.0.1:1/graphql" in down.output
    bad = await asyncio.to_thread(
        _tidemill, server, "mrr", "breakdown", "--start", "2019-03-01", "-d", "planet"
    )
    assert bad.exit_code == 1
    assert "[BAD_USER_INPUT] unknown dimension 'planet'" in " ".join(bad.output.split())
    assert "Traceback" not in bad.output
