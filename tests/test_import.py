"""The subscription-periods import: bad files are refused whole, good ones are idempotent."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from app.cli import cli
from app.demo import generate_periods, write_csv
from app.errors import ImportFailed
from app.ingest import bulk
from app.ingest.subscriptions import settle
from app.metrics.service import MetricsEngine
from tests.conftest import TABLES, execute, import_text, table_counts

HEADER = "subscription_id,customer_id,start_date,end_date,monthly_amount\n"
GOOD = HEADER + "s1,C1,2024-01-01,,100\ns2,C2,2024-01-01,2024-03-01,50\n"


async def mrr_at(metrics: MetricsEngine, day: str) -> int:
    data = await execute(metrics, f'{{ snapshot(at: "{day}") {{ mrr }} }}')
    return int(data["snapshot"]["mrr"])


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("s3,C3,2024-13-01,,10", "start_date '2024-13-01' is not a date"),
        ("s3,C3,2024-02-01,2024-01-01,10", "end_date 2024-01-01 is not after start_date"),
        ("s3,C3,2024-02-01,,-10", "monthly_amount '-10' is negative"),
        ("s3,C3,2024-02-01,,ten", "monthly_amount 'ten' is not a number"),
        ("s3,,2024-02-01,,10", "subscription_id and customer_id must not be empty"),
        ("s3,C3,2024-02-01,,10,extra", "more values than columns"),
    ],
)
async def test_a_bad_row_stops_the_import_and_saves_nothing(
    engine: AsyncEngine, metrics: MetricsEngine, line: str, reason: str
) -> None:
    await import_text(engine, GOOD)
    before = await table_counts(engine)
    corrected = HEADER + "s1,C1,2024-01-01,,999\n" + line + "\n"
    with pytest.raises(ImportFailed) as raised:
        await import_text(engine, corrected, name="bad.csv")
    assert raised.value.lines[0][0] == 3
    assert f"bad.csv, line 3: {reason}" in str(raised.value)
    assert await table_counts(engine) == before
    assert await mrr_at(metrics, "2024-01-31") == 15000  # s1 was not changed to 999


async def test_unknown_currency_names_the_line(engine: AsyncEngine) -> None:
    text = "subscription_id,customer_id,start_date,end_date,monthly_amount,currency\n"
    with pytest.raises(ImportFailed, match=r"line 2: currency 'XYZ' is not an ISO 4217"):
        await import_text(engine, text + "s1,C1,2024-01-01,,10,XYZ\n")
    assert (await table_counts(engine))["subscription"] == 0


async def test_overlapping_periods_of_one_subscription_are_refused(engine: AsyncEngine) -> None:
    text = HEADER + "s1,C1,2024-01-01,2024-03-01,10\ns1,C1,2024-02-01,,20\n"
    with pytest.raises(
        ImportFailed, match=r"line 3: overlaps another period of subscription s1 \(line 2\)"
    ):
        await import_text(engine, text)
    assert (await table_counts(engine))["subscription_version"] == 0


async def test_a_subscription_given_to_two_customers_is_refused(engine: AsyncEngine) -> None:
    text = HEADER + "s1,C1,2024-01-01,2024-02-01,10\ns2,C2,2024-01-01,,5\ns1,C2,2024-02-01,,20\n"
    with pytest.raises(
        ImportFailed,
        match=r"line 4: subscription s1 already belongs to another customer in this file "
        r"\(line 2\)",
    ) as raised:
        await import_text(engine, text)
    assert [line for line, _ in raised.value.lines] == [4]
    assert (await table_counts(engine))["subscription"] == 0


async def test_every_bad_line_is_reported(engine: AsyncEngine) -> None:
    text = HEADER + "s1,C1,nope,,10\ns2,C2,2024-01-01,,x\n"
    with pytest.raises(ImportFailed) as raised:
        await import_text(engine, text)
    assert [line for line, _ in raised.value.lines] == [2, 3]


async def test_reimport_changes_nothing_and_a_correction_updates_only_what_changed(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    first = await import_text(engine, GOOD)
    assert (first.changed_subscriptions, first.changed_customers) == (2, 2)
    again = await import_text(engine, GOOD)
    assert (again.changed_subscriptions, again.changed_customers) == (0, 0)
    corrected = await import_text(
        engine, HEADER + "s1,C1,2024-01-01,,100\ns2,C2,2024-01-01,2024-02-01,50\n"
    )
    assert (corrected.changed_subscriptions, corrected.changed_customers) == (1, 1)
    assert await mrr_at(metrics, "2024-02-15") == 10000  # s2 now ends Feb 1
    data = await execute(
        metrics,
        """{ series(start: "2024-02-01", end: "2024-03-31") {
        points { churn } } }""",
    )
    assert [p["churn"] for p in data["series"]["points"]] == [-5000, 0]


async def test_a_subscription_given_to_another_customer_recomputes_both(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    await import_text(engine, GOOD)
    moved = await import_text(
        engine, HEADER + "s1,C3,2024-01-01,,100\ns2,C2,2024-01-01,2024-03-01,50\n"
    )
    # s1's periods are the same (no subscription changed), but both customers are recomputed
    assert (moved.changed_subscriptions, moved.changed_customers) == (0, 2)
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.text(
                "SELECT c.external_id, c.current_mrr, count(m.day) FROM customer c"
                " LEFT JOIN movement m ON m.customer_id = c.id"
                " GROUP BY 1, 2 ORDER BY 1"
            )
        )
        by_customer = [tuple(row) for row in rows]
    assert by_customer == [("C1", 0, 0), ("C2", 0, 2), ("C3", 10000, 1)]
    assert await mrr_at(metrics, "2024-02-15") == 15000
    data = await execute(metrics, '{ snapshot(at: "2024-02-15") { customers } }')
    assert data["snapshot"]["customers"] == 2


async def test_cli_reports_bad_file_with_line_and_exit_code(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "broken.csv"
    path.write_text(HEADER + "s1,C1,2024-01-01,,10\ns2,C2,yesterday,,10\n")
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["import", "subscriptions", str(path)],
        env={"TIDEMILL_DATABASE_URL": database_url},
    )
    assert result.exit_code == 1
    assert "broken.csv, line 3: start_date 'yesterday' is not a date" in " ".join(
        result.output.split()
    )
    assert (await table_counts(engine))["customer"] == 0


async def test_cli_refuses_a_file_without_the_required_columns(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "columns.csv"
    path.write_text("subscription_id,customer,start_date\n1,2,2024-01-01\n")
    result = await asyncio.to_thread(
        CliRunner().invoke,
        cli,
        ["import", "subscriptions", str(path)],
        env={"TIDEMILL_DATABASE_URL": database_url},
    )
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "missing required column(s): customer_id, end_date" in output
    assert "unknown column(s): customer" in output


DERIVED_ROWS = {
    "subscription_version": "subscription_id, valid_from, valid_to, status, mrr",
    "mrr_change": "customer_id, day, delta, currency",
    "movement": "customer_id, day, kind, amount, before, after, prev_day, next_day",
    "movement_scope": "dimension, value, customer_id, day, kind, amount",
}


async def stored_state(engine: AsyncEngine) -> dict[str, Any]:
    """A digest of every derived table's rows, and every index and constraint definition."""
    state: dict[str, Any] = {}
    async with engine.connect() as connection:
        for table, columns in DERIVED_ROWS.items():
            digest = f"SELECT count(*), md5(string_agg(row({columns})::text, ';' ORDER BY {columns})) FROM {table}"
            state[table] = tuple((await connection.execute(sa.text(digest))).one())
        definitions = """SELECT indexdef FROM pg_indexes WHERE tablename = ANY(:tables)
                         UNION ALL SELECT pg_get_constraintdef(oid) FROM pg_constraint
                         WHERE conrelid::regclass::text = ANY(:tables)"""
        found = await connection.scalars(sa.text(definitions), {"tables": list(DERIVED_ROWS)})
        state["definitions"] = sorted(found)
    return state


async def test_a_first_large_import_fills_in_bulk_with_the_same_result(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "company.csv"
    write_csv(generate_periods(customers=bulk.BULK_FROM + 100, seed=3), path)
    before = (await stored_state(engine))["definitions"]
    result = await import_text(engine, path.read_text())
    assert result.changed_customers > bulk.BULK_FROM  # so the tables were filled in bulk
    in_bulk = await stored_state(engine)
    assert in_bulk["definitions"] == before  # every index and constraint is back
    assert in_bulk["movement"][0] > 0
    async with engine.begin() as connection:
        await connection.execute(sa.text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY"))
    monkeypatch.setattr(bulk, "BULK_FROM", 10**9)  # row by row, indexes maintained
    await import_text(engine, path.read_text())
    assert await stored_state(engine) == in_bulk


async def test_settling_tells_the_planner_how_many_customers_the_ledger_holds(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    # ANALYZE's sample of a ledger stored customer by customer sees few customers; settling
    # states their number as a fraction of the ledger's rows (kept as the tables grow)
    path = tmp_path / "company.csv"
    write_csv(generate_periods(customers=40, seed=5), path)
    await import_text(engine, path.read_text())
    await settle(engine)
    option = """SELECT attoptions FROM pg_attribute
                WHERE attrelid = 'mrr_change'::regclass AND attname = 'customer_id'"""
    estimate = """SELECT n_distinct FROM pg_stats
                  WHERE tablename = 'mrr_change' AND attname = 'customer_id'"""
    try:
        async with engine.connect() as connection:
            customers = await connection.scalar(sa.text("SELECT count(*) FROM customer"))
            rows = await connection.scalar(sa.text("SELECT count(*) FROM mrr_change"))
            options = await connection.scalar(sa.text(option))
            stated = await connection.scalar(sa.text(estimate))
    finally:
        async with engine.begin() as connection:
            reset = "ALTER TABLE mrr_change ALTER COLUMN customer_id RESET (n_distinct)"
            await connection.execute(sa.text(reset))
    assert customers == 40
    assert rows > customers
    setting = dict(text.split("=", 1) for text in options)["n_distinct"]
    assert float(setting) == pytest.approx(-customers / rows)
    assert stated == pytest.approx(-customers / rows)
