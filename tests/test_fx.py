"""Currencies (METRICS.md 7): conversion at the day's rate, no movement from FX alone,
fxAdjustment, fixFx, report currency and missing rates. Rates are set by hand."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import ImportFailed
from app.ingest.fx import Rate, ecb_rates, import_rates, parse_rates
from app.metrics.service import MetricsEngine
from tests.conftest import execute, execute_errors, import_text

PERIODS = """subscription_id,customer_id,start_date,end_date,monthly_amount,currency
u1,U,2024-01-01,,50,USD
x1,X,2024-01-10,2024-03-01,100,EUR
x1,X,2024-03-01,,150,EUR
"""
FIELDS = "date mrr netNewMrr new expansion fxAdjustment"


@pytest.fixture
async def euro_company(engine: AsyncEngine) -> None:
    # One EUR is worth 1.10 USD from Jan 1 and 1.20 USD from Feb 15.
    await import_rates(
        engine,
        [
            Rate("EUR", date(2024, 1, 1), Decimal("1.10")),
            Rate("EUR", date(2024, 2, 15), Decimal("1.20")),
        ],
    )
    await import_text(engine, PERIODS)


async def series(metrics: MetricsEngine, spec: Any = None) -> list[dict[str, Any]]:
    query = f"""query($spec: QuerySpecInput) {{ series(start: "2024-01-01", end: "2024-03-31",
        spec: $spec) {{ currency points {{ {FIELDS} }} }} }}"""
    data = await execute(metrics, query, {"spec": spec})
    points: list[dict[str, Any]] = data["series"]["points"]
    return points


@pytest.mark.usefixtures("euro_company")
async def test_a_rate_change_moves_mrr_but_makes_no_movement(metrics: MetricsEngine) -> None:
    jan, feb, mar = await series(metrics)
    # Jan: U 5000 + X 10000 EUR at 1.10 = 11000.
    assert (jan["mrr"], jan["new"], jan["fxAdjustment"]) == (16000, 16000, 0)
    # Feb: no movement; at Feb 29 X is worth 12000: the 1000 is FX, not revenue.
    assert (feb["mrr"], feb["netNewMrr"], feb["fxAdjustment"]) == (17000, 0, 1000)
    # Mar 1: X goes 100 -> 150 EUR, converted at that day's 1.20: expansion 6000.
    assert (mar["mrr"], mar["expansion"], mar["fxAdjustment"]) == (23000, 6000, 0)


@pytest.mark.usefixtures("euro_company")
async def test_fix_fx_converts_at_the_first_points_rate(metrics: MetricsEngine) -> None:
    jan, feb, mar = await series(metrics, {"fixFx": True})
    assert [p["fxAdjustment"] for p in (jan, feb, mar)] == [0, 0, 0]
    assert (jan["mrr"], feb["mrr"], mar["mrr"]) == (16000, 16000, 21500)
    assert mar["expansion"] == 5500  # 50 EUR at 1.10


@pytest.mark.usefixtures("euro_company")
async def test_report_in_another_currency(metrics: MetricsEngine) -> None:
    query = """{ series(start: "2024-01-01", end: "2024-02-29", spec: {currency: "EUR"}) {
        currency points { mrr fxAdjustment } } }"""
    data = (await execute(metrics, query))["series"]
    assert data["currency"] == "EUR"
    # USD 5000 / 1.10 = 4545.45 -> 4545; / 1.20 = 4166.67 -> 4167.
    assert data["points"] == [
        {"mrr": 14545, "fxAdjustment": 0},
        {"mrr": 14167, "fxAdjustment": -378},
    ]


async def test_a_missing_rate_names_currency_and_day(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    await import_text(
        engine,
        "subscription_id,customer_id,start_date,end_date,monthly_amount,"
        "currency\ng1,G,2024-01-05,,10,GBP\n",
    )
    [error] = await execute_errors(metrics, '{ snapshot(at: "2024-01-31") { mrr } }')
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"].startswith("no FX rate for GBP on or before 2024-01-05")


async def test_bad_report_currency_lists_what_is_accepted(metrics: MetricsEngine) -> None:
    [error] = await execute_errors(
        metrics, '{ snapshot(at: "2024-01-31", spec: {currency: "EURO"}) { mrr } }'
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "currency 'EURO' is not an ISO 4217 code" in error["message"]


async def test_one_currency_per_customer(engine: AsyncEngine) -> None:
    text = (
        "subscription_id,customer_id,start_date,end_date,monthly_amount,currency\n"
        "a,C,2024-01-01,,10,USD\nb,C,2024-01-01,,10,EUR\n"
    )
    with pytest.raises(ImportFailed, match="line 3: customer C is billed in another currency"):
        await import_text(engine, text)
    await import_text(engine, text.splitlines()[0] + "\na,C,2024-01-01,,10,USD\n")
    with pytest.raises(ImportFailed, match="customer C already has subscriptions in another"):
        await import_text(engine, text.splitlines()[0] + "\nb,C,2024-01-01,,10,EUR\n")


def test_rate_files_are_validated_line_by_line() -> None:
    good = parse_rates(["date,currency,rate\n", "2024-01-01,eur,1.1\n"], "rates.csv")
    assert good == [Rate("EUR", date(2024, 1, 1), Decimal("1.1"))]
    lines = [
        "date,currency,rate\n",
        "2024-01-01,EUR,-1\n",
        "2024-13-01,EUR,1\n",
        "2024-01-01,EURO,1\n",
    ]
    with pytest.raises(ImportFailed) as raised:
        parse_rates(lines, "rates.csv")
    assert [reason for _, reason in raised.value.lines] == [
        "rate '-1' must be a positive number",
        "date '2024-13-01' is not a date (YYYY-MM-DD)",
        "currency 'EURO' is not an ISO 4217 code",
    ]


def test_ecb_rates_are_quoted_in_the_base_currency(tmp_path: Path) -> None:
    import zipfile

    archive = tmp_path / "eurofxref-hist.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("eurofxref-hist.csv", "Date,USD,GBP,CYP,\n2024-01-02,1.25,0.5,N/A,\n")
    rates = {r.currency: r.rate for r in ecb_rates("USD", archive)}
    assert rates == {"EUR": Decimal("1.25"), "GBP": Decimal("2.5")}  # 1 GBP = 1.25/0.5 USD


async def test_user_rates_override_and_survive_ecb_reload(engine: AsyncEngine) -> None:
    from app.ingest.fx import load_ecb

    await import_rates(engine, [Rate("EUR", date(2024, 1, 2), Decimal("9"))])
    loaded = await load_ecb(engine, "USD")
    assert loaded > 100_000  # the shipped ECB history, 1999 onwards
    async with engine.connect() as connection:
        kept = await connection.scalar(
            sa.text("SELECT rate FROM fx_rate WHERE currency = 'EUR' AND day = '2024-01-02'")
        )
        usd = await connection.scalar(sa.text("SELECT count(*) FROM fx_rate WHERE currency='USD'"))
    assert kept == Decimal("9")
    assert usd == 0


async def test_a_foreign_customer_who_churns_leaves_no_residue(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    await import_rates(
        engine,
        [
            Rate("EUR", date(2024, 1, 1), Decimal("1.10")),
            Rate("EUR", date(2024, 2, 15), Decimal("1.20")),
        ],
    )
    await import_text(
        engine,
        "subscription_id,customer_id,start_date,end_date,monthly_amount,"
        "currency\ny1,Y,2024-01-10,2024-03-10,100,EUR\n",
    )
    jan, feb, mar = await series(metrics)
    assert (jan["new"], feb["fxAdjustment"], feb["mrr"]) == (11000, 1000, 12000)
    # Churned at 1.20: -12000, although it joined at 11000. MRR is 0 afterwards, not -1000.
    assert (mar["mrr"], mar["netNewMrr"], mar["fxAdjustment"]) == (0, -12000, 0)
    previous = 0
    for point in (jan, feb, mar):
        assert point["mrr"] - previous == point["netNewMrr"] + point["fxAdjustment"]
        previous = point["mrr"]


async def test_cli_fx_import_all_or_nothing(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    import asyncio

    from typer.testing import CliRunner

    from app.cli import cli

    path = tmp_path / "rates.csv"
    path.write_text("date,currency,rate\n2024-01-01,EUR,1.1\n2024-01-02,EUR,zero\n")
    env = {"TIDEMILL_DATABASE_URL": database_url}
    bad = await asyncio.to_thread(CliRunner().invoke, cli, ["fx", "import", str(path)], env=env)
    assert bad.exit_code == 1
    assert "rates.csv, line 3: rate 'zero' is not a number" in " ".join(bad.output.split())
    async with engine.connect() as connection:
        assert await connection.scalar(sa.text("SELECT count(*) FROM fx_rate")) == 0
    path.write_text("date,currency,rate\n2024-01-01,EUR,1.1\n")
    good = await asyncio.to_thread(CliRunner().invoke, cli, ["fx", "import", str(path)], env=env)
    assert good.exit_code == 0, good.output
    assert "imported 1 rates" in good.output
