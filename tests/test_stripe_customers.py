"""Customer-wide Stripe events: a deleted customer's subscriptions end at its deletion (whether
or not their own `customer.subscription.deleted` events arrive, in any order), and a customer's
discount applies to each of its subscriptions that has none of its own. Values by hand."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ingest import inbox, worker
from connectors.registry import TRANSLATORS
from connectors.stripe.translate import read_event
from tests.stripe_account import Account
from tests.test_stripe_scenario import new_source, reset


async def deliver(engine: AsyncEngine, events: list[dict[str, Any]]) -> None:
    """Store each event and apply what is due, as the webhook endpoint and worker would."""
    await reset(engine)
    await new_source(engine)
    for event in events:
        await inbox.store_many(engine, 1, [read_event(event)])
        await worker.drain(engine, TRANSLATORS)


async def changes(engine: AsyncEngine) -> list[tuple[str, date, int]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.text(
                "SELECT s.external_id, m.day, sum(m.delta) FROM mrr_change m"
                " JOIN subscription s ON s.id = m.subscription_id"
                " GROUP BY 1, 2 HAVING sum(m.delta) <> 0 ORDER BY 1, 2"
            )
        )
        return [(str(sub), day, int(delta)) for sub, day, delta in rows]


async def statuses(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.text("SELECT status, count(*) FROM raw_event GROUP BY 1 ORDER BY 1")
        )
        return [f"{status}:{count}" for status, count in rows]


def deleted_account(shape: str, stub: bool) -> Account:
    a = Account()
    a.product("prod", "Seats", date(2024, 1, 1))
    a.price("price_seat", "prod", date(2024, 1, 1), 2900)
    a.price("price_year", "prod", date(2024, 1, 1), 120000, interval="year")
    a.customer("cus_1", date(2024, 1, 2), shape, name="Ada", metadata={"tier": "gold"})
    a.subscribe("sub_1", "cus_1", date(2024, 1, 2), [("price_seat", 2)])
    a.subscribe("sub_2", "cus_1", date(2024, 2, 5), [("price_year", 1)])
    a.delete_customer("cus_1", date(2024, 3, 10), stub=stub)
    return a


# sub_1: 2 x 29.00 = 58.00 from Jan 2; sub_2: 1,200.00 / 12 = 100.00 from Feb 5; both end on
# the deletion day, Mar 10
DELETED = [
    ("sub_1", date(2024, 1, 2), 5800),
    ("sub_1", date(2024, 3, 10), -5800),
    ("sub_2", date(2024, 2, 5), 10000),
    ("sub_2", date(2024, 3, 10), -10000),
]


@pytest.mark.parametrize("shape", ["2024", "2025"])
@pytest.mark.parametrize("order", ["chronological", "reverse"])
@pytest.mark.parametrize("stub", [False, True])
async def test_a_deleted_customer_has_no_mrr_from_its_deletion_on(
    engine: AsyncEngine, shape: str, order: str, stub: bool
) -> None:
    events = deleted_account(shape, stub).events
    await deliver(engine, events[::-1] if order == "reverse" else events)
    assert await changes(engine) == DELETED
    assert await statuses(engine) == [f"processed:{len(events)}"]
    async with engine.connect() as connection:
        row = (await connection.execute(sa.text("SELECT name, email FROM customer"))).one()
        value = await connection.scalar(sa.text("SELECT string_value FROM customer_attribute"))
    assert tuple(row) == ("Ada", "cus_1@example.com")
    assert value == "gold"


@pytest.mark.parametrize("order", ["chronological", "reverse"])
async def test_a_deleted_customer_s_subscriptions_end_even_if_their_events_are_lost(
    engine: AsyncEngine, order: str
) -> None:
    events = [
        e
        for e in deleted_account("2025", stub=True).events
        if e["type"] != "customer.subscription.deleted"
    ]
    await deliver(engine, events[::-1] if order == "reverse" else events)
    assert await changes(engine) == DELETED


def discounted_account(shape: str) -> Account:
    a = Account()
    a.product("prod", "Seats", date(2024, 1, 1))
    a.price("price_a", "prod", date(2024, 1, 1), 10000)
    a.price("price_b", "prod", date(2024, 1, 1), 3000)
    a.coupon("c20", date(2024, 1, 1), "forever", percent_off=20)
    a.coupon("c10", date(2024, 1, 1), "forever", percent_off=10)
    a.coupon("c_rep", date(2024, 1, 1), "repeating", months=3, amount_off=1000)
    a.coupon("c_once", date(2024, 1, 1), "once", percent_off=50)
    a.customer("cus_d", date(2024, 1, 1), shape)
    a.subscribe("sub_a", "cus_d", date(2024, 1, 1), [("price_a", 1)])
    a.subscribe("sub_b", "cus_d", date(2024, 1, 1), [("price_b", 1)])
    a.discount("sub_b", "c10", date(2024, 1, 1))  # its own: overrides the customer's
    a.customer_discount("cus_d", "c20", date(2024, 2, 1))
    a.customer_discount("cus_d", None, date(2024, 4, 1))
    a.customer_discount("cus_d", "c_rep", date(2024, 5, 1), end=date(2024, 8, 1))
    own: dict[str, Any] = {"discount": None} if shape == "2024" else {"discounts": []}
    a.update("sub_b", date(2024, 6, 1), **own)  # sub_b's own discount removed
    a.customer_discount("cus_d", None, date(2024, 9, 1))
    a.customer_discount("cus_d", "c_once", date(2024, 9, 1))
    return a


def _customer_wide(event: dict[str, Any]) -> bool:
    obj = event["data"]["object"]
    return event["type"].startswith("customer.discount.") and obj["subscription"] is None


@pytest.mark.parametrize("shape", ["2024", "2025"])
@pytest.mark.parametrize("order", ["chronological", "reverse"])
@pytest.mark.parametrize("seen", ["both", "discount events", "customer objects"])
async def test_a_customer_discount_applies_to_subscriptions_without_their_own(
    engine: AsyncEngine, shape: str, order: str, seen: str
) -> None:
    events = discounted_account(shape).events
    if seen == "discount events":
        events = [e for e in events if e["type"] != "customer.updated"]
    elif seen == "customer objects":
        events = [e for e in events if not _customer_wide(e)]
    await deliver(engine, events[::-1] if order == "reverse" else events)
    # sub_a 100.00: 20% off from Feb 1 (80.00), none from Apr 1, 10.00 off from May 1 until
    # the repeating discount's end on Aug 1, a `once` coupon from Sep 1 (not recurring: 0)
    # sub_b 30.00 with its own 10% (27.00) until Jun 1, then the customer's 10.00 off (20.00)
    # until Aug 1
    assert await changes(engine) == [
        ("sub_a", date(2024, 1, 1), 10000),
        ("sub_a", date(2024, 2, 1), -2000),
        ("sub_a", date(2024, 4, 1), 2000),
        ("sub_a", date(2024, 5, 1), -1000),
        ("sub_a", date(2024, 8, 1), 1000),
        ("sub_b", date(2024, 1, 1), 2700),
        ("sub_b", date(2024, 6, 1), -700),
        ("sub_b", date(2024, 8, 1), 1000),
    ]
    assert await statuses(engine) == [f"processed:{len(events)}"]


@pytest.mark.parametrize("order", ["chronological", "reverse"])
@pytest.mark.parametrize("seen", ["both", "discount events"])
async def test_a_replaced_customer_discount_is_not_removed_by_the_old_one_s_deletion(
    engine: AsyncEngine, order: str, seen: str
) -> None:
    a = Account()
    a.product("prod", "Seats", date(2024, 1, 1))
    a.price("price_a", "prod", date(2024, 1, 1), 10000)
    a.coupon("c20", date(2024, 1, 1), "forever", percent_off=20)
    a.coupon("c10", date(2024, 1, 1), "forever", percent_off=10)
    a.customer("cus_r", date(2024, 1, 1), "2025")
    a.subscribe("sub_r", "cus_r", date(2024, 1, 1), [("price_a", 1)])
    a.customer_discount("cus_r", "c20", date(2024, 2, 1))
    a.customer_discount("cus_r", "c10", date(2024, 3, 1))  # c20's deletion comes after
    events = a.events
    if seen == "discount events":
        events = [e for e in events if e["type"] != "customer.updated"]
    await deliver(engine, events[::-1] if order == "reverse" else events)
    # 100.00, 80.00 from Feb 1, 90.00 from Mar 1
    assert await changes(engine) == [
        ("sub_r", date(2024, 1, 1), 10000),
        ("sub_r", date(2024, 2, 1), -2000),
        ("sub_r", date(2024, 3, 1), 1000),
    ]
