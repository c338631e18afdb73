"""The backfill through the official `stripe` client against a fake Stripe API: the same
series as the webhooks, a resumed sync after an interruption, overlap without double counts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ingest import worker
from app.ingest.sources import cursor_of
from connectors.registry import TRANSLATORS
from connectors.stripe import backfill
from tests import stripe_scenario
from tests.fake_stripe import FakeStripe
from tests.test_stripe_scenario import client, deliver, new_source, outcome, reset, statuses

__all__ = ["client"]  # the webhook client fixture, shared


def serve(with_events: bool) -> Iterator[tuple[FakeStripe, str]]:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    stripe_api = FakeStripe(stripe_scenario.build(), with_events)
    stripe_api.install(server)
    try:
        yield stripe_api, server.url_for("").rstrip("/")
    finally:
        server.clear()
        server.stop()


@pytest.fixture
def fake() -> Iterator[tuple[FakeStripe, str]]:
    yield from serve(with_events=True)


@pytest.fixture
def objects_only() -> Iterator[tuple[FakeStripe, str]]:
    yield from serve(with_events=False)


def listed(stripe_api: FakeStripe) -> int:
    """Objects the list endpoints return (discounts come inside their subscriptions)."""
    return sum(o["object"] != "discount" for o in stripe_api.account.objects.values())


def mrr_by_month(result: dict[str, Any]) -> list[tuple[str, int]]:
    return [(p["endDate"], p["mrr"]) for p in result["series"]["series"]["points"]]


async def test_the_backfill_gives_the_hand_computed_series_of_the_webhooks(
    engine: AsyncEngine, fake: tuple[FakeStripe, str], client: httpx.AsyncClient
) -> None:
    stripe_api, base = fake
    await reset(engine)
    await new_source(engine)
    await deliver(client, engine, stripe_api.account.events)
    by_webhooks = await outcome(engine)

    await reset(engine)
    source = await new_source(engine)
    result = await backfill.backfill(engine, source.id, "sk_test_scenario", base)
    await worker.drain(engine, TRANSLATORS)
    total = len(stripe_api.account.events) + listed(stripe_api)
    assert (result.events, result.stored, result.resumed) == (total, total, False)
    assert await statuses(engine) == {"processed": total}
    by_backfill = await outcome(engine)
    assert by_backfill == by_webhooks
    assert mrr_by_month(by_backfill) == [
        (end, stripe_scenario.mrr_at(date.fromisoformat(end)))
        for end, _ in mrr_by_month(by_backfill)
    ]
    assert list(await cursor_of(engine, source.id)) == ["finished_at"]


async def test_an_interrupted_backfill_resumes_from_its_cursor(
    engine: AsyncEngine, fake: tuple[FakeStripe, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stripe_api, base = fake
    monkeypatch.setattr(backfill, "PAGE_SIZE", 5)
    await reset(engine)
    source = await new_source(engine)
    pages: list[str] = []

    def stop_at_the_seventh_page(resource: str, _count: int) -> None:
        pages.append(resource)
        if len(pages) == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await backfill.backfill(engine, source.id, "sk", base, stop_at_the_seventh_page)
    cursor = await cursor_of(engine, source.id)
    assert cursor["resource"] == pages[-1]
    first_requests = len(stripe_api.requests)
    resumed = await backfill.backfill(engine, source.id, "sk", base)
    assert resumed.resumed
    # the resumed sync asked for the page after the cursor, not for the first page again
    assert f"starting_after={cursor['after']}" in stripe_api.requests[first_requests]
    await worker.drain(engine, TRANSLATORS)
    total = len(stripe_api.account.events) + listed(stripe_api)
    assert await statuses(engine) == {"processed": total}
    assert mrr_by_month(await outcome(engine))[-1] == ("2024-12-31", 126342)


async def test_webhooks_and_a_backfill_overlap_without_counting_twice(
    engine: AsyncEngine, fake: tuple[FakeStripe, str], client: httpx.AsyncClient
) -> None:
    stripe_api, base = fake
    await reset(engine)
    source = await new_source(engine)
    await deliver(client, engine, stripe_api.account.events[::2])
    await backfill.backfill(engine, source.id, "sk", base)
    await deliver(client, engine, stripe_api.account.events[1::2])
    await worker.drain(engine, TRANSLATORS)
    months = mrr_by_month(await outcome(engine))
    assert months == [(end, stripe_scenario.mrr_at(date.fromisoformat(end))) for end, _ in months]


async def test_without_events_the_current_state_is_read_back_from_its_own_timestamps(
    engine: AsyncEngine, objects_only: tuple[FakeStripe, str]
) -> None:
    _, base = objects_only
    await reset(engine)
    source = await new_source(engine)
    await backfill.backfill(engine, source.id, "sk", base)
    await worker.drain(engine, TRANSLATORS)
    result = await outcome(engine)
    # the state of today holds from each subscription's start: right wherever nothing changed
    # since; trials, cancellations and repeating discounts from their own timestamps
    assert mrr_by_month(result)[-1] == ("2024-12-31", 126342)
    assert result["trials"]["trials"]["points"] == [
        {"trialsStarted": 2, "trialsConverted": 1, "trialsExpired": 1}
    ]
