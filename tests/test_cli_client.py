"""The metric commands of the CLI against a real server (the fixtures of test_server)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import typer
from sqlalchemy.ext.asyncio import AsyncEngine

from app.metrics.service import MetricsEngine
from tests.conftest import PLAYBOOK, import_text
from tests.test_movements import COMPANY
from tests.test_segments import save_segments
from tests.test_server import _tidemill, server
from tests.test_trials import TRIALS

__all__ = ["server"]  # the module-scoped uvicorn fixture


async def tidemill_json(url: str, *args: str) -> Any:
    result = await asyncio.to_thread(_tidemill, url, *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.fixture
async def playbook(engine: AsyncEngine) -> None:
    await import_text(engine, PLAYBOOK.read_text())


@pytest.mark.usefixtures("playbook")
async def test_mrr_breakdown(server: str) -> None:
    rows = await tidemill_json(
        server,
        "mrr",
        "breakdown",
        "-d",
        "plan_interval",
        "--start",
        "2019-04-01",
        "--end",
        "2019-04-30",
    )
    assert rows == [
        {
            "key": "month",
            "date": "2019-04-01",
            "endDate": "2019-04-30",
            "mrr": 89500,
            "customers": 17,
            "arpa": 5265,
            "new": 12000,
            "expansion": 6500,
            "contraction": 0,
            "churn": 0,
            "reactivation": 5000,
            "netNewMrr": 23500,
            "currency": "USD",
        }
    ]


@pytest.mark.usefixtures("playbook")
async def test_summary_has_the_headline_metrics(server: str) -> None:
    rows = await tidemill_json(server, "summary", "--start", "2019-07-01", "--end", "2019-08-31")
    by_metric = {row["metric"]: row for row in rows}
    assert {"mrr", "arr", "customers", "arpa", "churn", "nrr", "ltv", "trialConversion"} <= set(
        by_metric
    )
    assert by_metric["churn"]["current"] == -16000
    assert by_metric["trialConversion"]["current"] is None  # no trials in this dataset


async def test_churn_retention_ltv_trials(server: str, engine: AsyncEngine) -> None:
    await import_text(engine, COMPANY)
    window = ("--start", "2024-01-01", "--end", "2024-04-30")
    logo = await tidemill_json(server, "churn", "--type", "logo", *window)
    assert [(r["externalId"], r["amount"], r["plans"]) for r in logo] == [
        ("B", -5000, ["Basic"]),
        ("E", -1000, ["Basic"]),
    ]
    revenue = await tidemill_json(server, "churn", *window)
    assert [r["kind"] for r in revenue] == ["churn", "churn", "contraction"]
    cells = await tidemill_json(server, "retention", *window)
    assert sorted({(c["cohort"], c["size"]) for c in cells}) == [
        ("2024-01-01", 3),
        ("2024-02-01", 1),
        ("2024-03-01", 1),
    ]
    ltv = await tidemill_json(server, "ltv", "--start", "2024-03-01", "--end", "2024-05-31")
    assert [p["ltv"] for p in ltv] == [30000, 51000, 76500]
    table = await asyncio.to_thread(_tidemill, server, "retention", *window)
    assert table.exit_code == 0
    assert "100.00 %" in table.output


async def test_trials_command(server: str, engine: AsyncEngine) -> None:
    await import_text(engine, TRIALS)
    rows = await tidemill_json(server, "trials", "--start", "2024-01-01", "--end", "2024-03-31")
    assert [(r["trialsStarted"], r["trialsConverted"], r["trialsExpired"]) for r in rows] == [
        (4, 1, 1),
        (1, 1, 1),
        (1, 1, 0),
    ]
    table = await asyncio.to_thread(
        _tidemill, server, "trials", "--start", "2024-01-01", "--end", "2024-03-31"
    )
    assert "funnel: 6 started, 3 converted, 2 expired, 1 in progress" in table.output


async def test_bad_options_are_explained(server: str) -> None:
    bad_type = await asyncio.to_thread(_tidemill, server, "churn", "--type", "people")
    assert bad_type.exit_code == 1
    assert "--type 'people' is not logo or revenue" in bad_type.output
    no_dimension = await asyncio.to_thread(_tidemill, server, "mrr", "breakdown")
    assert no_dimension.exit_code == 1
    assert "give at least one --dimension" in no_dimension.output
    for condition in ("plan", "=Pro", "plan!Pro"):
        no_operator = await asyncio.to_thread(_tidemill, server, "mrr", "--filter", condition)
        assert no_operator.exit_code == 1
        assert f"--filter '{condition}' is not a condition; write key=value" in no_operator.output
    wrong_type = await asyncio.to_thread(_tidemill, server, "mrr", "--filter", "plan>Pro")
    assert wrong_type.exit_code == 1
    assert "filter plan (string) does not take GT" in wrong_type.output


async def test_customers_segments_and_compare(
    engine: AsyncEngine, metrics: MetricsEngine, server: str
) -> None:
    saved = await save_segments(engine, metrics)
    listed = await tidemill_json(server, "segments")
    assert [s["name"] for s in listed] == ["Big or Pro", "Not US", "US SaaS"]
    outside = await tidemill_json(server, "customers", "--segment", saved["Not US"])
    assert [(c["externalId"], c["mrr"], c["status"]) for c in outside] == [
        ("B", 0, "churned"),
        ("C", 20000, "active"),
    ]
    by_mrr = await tidemill_json(server, "customers", "--sort", "mrr", "--first", "2")
    assert [c["externalId"] for c in by_mrr] == ["C", "A"]
    compared = await tidemill_json(
        server,
        "mrr",
        "breakdown",
        "--compare",
        saved["US SaaS"],
        "--compare",
        saved["Not US"],
        "--start",
        "2024-03-01",
        "--end",
        "2024-03-31",
    )
    assert [(row["key"], row["mrr"]) for row in compared] == [("US SaaS", 15000), ("Not US", 20000)]
    scoped = await tidemill_json(server, "mrr", "--at", "2024-03-31", "--segment", saved["US SaaS"])
    assert scoped[0]["mrr"] == 15000


async def test_an_empty_database_says_so(server: str, engine: AsyncEngine) -> None:
    async def said(*args: str) -> str:
        result = await asyncio.to_thread(_tidemill, server, *args)
        assert result.exit_code == 0, result.output
        return " ".join(result.stdout.split())

    assert await said("mrr", "--at", "2024-01-31") == "no data on 2024-01-31 (no data stored yet)"
    assert await said("segments") == (
        "no saved segments yet (the createSegment mutation saves one)"
    )
    assert await said("customers") == "no customers match"


def test_filters_read_every_operator() -> None:
    from app.cli.metrics import filter_input

    assert [filter_input(item) for item in ("plan=Pro", "plan=Pro, Team", " plan != Pro")] == [
        {"field": "plan", "op": "EQ", "values": ["Pro"]},
        {"field": "plan", "op": "IN", "values": ["Pro", "Team"]},
        {"field": "plan", "op": "NEQ", "values": ["Pro"]},
    ]
    assert filter_input("plan!=Pro,Team")["op"] == "NOT_IN"
    ops = [filter_input(f"attr.seats{sign}10")["op"] for sign in (">", ">=", "<", "<=", "~")]
    assert ops == ["GT", "GTE", "LT", "LTE", "CONTAINS"]
    assert filter_input("attr.note=a>b=c") == {
        "field": "attr.note",
        "op": "EQ",
        "values": ["a>b=c"],
    }
    assert filter_input("attr.x<=-1")["values"] == ["-1"]


@pytest.mark.parametrize("item", ["plan=", "plan=a,,b", "plan!=a, ", "attr.seats>", "plan~ "])
def test_a_filter_with_a_value_left_out_is_refused(
    item: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`plan=` matched the plan named "" (none): the CLI then said there was no data."""
    from app.cli.metrics import filter_input

    with pytest.raises(typer.Exit) as refused:
        filter_input(item)
    assert refused.value.exit_code == 1
    error = capsys.readouterr().err
    assert f"--filter {item!r} has an empty value; write key=value" in " ".join(error.split())
