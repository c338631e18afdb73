"""The inbox worker: errors never block the queue, failed events are retried with backoff and
replayable, several workers share the inbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ingest import inbox, worker
from connectors.registry import TRANSLATORS
from connectors.stripe.translate import read_event
from tests import stripe_scenario
from tests.stripe_account import Account
from tests.test_stripe_scenario import new_source, outcome, reset, statuses


async def store(engine: AsyncEngine, events: list[dict[str, Any]]) -> None:
    await inbox.store_many(engine, 1, [read_event(event) for event in events])


async def rows(engine: AsyncEngine) -> dict[str, tuple[str, int, str | None]]:
    async with engine.connect() as connection:
        found = await connection.execute(
            sa.text("SELECT event_id, status, attempts, last_error FROM raw_event")
        )
        return {event: (status, attempts, error) for event, status, attempts, error in found}


def broken_account() -> Account:
    """A good customer, and one whose price is tiered with tiers nobody has seen yet."""
    a = Account()
    a.product("prod", "Seats", date(2024, 1, 1))
    a.price("price_ok", "prod", date(2024, 1, 1), 1000)
    a.customer("cus_ok", date(2024, 1, 2), "2025")
    a.subscribe("sub_ok", "cus_ok", date(2024, 1, 2), [("price_ok", 1)])
    a.price(
        "price_tiered",
        "prod",
        date(2024, 1, 1),
        None,
        tiers=[{"up_to": None, "unit_amount": 100}],
        tiers_mode="volume",
    )
    tiered_event = a.events.pop()  # not delivered (yet)
    a.customer("cus_wait", date(2024, 1, 3), "2025")
    a.subscribe("sub_wait", "cus_wait", date(2024, 1, 3), [("price_tiered", 4)])
    a.events.append(tiered_event)
    return a


async def test_a_failing_event_is_marked_retried_with_backoff_and_blocks_nothing(
    engine: AsyncEngine,
) -> None:
    await reset(engine)
    await new_source(engine)
    events = broken_account().events
    tiered, others = events[-1], events[:-1]
    await store(engine, others)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    await worker.drain(engine, TRANSLATORS, now=now)
    found = await rows(engine)
    failed = [event for event, (status, _, _) in found.items() if status == "failed"]
    assert len(failed) == 2  # cus_wait's customer.created and its subscription
    _, attempts, error = found[failed[0]]
    assert attempts == 1
    assert error == "customer cus_wait: price price_tiered is tiered but its tiers are unknown"
    assert sum(s == "processed" for s, _, _ in found.values()) == len(others) - 2
    # not due yet: nothing taken; due after the backoff: taken again, failing again
    assert await worker.drain(engine, TRANSLATORS, now=now + timedelta(seconds=29)) == 0
    assert await worker.drain(engine, TRANSLATORS, now=now + timedelta(seconds=31)) == 2
    assert {(await rows(engine))[e][1] for e in failed} == {2}
    # once the price is known, the customer is rebuilt and its earlier events are applied
    await store(engine, [tiered])
    await worker.drain(engine, TRANSLATORS, now=now + timedelta(seconds=32))
    assert await statuses(engine) == {"processed": len(events)}
    async with engine.connect() as connection:
        mrr = await connection.scalar(sa.text("SELECT sum(delta) FROM mrr_change"))
    assert mrr == 1000 + 400


async def test_replay_queues_failed_events_again_with_their_attempts_reset(
    engine: AsyncEngine,
) -> None:
    await reset(engine)
    await new_source(engine)
    events = broken_account().events[:-1]
    await store(engine, events)
    await worker.drain(engine, TRANSLATORS)
    assert await inbox.replay(engine, 1) == 2
    assert {s for s, _, _ in (await rows(engine)).values()} == {"processed", "pending"}
    assert {a for s, a, _ in (await rows(engine)).values() if s == "pending"} == {0}
    assert await worker.drain(engine, TRANSLATORS) == 2  # taken at once, failing again
    assert {a for s, a, _ in (await rows(engine)).values() if s == "failed"} == {1}


async def test_several_workers_share_the_inbox_and_apply_each_event_once(
    engine: AsyncEngine,
) -> None:
    account = stripe_scenario.build()
    await reset(engine)
    await new_source(engine)
    await store(engine, account.events)
    await asyncio.gather(*(worker.process_batch(engine, TRANSLATORS, limit=10) for _ in range(4)))
    await asyncio.gather(*(worker.drain(engine, TRANSLATORS) for _ in range(3)))
    assert await statuses(engine) == {"processed": len(account.events)}
    points = (await outcome(engine))["series"]["series"]["points"]
    assert [p["mrr"] for p in points] == [
        stripe_scenario.mrr_at(date.fromisoformat(p["endDate"])) for p in points
    ]


def test_a_backlog_doubles_the_batch_up_to_its_most_and_a_short_one_resets_it() -> None:
    assert [
        worker.next_limit(500, 500),
        worker.next_limit(2000, 2000),
        worker.next_limit(4000, 4000),
        worker.next_limit(2000, 1999),
        worker.next_limit(1000, 0),
    ] == [1000, 4000, 4000, 500, 500]


def late_product_account(customers: int) -> Account:
    """A price whose product is created after the customers on it subscribed: the plan name
    is the price's id until the product is known, then the product's name."""
    a = Account()
    a.price("price_seat", "prod_seat", date(2024, 1, 1), 1000)
    for number in range(customers):
        day = date(2024, 1, 2) + timedelta(days=number)
        a.customer(f"cus_{number:02d}", day, "2025")
        a.subscribe(f"sub_{number:02d}", f"cus_{number:02d}", day, [("price_seat", 1)])
    a.product("prod_seat", "Seats", date(2024, 3, 1))
    return a


async def plan_names(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as connection:
        found = await connection.execute(
            sa.text(
                "SELECT value, count(DISTINCT customer_id) FROM movement_scope"
                " WHERE dimension = 'plan' GROUP BY value"
            )
        )
        return {str(value): int(count) for value, count in found}


async def test_concurrent_workers_rename_every_reader_of_a_product_that_came_late(
    engine: AsyncEngine, monkeypatch: Any
) -> None:
    # batches of 3 events, two workers: the product's batch runs beside the last customers'
    monkeypatch.setattr(worker, "BATCH", 3)
    monkeypatch.setattr(worker, "MOST", 3)
    account = late_product_account(20)
    await reset(engine)
    await new_source(engine)
    await store(engine, account.events)
    assert await worker.drain(engine, TRANSLATORS, concurrency=2) == len(account.events)
    assert await plan_names(engine) == {"Seats (month)": 20}


async def test_a_batch_changing_the_catalog_waits_for_the_batches_in_flight(
    engine: AsyncEngine,
) -> None:
    account = late_product_account(1)
    product = account.events.pop()
    await reset(engine)
    await new_source(engine)
    await store(engine, account.events)
    await worker.drain(engine, TRANSLATORS)
    await store(engine, [product])
    async with engine.connect() as in_flight:  # a batch reading the catalog, not committed
        await in_flight.execute(
            sa.text("SELECT pg_advisory_xact_lock_shared(:key)"),
            {"key": worker.CATALOG_LOCK + 1},
        )
        applying = asyncio.create_task(worker.process_batch(engine, TRANSLATORS))
        await asyncio.sleep(0.5)
        assert not applying.done()
        await in_flight.commit()
        assert await applying == 1
    assert await plan_names(engine) == {"Seats (month)": 1}
