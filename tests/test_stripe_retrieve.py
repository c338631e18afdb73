"""A tiered price that reaches the worker only through webhooks (Stripe leaves `tiers` out
unless expanded): the worker retrieves it with `expand[]=tiers` from the source's API (a fake
Stripe over HTTP), or fails the events with a clear error and retries them, never a wrong MRR."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from pytest_httpserver import HTTPServer
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ingest import inbox, worker
from app.ingest.secrets import Vault, vault
from app.ingest.sources import add_source
from connectors.registry import TRANSLATORS
from connectors.stripe.translate import read_event
from tests.edge import settings
from tests.fake_stripe import FakeStripe
from tests.stripe_account import Account
from tests.test_stripe_customers import changes
from tests.test_stripe_scenario import KEY, SECRET, reset

NOW = datetime(2026, 1, 1, tzinfo=UTC)
TIERS: list[dict[str, Any]] = [
    {"up_to": 5, "unit_amount": 1000, "flat_amount": 500},
    {"up_to": None, "unit_amount": 800, "flat_amount": None},
]


def account(shape: str) -> Account:
    a = Account()
    a.product("prod", "Seats", date(2024, 1, 1))
    a.price("price_tier", "prod", date(2024, 1, 1), None, tiers=TIERS, tiers_mode="graduated")
    a.events[-1]["data"]["object"].pop("tiers")  # as a webhook carries it
    a.customer("cus_t", date(2024, 1, 2), shape)
    a.subscribe("sub_t", "cus_t", date(2024, 1, 2), [("price_tier", 7)])
    return a


@pytest.fixture
def fake() -> Iterator[tuple[FakeStripe, str]]:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    stripe_api = FakeStripe(account("2025"))
    stripe_api.install(server)
    try:
        yield stripe_api, server.url_for("").rstrip("/")
    finally:
        server.clear()
        server.stop()


def keys() -> Vault:
    return vault(settings("", secret_key=KEY))


async def deliver(engine: AsyncEngine, base: str, events: list[dict[str, Any]]) -> None:
    await reset(engine)
    secrets = {"api_key": "sk_test_tiers", "webhook_secret": SECRET}
    await add_source(engine, keys(), "stripe", "prod", secrets, {"api_base": base})
    for event in events:
        await inbox.store_many(engine, 1, [read_event(event)])
        await worker.drain(engine, TRANSLATORS, now=NOW, keys=keys)


async def events_by_status(engine: AsyncEngine) -> dict[str, list[str | None]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.text("SELECT status, last_error FROM raw_event ORDER BY event_id")
        )
        found: dict[str, list[str | None]] = {}
        for status, error in rows:
            found.setdefault(status, []).append(error)
        return found


@pytest.mark.parametrize("shape", ["2024", "2025"])
@pytest.mark.parametrize("order", ["chronological", "reverse"])
async def test_a_tiered_price_without_tiers_is_retrieved_expanded(
    engine: AsyncEngine, fake: tuple[FakeStripe, str], shape: str, order: str
) -> None:
    stripe_api, base = fake
    stripe_api.account = account(shape)
    events = stripe_api.account.events
    await deliver(engine, base, events[::-1] if order == "reverse" else events)
    # graduated, 7 seats: 5 x 10.00 + 5.00 flat, then 2 x 8.00 = 71.00 a month
    assert await changes(engine) == [("sub_t", date(2024, 1, 2), 7100)]
    assert await events_by_status(engine) == {"processed": [None] * len(events)}
    retrieved = [path for path in stripe_api.requests if path.startswith("/v1/prices/")]
    assert retrieved
    assert all("price_tier" in path and "tiers" in path for path in retrieved)


async def test_a_failed_retrieval_fails_the_events_clearly_and_is_retried(
    engine: AsyncEngine, fake: tuple[FakeStripe, str]
) -> None:
    stripe_api, base = fake
    stripe_api.refusing = True
    events = stripe_api.account.events
    await deliver(engine, base, events)
    assert await changes(engine) == []
    found = await events_by_status(engine)
    assert found["processed"] == [None, None, None]  # product, price, customer.created
    assert found["failed"] == [
        "customer cus_t: price price_tier is tiered but its tiers are unknown; retrieving price "
        "price_tier from Stripe failed: No such price: 'price_tier'"
    ]

    stripe_api.refusing = False
    later = NOW + timedelta(seconds=31)
    assert await worker.drain(engine, TRANSLATORS, now=later, keys=keys) == 1
    assert await changes(engine) == [("sub_t", date(2024, 1, 2), 7100)]
    assert await events_by_status(engine) == {"processed": [None] * len(events)}
