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


# X's last movements (its churn on Jun 1; Y joins on Jul 1 and grows on Oct 1) come after the
# queried ends and after the last rate (Feb 15): no query may need a rate for those days.
LATER = """subscription_id,customer_id,start_date,end_date,monthly_amount,currency
u1,U,2024-01-01,,50,USD
x1,X,2024-01-10,2024-03-01,100,EUR
x1,X,2024-03-01,2024-06-01,150,EUR
y1,Y,2024-07-01,2024-10-01,200,EUR
y1,Y,2024-10-01,,300,EUR
"""


@pytest.fixture
async def later_euro_movements(engine: AsyncEngine) -> None:
    await import_rates(
        engine,
        [
            Rate("EUR", date(2024, 1, 1), Decimal("1.10")),
            Rate("EUR", date(2024, 2, 15), Decimal("1.20")),
        ],
    )
    await import_text(engine, LATER)


@pytest.mark.usefixtures("later_euro_movements")
async def test_a_series_ending_before_later_movements_converts(metrics: MetricsEngine) -> None:
    jan, feb, mar = await series(metrics)
    assert (jan["mrr"], jan["new"], jan["fxAdjustment"]) == (16000, 16000, 0)
    assert (feb["mrr"], feb["netNewMrr"], feb["fxAdjustment"]) == (17000, 0, 1000)
    assert (mar["mrr"], mar["expansion"], mar["fxAdjustment"]) == (23000, 6000, 0)


@pytest.mark.usefixtures("later_euro_movements")
async def test_a_series_starting_after_the_first_movements(metrics: MetricsEngine) -> None:
    query = """{ series(start: "2024-02-01", end: "2024-08-31", interval: QUARTER) {
        points { date mrr netNewMrr churn new fxAdjustment } } }"""
    q1, q2, q3 = (await execute(metrics, query))["series"]["points"]
    # Opening on Jan 31: U 5000 + X 100 EUR at 1.10. Q1 (Feb-Mar) ends at 5000 + 150 x 1.20.
    assert (q1["mrr"], q1["netNewMrr"], q1["fxAdjustment"]) == (23000, 6000, 1000)
    assert (q2["mrr"], q2["churn"], q2["fxAdjustment"]) == (5000, -18000, 0)
    assert (q3["mrr"], q3["new"], q3["fxAdjustment"]) == (29000, 24000, 0)
    mrr_before = 16000
    for point in (q1, q2, q3):
        assert point["mrr"] - mrr_before == point["netNewMrr"] + point["fxAdjustment"]
        mrr_before = point["mrr"]


@pytest.mark.usefixtures("later_euro_movements")
async def test_every_snapshot_is_the_series_point_of_its_day(metrics: MetricsEngine) -> None:
    query = """{ series(start: "2024-01-01", end: "2024-12-31") { points { endDate mrr } } }"""
    points = (await execute(metrics, query))["series"]["points"]
    ends = " ".join(f'd{i}: snapshot(at: "{p["endDate"]}") {{ mrr }}' for i, p in enumerate(points))
    snapshots = await execute(metrics, f"{{ {ends} }}")
    assert [snapshots[f"d{i}"]["mrr"] for i in range(12)] == [p["mrr"] for p in points]
    assert [p["mrr"] for p in points][5:10] == [5000, 29000, 29000, 29000, 41000]


@pytest.mark.usefixtures("later_euro_movements")
async def test_snapshots_before_later_movements(metrics: MetricsEngine) -> None:
    query = """{ march: snapshot(at: "2024-03-20") { mrr customers arr }
                 august: snapshot(at: "2024-08-20") { mrr customers netNewMrr } }"""
    data = await execute(metrics, query)
    assert data["march"] == {"mrr": 23000, "customers": 2, "arr": 276000}
    # U 5000 + Y 200 EUR at the last rate, 1.20; Y's Oct 1 expansion is still to come.
    assert data["august"] == {"mrr": 29000, "customers": 2, "netNewMrr": 0}


@pytest.mark.usefixtures("later_euro_movements")
async def test_a_breakdown_before_later_movements(metrics: MetricsEngine) -> None:
    query = """{ series(start: "2024-01-01", end: "2024-03-31",
        spec: {dimensions: ["currency"]}) { breakdown { key points { mrr fxAdjustment } } } }"""
    breakdown = (await execute(metrics, query))["series"]["breakdown"]
    by_key = {
        tuple(b["key"]): [(p["mrr"], p["fxAdjustment"]) for p in b["points"]] for b in breakdown
    }
    assert by_key == {
        ("EUR",): [(11000, 0), (12000, 1000), (18000, 0)],
        ("USD",): [(5000, 0), (5000, 0), (5000, 0)],
    }


@pytest.mark.usefixtures("later_euro_movements")
async def test_cohorts_convert_each_day_at_its_rate(metrics: MetricsEngine) -> None:
    query = """query($start: Date!, $end: Date!) { cohorts(start: $start, end: $end) {
        cohort size ltv cells { activeCustomers mrr mrrRetention } } }"""
    [january] = (await execute(metrics, query, {"start": "2024-01-01", "end": "2024-03-31"}))[
        "cohorts"
    ]
    # Month ends: U 5000 + X at 1.10 (Jan 31), at 1.20 (Feb 29), 150 EUR at 1.20 (Mar 31).
    assert [(c["activeCustomers"], c["mrr"]) for c in january["cells"]] == [
        (2, 16000),
        (2, 17000),
        (2, 23000),
    ]
    assert [c["mrrRetention"] for c in january["cells"]] == pytest.approx([1, 17 / 16, 23 / 16])
    # U 5000 x 91 days; X 11000 x 36 days (Jan 10 - Feb 14), 12000 x 15, 18000 x 31:
    # 1,589,000 cent-days x 12/365 / 2 members = 26120.55 -> 26121.
    assert (january["size"], january["ltv"]) == (2, 26121)
    [july] = (await execute(metrics, query, {"start": "2024-07-01", "end": "2024-08-31"}))[
        "cohorts"
    ]
    # Y: 200 EUR at 1.20 for 62 days = 1,488,000 x 12/365 = 48920.55 -> 48921.
    assert (july["cohort"], july["size"], july["ltv"]) == ("2024-07-01", 1, 48921)
    assert [c["mrr"] for c in july["cells"]] == [24000, 24000]


@pytest.mark.usefixtures("later_euro_movements")
async def test_churn_detail_before_later_movements(metrics: MetricsEngine) -> None:
    query = """{ churn(start: "2024-01-01", end: "2024-06-30") {
        revenueChurn { totalCount totalAmount events { externalId day kind amount } } } }"""
    churn = (await execute(metrics, query))["churn"]["revenueChurn"]
    assert churn == {
        "totalCount": 1,
        "totalAmount": -18000,
        "events": [{"externalId": "X", "day": "2024-06-01", "kind": "churn", "amount": -18000}],
    }


async def _pound_customer(engine: AsyncEngine) -> None:
    """G pays 10 GBP from Jan 5; the first GBP rate is Feb 1."""
    await import_rates(engine, [Rate("GBP", date(2024, 2, 1), Decimal("1.25"))])
    await import_text(
        engine,
        "subscription_id,customer_id,start_date,end_date,monthly_amount,"
        "currency\ng1,G,2024-01-05,,10,GBP\n",
    )


async def test_a_missing_rate_names_currency_and_day(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    await _pound_customer(engine)
    queries = {
        # the first day each query needs a rate for: G's movement, or the stock on Jan 30
        '{ series(start: "2024-01-01", end: "2024-03-31") { points { mrr } } }': "2024-01-05",
        '{ snapshot(at: "2024-01-31") { mrr } }': "2024-01-30",
        '{ cohorts(start: "2024-01-01", end: "2024-02-29") { ltv } }': "2024-01-05",
    }
    for query, day in queries.items():
        [error] = await execute_errors(metrics, query)
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert error["message"].startswith(f"no FX rate for GBP on or before {day}: load rates")


async def test_rates_before_the_range_are_not_needed(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    await _pound_customer(engine)
    # Stocks from Feb 1 on and no movement in range: every day read has a rate, 10 GBP at 1.25.
    # The LTV's churn history (the six months before) counts customers: it needs no rate.
    query = """{ snapshot(at: "2024-03-01") { mrr }
                 series(start: "2024-02-02", end: "2024-03-31") { points { mrr new ltv } } }"""
    data = await execute(metrics, query)
    assert data["snapshot"] == {"mrr": 1250}
    assert data["series"]["points"] == [
        {"mrr": 1250, "new": 0, "ltv": None},
        {"mrr": 1250, "new": 0, "ltv": None},
    ]


async def test_a_missing_report_currency_rate_names_the_report_currency(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    await import_rates(engine, [Rate("EUR", date(2024, 2, 1), Decimal("1.10"))])
    await import_text(engine, PERIODS.splitlines()[0] + "\nu1,U,2024-01-01,,50,USD\n")
    query = '{ series(start: "2024-01-01", end: "2024-02-29", spec: {currency: "EUR"}) { points { mrr } } }'
    [error] = await execute_errors(metrics, query)
    assert error["message"].startswith("no FX rate for EUR on or before 2024-01-01")


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
