"""Trials (METRICS.md 6): started, converted (also late), expired, funnel — by hand."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ingest import worker
from app.ingest.sources import remove_source
from app.metrics.service import MetricsEngine
from app.metrics.trials import TRIAL_COLUMNS, trial_facts
from app.tables import trial
from connectors.registry import TRANSLATORS
from tests.conftest import execute, execute_errors, import_text
from tests.stripe_account import Account
from tests.test_chunked_import import load
from tests.test_ingest_worker import store
from tests.test_rollups import company, corrected
from tests.test_stripe_scenario import new_source, reset

HEADER = "subscription_id,customer_id,start_date,end_date,monthly_amount,status,trial_start,trial_end,plan\n"
# T1 trials Jan 1-15 then pays: converts Jan 15.
# T2 trials Jan 10-24 then is canceled: expires Jan 24.
# T3 trials Jan 20-Feb 3, stays unpaid (incomplete) and pays from Mar 1: converts late, Mar 1.
# T4 gives its trial in columns (Jan 18 - Feb 1) on its first paid period: converts Feb 1.
# T5 trials Feb 10-24 and its history stops: expires Feb 24.
# T6 trials from Mar 20, still trialing: in progress.
TRIALS = (
    HEADER
    + """\
t1,C1,2024-01-01,2024-01-15,50,trialing,,,Basic
t1,C1,2024-01-15,,50,active,,,Basic
t2,C2,2024-01-10,2024-01-24,50,trialing,,,Basic
t2,C2,2024-01-24,,50,canceled,,,Basic
t3,C3,2024-01-20,2024-02-03,50,trialing,,,Pro
t3,C3,2024-02-03,2024-03-01,50,incomplete,,,Pro
t3,C3,2024-03-01,,50,active,,,Pro
t4,C4,2024-02-01,,50,active,2024-01-18,2024-02-01,Pro
t5,C5,2024-02-10,2024-02-24,50,trialing,,,Basic
t6,C6,2024-03-20,,50,trialing,,,Basic
n1,C7,2024-01-01,,80,active,,,Basic
"""
)
QUERY = """query($spec: QuerySpecInput) {
  trials(start: "2024-01-01", end: "2024-03-31", interval: MONTH, spec: $spec) {
    points { date endDate trialsStarted trialsConverted trialsExpired conversionRate }
    funnel { started converted expired inProgress conversionRate } } }"""


async def trials(metrics: MetricsEngine, spec: Any = None) -> dict[str, Any]:
    result: dict[str, Any] = (await execute(metrics, QUERY, {"spec": spec}))["trials"]
    return result


async def test_trials_by_hand(engine: AsyncEngine, metrics: MetricsEngine) -> None:
    await import_text(engine, TRIALS)
    data = await trials(metrics)
    counts = [
        (p["trialsStarted"], p["trialsConverted"], p["trialsExpired"]) for p in data["points"]
    ]
    assert counts == [(4, 1, 1), (1, 1, 1), (1, 1, 0)]
    assert [p["conversionRate"] for p in data["points"]] == [0.5, 0.5, 1.0]
    assert data["funnel"] == {
        "started": 6,
        "converted": 3,
        "expired": 2,
        "inProgress": 1,
        "conversionRate": 0.6,
    }


async def test_trialing_contributes_no_mrr(engine: AsyncEngine, metrics: MetricsEngine) -> None:
    await import_text(engine, TRIALS)
    data = await execute(metrics, '{ snapshot(at: "2024-01-31") { mrr customers } }')
    # Only C1 (paying from Jan 15) and C7 contribute; the trials and C3's unpaid time don't.
    assert data["snapshot"] == {"mrr": 13000, "customers": 2}


async def test_trials_follow_filters(engine: AsyncEngine, metrics: MetricsEngine) -> None:
    await import_text(engine, TRIALS)
    pro = await trials(metrics, {"filters": [{"field": "plan", "values": ["Pro"]}]})
    assert pro["funnel"] == {
        "started": 2,
        "converted": 2,
        "expired": 0,
        "inProgress": 0,
        "conversionRate": 1.0,
    }
    [error] = await execute_errors(metrics, QUERY, {"spec": {"dimensions": ["plan"]}})
    assert "trials take filters, not dimensions" in error["message"]


@pytest.mark.parametrize("line", ["t9,C9,2024-01-01,,10,trialing,2024-02-01,2024-01-01,"])
async def test_trial_end_before_start_is_refused(engine: AsyncEngine, line: str) -> None:
    from app.errors import ImportFailed

    with pytest.raises(ImportFailed, match="trial_end 2024-01-01 is before trial_start"):
        await import_text(engine, HEADER + line + "\n")


async def test_too_long_a_trial_series_is_refused(metrics: MetricsEngine) -> None:
    query = (
        '{ trials(start: "2000-01-01", end: "2024-12-31", interval: DAY) { funnel { started } } }'
    )
    [error] = await execute_errors(metrics, query)
    assert "the series would have 9132 points; at most 3700" in error["message"]


async def test_a_segment_narrows_trials(engine: AsyncEngine, metrics: MetricsEngine) -> None:
    await import_text(engine, TRIALS)
    # ever paid for Pro: C3 (late) and C4; C3 converts in March, C4 in February
    pro = await execute(
        metrics,
        """mutation { createSegment(name: "Pro", definition: {field: "plan", values: ["Pro"]})
            { id } }""",
    )
    data = await trials(metrics, {"segment": pro["createSegment"]["id"]})
    counts = [
        (p["trialsStarted"], p["trialsConverted"], p["trialsExpired"]) for p in data["points"]
    ]
    assert counts == [(2, 0, 0), (0, 1, 0), (0, 1, 0)]
    assert data["funnel"]["started"] == 2
    [error] = await execute_errors(
        metrics, QUERY, {"spec": {"compareSegments": [pro["createSegment"]["id"]]}}
    )
    assert "trials take filters, not dimensions or compareSegments" in error["message"]


async def kept_and_derived(engine: AsyncEngine) -> tuple[list[Any], list[Any]]:
    """The `trial` rows the recomputes kept, and the trials derived from the versions now."""
    facts = trial_facts()
    async with engine.connect() as connection:
        kept = await connection.execute(sa.select(trial))
        derived = await connection.execute(sa.select(*(facts.c[n] for n in TRIAL_COLUMNS)))
        return sorted(tuple(row) for row in kept), sorted(tuple(row) for row in derived)


def trial_account() -> Account:
    """Stripe customers on 14-day trials: some pay, some cancel during the trial."""
    a = Account()
    a.product("prod_t", "Seats", date(2023, 1, 1))
    a.price("price_t", "prod_t", date(2023, 1, 1), 1200)
    for number in range(6):
        day = date(2023, 2, 1) + timedelta(days=7 * number)
        a.customer(f"cus_t{number}", day, "2025")
        a.subscribe(f"sub_t{number}", f"cus_t{number}", day, [("price_t", 1)], trial_days=14)
        if number % 2:
            a.cancel(f"sub_t{number}", day + timedelta(days=5))
    return a


@pytest.mark.parametrize("chunk_rows", [0, 300])
async def test_the_kept_trials_follow_every_kind_of_write(
    engine: AsyncEngine, chunk_rows: int
) -> None:
    """A first import (in one transaction, or in chunks applied side by side), a corrected
    re-import, a Stripe source's events and its removal: after each, the `trial` rows the
    queries read are the trials derived from the versions as they are."""
    await reset(engine)
    text = company(41, 60)
    assert (await load(engine, text, chunk_rows)).changed_customers >= 60
    kept, derived = await kept_and_derived(engine)
    assert kept == derived
    assert len(kept) >= 10
    async with engine.connect() as connection:  # a few customers with trials, corrected
        found = await connection.scalars(
            sa.text(
                "SELECT c.external_id FROM trial t JOIN customer c ON c.id = t.customer_id"
                " ORDER BY t.customer_id LIMIT 4"
            )
        )
        with_trials = set(found)
    await import_text(engine, corrected(text, with_trials, 4))
    kept, changed = await kept_and_derived(engine)
    assert kept == changed
    assert changed != derived  # the correction changed some trials
    source = await new_source(engine)
    await store(engine, trial_account().events)
    await worker.drain(engine, TRANSLATORS)
    kept, derived = await kept_and_derived(engine)
    assert kept == derived
    assert sum(row[1] > 60 for row in kept) == 6  # the Stripe customers' trials are in
    await remove_source(engine, source.id)
    kept, derived = await kept_and_derived(engine)
    assert kept == derived
    assert all(row[1] <= 61 for row in kept)
