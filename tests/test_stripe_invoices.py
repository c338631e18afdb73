"""Backfilled history from invoices: with no event older than the sync, what the paid and open
invoices billed (their non-proration subscription lines) gives the subscription's items for
their periods, instead of today's state read back to its start."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import date

import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ingest import inbox, worker
from connectors.registry import TRANSLATORS
from connectors.stripe import backfill
from connectors.stripe.translate import read_event
from tests.fake_stripe import FakeStripe
from tests.stripe_account import Account
from tests.test_stripe_customers import changes
from tests.test_stripe_scenario import new_source, reset


def months(first: date, count: int) -> list[tuple[date, date]]:
    days = [
        date(first.year + (first.month - 1 + i) // 12, (first.month - 1 + i) % 12 + 1, 2)
        for i in range(count + 1)
    ]
    return list(itertools.pairwise(days))


def upgraded(shape: str) -> Account:
    """Two seats from Jan 2, 2024, five from the renewal of Jul 2; invoiced monthly."""
    a = Account()
    a.product("prod", "Seats", date(2024, 1, 1))
    a.price("price_seat", "prod", date(2024, 1, 1), 2900)
    a.customer("cus_u", date(2024, 1, 2), shape)
    a.subscribe("sub_u", "cus_u", date(2024, 1, 2), [("price_seat", 2)])
    for start, end in months(date(2024, 1, 2), 12):
        if start == date(2024, 7, 2):
            a.update("sub_u", start, items=[("price_seat", 5)], hour=0)
        quantity = 2 if start < date(2024, 7, 2) else 5
        # an extra seat for a day in May, billed as a proration only: not recurring
        prorations = [("price_seat", 3, date(2024, 5, 20))] if start == date(2024, 6, 2) else None
        a.invoice("sub_u", start, end, [("price_seat", quantity)], prorations=prorations)
    a.invoice("sub_u", date(2024, 3, 2), date(2024, 4, 2), [("price_seat", 9)], status="void")
    return a


# 2 x 29.00 = 58.00 from Jan 2; 5 x 29.00 = 145.00 from Jul 2
EXPECTED = [("sub_u", date(2024, 1, 2), 5800), ("sub_u", date(2024, 7, 2), 8700)]


@pytest.fixture
def server() -> Iterator[HTTPServer]:
    http = HTTPServer(host="127.0.0.1", port=0)
    http.start()
    try:
        yield http
    finally:
        http.clear()
        http.stop()


@pytest.mark.parametrize("shape", ["2024", "2025"])
async def test_the_backfill_reads_past_quantities_from_invoices(
    engine: AsyncEngine, server: HTTPServer, shape: str
) -> None:
    account = upgraded(shape)
    FakeStripe(account, with_events=False).install(server)
    await reset(engine)
    source = await new_source(engine)
    await backfill.backfill(engine, source.id, "sk", server.url_for("").rstrip("/"))
    await worker.drain(engine, TRANSLATORS)
    assert await changes(engine) == EXPECTED

    await reset(engine)
    await new_source(engine)
    for event in account.events:  # the same history as webhooks, invoices included
        await inbox.store_many(engine, 1, [read_event(event)])
        await worker.drain(engine, TRANSLATORS)
    assert await changes(engine) == EXPECTED
