"""The rollup path (per-period aggregates kept by the recompute) gives exactly the movement
scan's answer, field by field, for every interval, the total, one-value series and breakdowns
by each rolled-up dimension; it is kept incrementally equal to a full rebuild; the response's
`extensions.plan` says which path ran (docs/query-plans.md)."""

from __future__ import annotations

import random
from dataclasses import asdict
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.metrics import plans
from app.metrics.periods import period_end, period_start
from app.metrics.service import MetricsEngine
from app.metrics.spec import Filter, FilterOp, Interval, QuerySpec, SeriesRequest
from tests.conftest import PLAYBOOK, import_text

HEADER = (
    "subscription_id,customer_id,start_date,end_date,amount,interval,quantity,currency,plan,status"
)
PLANS = (("Basic", 1_000), ("Pro", 4_900), ("Team", 12_345), ("Seat", 700))
FIRST = date(2022, 1, 1)
LAST = date(2024, 12, 31)


def company(seed: int, customers: int, currencies: tuple[str, ...] = ("USD",)) -> str:
    """Random-ish subscription periods: plan changes, gaps (churn, reactivation), several
    changes inside one period, second subscriptions, past_due and trialing stretches, yearly
    prices, open-ended periods."""
    rng = random.Random(seed)
    lines = [HEADER]
    subscription = 0
    span = (LAST - FIRST).days
    for customer in range(1, customers + 1):
        currency = rng.choice(currencies)
        for _ in range(rng.choice((1, 1, 1, 2))):
            subscription += 1
            day = FIRST + timedelta(days=rng.randrange(span))
            for _period in range(rng.randrange(1, 7)):
                length = rng.choice((1, 3, 9, 20, 31, 45, 90, 200, 400))
                end = day + timedelta(days=length)
                name, price = rng.choice(PLANS)
                interval = rng.choice(("month", "month", "month", "year"))
                amount = price * (12 if interval == "year" else 1)
                status = rng.choice(("active",) * 6 + ("past_due", "trialing"))
                quantity = rng.choice((1, 1, 2, 3))
                open_ended = end > LAST or rng.random() < 0.05
                lines.append(
                    f"{subscription},c{customer},{day},{'' if open_ended else end},{amount},"
                    f"{interval},{quantity},{currency},{name},{status}"
                )
                if open_ended:
                    break
                day = end + timedelta(days=rng.choice((0, 0, 0, 1, 5, 40)))
    return "\n".join(lines) + "\n"


SPECS: tuple[QuerySpec, ...] = (
    QuerySpec(),
    QuerySpec(dimensions=("plan",)),
    QuerySpec(dimensions=("currency",)),
    QuerySpec(dimensions=("plan_interval",)),
    QuerySpec(filters=(Filter("plan", FilterOp.EQ, ("Pro",)),)),
    QuerySpec(filters=(Filter("plan_interval", FilterOp.EQ, ("year",)),)),
    QuerySpec(filters=(Filter("currency", FilterOp.EQ, ("USD",)),)),
)


def whole_ranges(first: date, last: date) -> list[tuple[Interval, date, date]]:
    """Ranges made of whole periods of every interval, inside and around the data."""
    found = []
    for interval in Interval:
        for a, b in ((first, last), (date(2023, 2, 14), date(2023, 11, 20)), (last, last)):
            start = period_start(a, interval)
            end = period_end(period_start(b, interval), interval)
            if interval is Interval.DAY:
                start, end = a, min(b, a + timedelta(days=120))
            found.append((interval, start, end))
    return found


async def both_ways(engine: AsyncEngine, request: SeriesRequest) -> tuple[Any, Any, list[str]]:
    with plans.collecting() as taken:
        rolled = await MetricsEngine(engine).breakdown(request)
        total = await MetricsEngine(engine).series(request)
    scanned = await MetricsEngine(engine, rollups=False).breakdown(request)
    scanned_total = await MetricsEngine(engine, rollups=False).series(request)
    return (rolled, total), (scanned, scanned_total), taken


async def assert_same(engine: AsyncEngine, first: date, last: date) -> int:
    compared = 0
    for interval, start, end in whole_ranges(first, last):
        for spec in SPECS:
            for fields in (frozenset(), frozenset({"mrr", "new", "customers"})):
                request = SeriesRequest(start, end, interval, spec, fields)
                rolled, scanned, taken = await both_ways(engine, request)
                assert [asdict(x) for x in rolled[0]] == [asdict(x) for x in scanned[0]], (
                    interval,
                    spec,
                )
                assert [asdict(p) for p in rolled[1]] == [asdict(p) for p in scanned[1]], (
                    interval,
                    spec,
                )
                assert set(taken) == {"rollup"}, (interval, spec, taken)
                compared += 1
    return compared


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_rollup_equals_scan_on_random_companies(engine: AsyncEngine, seed: int) -> None:
    await import_text(engine, company(seed, 60))
    assert await assert_same(engine, FIRST, LAST) > 0


async def test_rollup_equals_scan_on_the_playbook(engine: AsyncEngine) -> None:
    await import_text(engine, PLAYBOOK.read_text())
    assert await assert_same(engine, date(2017, 9, 1), date(2019, 12, 31)) > 0
