"""The demo company: deterministic for a seed and a day, a prefix of itself on a later day,
idempotent to load, and a live business whatever the day."""

from __future__ import annotations

import asyncio
import datetime
from collections import Counter
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from app.cli import cli
from app.demo import DEMO_START, STEPS, DemoCompany, add_months, load_demo
from app.demo.load import SEGMENTS
from app.ingest.fx import Rate, import_rates
from app.ingest.rows import PeriodRow
from app.metrics.service import MetricsEngine
from app.metrics.spec import Interval, QuerySpec
from app.segments import get
from tests.conftest import TABLES, table_counts

DAYS = (date(2026, 11, 30), date(2028, 2, 29), date(2031, 7, 4))


def as_of(rows: Iterable[PeriodRow], day: date) -> set[PeriodRow]:
    """The periods as they stood at the end of `day` (line numbers aside)."""
    return {
        row._replace(
            line=0, valid_to=row.valid_to if row.valid_to and row.valid_to <= day else None
        )
        for row in rows
        if row.valid_from <= day
    }


def test_the_same_seed_and_day_give_the_same_company() -> None:
    first = DemoCompany.at(DAYS[0])
    assert list(first.periods()) == list(DemoCompany.at(DAYS[0]).periods())
    other_seed = DemoCompany.at(DAYS[0], seed=8)
    assert as_of(other_seed.periods(), DAYS[0]) != as_of(first.periods(), DAYS[0])


@pytest.mark.parametrize(("earlier", "later"), [(date(2024, 5, 17), DAYS[0]), (DAYS[0], DAYS[1])])
def test_a_later_day_extends_the_history_without_changing_it(earlier: date, later: date) -> None:
    before = list(DemoCompany.at(earlier).periods())
    after = list(DemoCompany.at(later).periods())
    assert as_of(after, earlier) == as_of(before, earlier)
    assert len(after) > len(before)
    assert max(row.valid_from for row in after) > earlier


@pytest.mark.parametrize("today", DAYS)
def test_every_month_of_the_last_year_is_eventful(today: date) -> None:
    company = DemoCompany.at(today)
    year_ago = add_months(today, -12)
    signups = Counter(c.signup.replace(day=1) for c in company.customers if c.signup > year_ago)
    assert len(signups) >= 12  # new customers every month
    rows = list(company.periods())
    recent = [row for row in rows if row.valid_from > year_ago]
    assert {row.status for row in recent} >= {"trialing", "active", "past_due"}
    intervals = {(row.billing_interval, row.interval_count) for row in recent}
    assert intervals == {("month", 1), ("month", 3), ("year", 1)}
    assert {row.currency for row in recent} == {"EUR", "GBP", "USD"}
    assert len({row.country for row in recent}) >= 6
    assert company.start == DEMO_START
    assert max(row.valid_from for row in rows) > today - timedelta(days=14)


def test_about_300_customers_today_growing_each_year() -> None:
    company = DemoCompany.at(DAYS[0])
    assert 250 <= len(company.customers) <= 350
    per_year = Counter(c.signup.year for c in company.customers)
    assert [per_year[year] for year in range(2022, 2026)] == sorted(
        per_year[year] for year in range(2022, 2026)
    )


async def rates(engine: AsyncEngine) -> None:
    """One rate per demo currency, from before the demo starts (enough to convert)."""
    day = DEMO_START - timedelta(days=1)
    await import_rates(engine, [Rate("EUR", day, Decimal("1.1")), Rate("GBP", day, Decimal("1.3"))])


@pytest.mark.parametrize("today", DAYS)
async def test_the_last_twelve_months_are_a_live_business(
    engine: AsyncEngine, metrics: MetricsEngine, today: date
) -> None:
    await rates(engine)
    await load_demo(engine, today=today)
    start = add_months(today.replace(day=1), -11)
    window = {"query_type": "series", "start": start, "end": today, "interval": "month"}
    points = await metrics.query("mrr", window)
    assert len(points) == 12
    assert all(point.new > 0 for point in points)
    assert all(point.mrr > 0 for point in points)
    for kind in ("expansion", "contraction", "churn", "reactivation"):
        assert sum(getattr(point, kind) for point in points) != 0, kind
    assert points[-1].mrr > points[0].mrr  # growing
    trials = await metrics.query(
        "trials", {"start": start, "end": today, "interval": Interval.MONTH}
    )
    funnel = trials.funnel
    assert (funnel.started > 0, funnel.converted > 0, funnel.expired > 0) == (True, True, True)


async def stored(engine: AsyncEngine) -> dict[str, Any]:
    """What the demo stores, without surrogate ids and timestamps."""
    statements = {
        "versions": "SELECT s.external_id, v.valid_from, v.valid_to, v.status, v.mrr, v.currency "
        "FROM subscription_version v JOIN subscription s ON s.id = v.subscription_id",
        "movements": "SELECT c.external_id, m.day, m.kind, m.amount FROM movement m "
        "JOIN customer c ON c.id = m.customer_id",
        "attributes": "SELECT c.external_id, a.key, a.string_value, a.number_value, "
        "a.boolean_value, a.date_value FROM customer_attribute a "
        "JOIN customer c ON c.id = a.customer_id",
        "segments": "SELECT id, name, definition::text FROM segment",
    }
    async with engine.connect() as connection:
        return {
            name: sorted(tuple(row) for row in await connection.execute(sa.text(sql)))
            for name, sql in statements.items()
        }


async def truncate(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(sa.text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY"))


async def test_loading_again_changes_nothing_and_a_later_day_extends(engine: AsyncEngine) -> None:
    first = await load_demo(engine, today=DAYS[0])
    state = await stored(engine)
    counts = await table_counts(engine)
    again = await load_demo(engine, today=DAYS[0])
    assert again.lines[0].endswith(", 0 customers updated")
    assert await stored(engine) == state
    assert {k: v for k, v in (await table_counts(engine)).items() if k != "import_run"} == {
        k: v for k, v in counts.items() if k != "import_run"
    }
    await load_demo(engine, today=DAYS[1])
    extended = await stored(engine)
    await truncate(engine)
    await load_demo(engine, today=DAYS[1])
    assert extended == await stored(engine)  # the same as loading the later day at once
    assert len(extended["versions"]) > len(state["versions"])
    assert first.summary.startswith(f"demo company: 2022-01-01..{DAYS[0]}, ")


async def test_every_customer_has_attributes_and_the_segments_select_them(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    await rates(engine)
    result = await load_demo(engine, today=DAYS[0])
    customers = len(result.company.customers)
    values = await stored(engine)
    keys = Counter(row[1] for row in values["attributes"])
    assert keys == dict.fromkeys(("industry", "seats", "self_serve", "onboarded_on"), customers)
    assert [(row[0], row[1]) for row in values["segments"]] == [
        (number, name) for number, (name, _, _) in enumerate(SEGMENTS, start=1)
    ]
    for number in range(1, len(SEGMENTS) + 1):
        segment = await get(engine, number)
        spec = QuerySpec(segment=segment.definition)
        point = await metrics.query("mrr", {"query_type": "snapshot", "at": DAYS[0]}, spec=spec)
        assert point.customers > 0, segment.name


async def test_another_module_adds_a_step(engine: AsyncEngine) -> None:
    seen: list[int] = []

    async def extra(_engine: AsyncEngine, company: DemoCompany, _progress: Any) -> str:
        seen.append(len(company.customers))
        return "extra: done"

    result = await load_demo(engine, today=DAYS[0], steps=(*STEPS, extra))
    assert result.lines[-1] == "extra: done"
    assert seen == [len(result.company.customers)]


async def test_the_demo_command_prints_its_range(engine: AsyncEngine, database_url: str) -> None:
    await rates(engine)  # so the command does not load the whole ECB table
    env = {"TIDEMILL_DATABASE_URL": database_url, "COLUMNS": "200"}
    run = await asyncio.to_thread(CliRunner().invoke, cli, ["demo", "--no-serve"], env=env)
    assert run.exit_code == 0, run.output
    today = datetime.datetime.now(datetime.UTC).date()
    assert f"demo company: 2022-01-01..{today}, " in run.stdout
    assert "billed in EUR, GBP, USD" in run.stdout
    assert "segments: 1 Europe, 2 Small teams, 3 Large teams, 4 Yearly SaaS" in run.stdout
    rerun = await asyncio.to_thread(CliRunner().invoke, cli, ["demo", "--no-serve"], env=env)
    assert "0 customers updated" in rerun.stdout


@pytest.mark.parametrize(
    ("customers", "bound"),
    [
        ("0", "greater than or equal to 1"),
        ("-5", "greater than or equal to 1"),
        ("2000000", "less than or equal to"),
    ],
)
def test_the_demo_size_is_bounded_before_any_work(customers: str, bound: str) -> None:
    args = ["demo", "--no-serve", "--customers", customers]
    run = CliRunner().invoke(cli, args, env={"COLUMNS": "200"})
    assert run.exit_code == 2  # a usage error: nothing generated, nothing connected to
    assert "Invalid value for '--customers'" in run.output
    assert bound in run.output
