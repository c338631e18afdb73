"""`POST /webhooks/{source_id}` at the edge: Stripe's signature scheme, refusals that store
nothing, duplicates, unknown types, and a database outage answered 503 then applied once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ingest import worker
from app.ingest.secrets import vault
from connectors.registry import TRANSLATORS
from connectors.stripe import signature
from tests.edge import Relay, real_app, serving, settings
from tests.stripe_account import Account
from tests.test_stripe_scenario import KEY, SECRET, new_source, signed

ROTATED = "whsec_rotated_9876543210"


def account() -> Account:
    a = Account()
    a.product("prod_basic", "Basic", date(2024, 1, 1))
    a.price("price_basic", "prod_basic", date(2024, 1, 1), 2900)
    a.customer("cus_1", date(2024, 1, 2), "2025", name="Ada")
    a.subscribe("sub_1", "cus_1", date(2024, 1, 2), [("price_basic", 2)])
    return a


@pytest.fixture
async def client(database_url: str, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    await new_source(engine)
    async with serving(real_app(database_url, secret_key=KEY)) as client:
        yield client


async def inbox(engine: AsyncEngine) -> list[tuple[str, str]]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.text("SELECT event_id, status FROM raw_event ORDER BY event_id")
        )
        return [(str(event), str(status)) for event, status in rows]


async def mrr_rows(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as connection:
        rows = await connection.execute(sa.text("SELECT day, delta FROM mrr_change ORDER BY day"))
        return [tuple(row) for row in rows]


def error(response: httpx.Response) -> tuple[int, str, str]:
    [first] = response.json()["errors"]
    return response.status_code, first["extensions"]["code"], first["message"]


async def test_a_signed_event_is_stored_acknowledged_and_applied_once(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    events = account().events
    for event in events:
        response = await client.post("/webhooks/1", **signed(event))
        assert response.json() == {"received": True, "duplicate": False}
    again = await client.post("/webhooks/1", **signed(events[-1]))
    assert again.json() == {"received": True, "duplicate": True}
    assert [status for _, status in await inbox(engine)] == ["received"] * len(events)
    await worker.drain(engine, TRANSLATORS)
    await client.post("/webhooks/1", **signed(events[-1]))
    await worker.drain(engine, TRANSLATORS)
    assert [status for _, status in await inbox(engine)] == ["processed"] * len(events)
    assert await mrr_rows(engine) == [(date(2024, 1, 2), 5800)]


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (
            lambda body, at: {"Stripe-Signature": signature.header(body, ["whsec_wrong"], at)},
            "no v1 signature matches the endpoint's signing secret",
        ),
        (
            lambda body, at: {"Stripe-Signature": signature.header(body, [SECRET], at - 301)},
            "the signature's timestamp is more than 300 s away from now",
        ),
        (
            lambda body, at: {"Stripe-Signature": signature.header(body + b" ", [SECRET], at)},
            "no v1 signature matches the endpoint's signing secret",
        ),
        (
            lambda body, at: {"Stripe-Signature": f"t={at}"},
            "the Stripe-Signature header needs t=<timestamp> and at least one v1=<signature>",
        ),
        (lambda body, at: {}, "no Stripe-Signature header"),
    ],
)
async def test_a_delivery_that_is_not_authentic_is_400_and_stores_nothing(
    engine: AsyncEngine, client: httpx.AsyncClient, tamper: Any, message: str
) -> None:
    body = json.dumps(account().events[0]).encode()
    response = await client.post(
        "/webhooks/1", content=body, headers=tamper(body, int(time.time()))
    )
    assert error(response) == (400, "BAD_USER_INPUT", f"signature refused: {message}")
    assert await inbox(engine) == []


async def test_any_v1_of_any_secret_is_accepted_during_a_rotation(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    sealed = vault(settings("", secret_key=KEY)).seal(
        {"api_key": "sk_test_x", "webhook_secret": f"{SECRET},{ROTATED}"}
    )
    async with engine.begin() as connection:  # the source now holds the old and the new secret
        await connection.execute(sa.text("UPDATE source SET secrets = :s"), {"s": sealed})
    body = json.dumps(account().events[0]).encode()
    at = int(time.time())
    header = f"t={at},v1={'0' * 64},v1={signature.sign(body, ROTATED, at)}"
    response = await client.post("/webhooks/1", content=body, headers={"Stripe-Signature": header})
    assert response.status_code == 200, response.text
    assert len(await inbox(engine)) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "malformed event: Expecting property name enclosed in double quotes"),
        (b"[1, 2]", "malformed event: the body is not a JSON object"),
        (b'{"id": "evt_1", "type": "customer.created"}', "malformed event: not a Stripe event"),
        (
            b'{"id": "evt_1", "type": "customer.created", "created": 1, "data": {"object": 3}}',
            "malformed event: data.object is not a Stripe object",
        ),
    ],
)
async def test_a_malformed_body_is_400_and_stores_nothing(
    engine: AsyncEngine, client: httpx.AsyncClient, body: bytes, message: str
) -> None:
    header = signature.header(body, [SECRET], int(time.time()))
    response = await client.post("/webhooks/1", content=body, headers={"Stripe-Signature": header})
    status, code, text = error(response)
    assert (status, code) == (400, "BAD_USER_INPUT")
    assert text.startswith(message)
    assert await inbox(engine) == []


@pytest.mark.parametrize("path", ["/webhooks/2", "/webhooks/abc", "/webhooks/99999999999999999999"])
async def test_an_unknown_source_is_404_and_stores_nothing(
    engine: AsyncEngine, client: httpx.AsyncClient, path: str
) -> None:
    response = await client.post(path, **signed(account().events[0]))
    assert error(response)[:2] == (404, "NOT_FOUND")
    assert await inbox(engine) == []


async def test_unknown_event_types_are_stored_and_ignored_without_effect(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    events = account().events
    for event in events:
        await client.post("/webhooks/1", **signed(event))
    await worker.drain(engine, TRANSLATORS)
    before = await mrr_rows(engine)
    unknown = {**events[0], "id": "evt_unknown", "type": "radar.early_fraud_warning.created"}
    invoice = {
        **events[0],
        "id": "evt_invoice",
        "type": "invoice.paid",
        "data": {"object": {"id": "in_1", "object": "invoice", "customer": "cus_1"}},
    }
    for event in (unknown, invoice):
        assert (await client.post("/webhooks/1", **signed(event))).status_code == 200
    await worker.drain(engine, TRANSLATORS)
    statuses = dict(await inbox(engine))
    assert (statuses["evt_unknown"], statuses["evt_invoice"]) == ("ignored", "processed")
    assert await mrr_rows(engine) == before


@pytest.mark.usefixtures("engine")
async def test_a_database_outage_is_503_and_the_retried_delivery_is_applied_once(
    engine: AsyncEngine, database_url: str
) -> None:
    await new_source(engine)
    events = account().events
    async with Relay(database_url) as relay, serving(real_app(relay.url, secret_key=KEY)) as client:
        for event in events[:-1]:
            assert (await client.post("/webhooks/1", **signed(event))).status_code == 200
        await relay.cut()
        during = await client.post("/webhooks/1", **signed(events[-1]))
        await relay.start()
        after = await client.post("/webhooks/1", **signed(events[-1]))
    assert error(during)[:2] == (503, "UNAVAILABLE")
    assert after.json() == {"received": True, "duplicate": False}
    await worker.drain(engine, TRANSLATORS)
    assert len(await inbox(engine)) == len(events)
    assert await mrr_rows(engine) == [(date(2024, 1, 2), 5800)]


async def test_the_server_applies_what_it_receives_with_its_own_worker(
    engine: AsyncEngine, database_url: str
) -> None:
    await new_source(engine)
    events = account().events
    async with serving(real_app(database_url, secret_key=KEY, worker=True)) as client:
        for event in events:
            assert (await client.post("/webhooks/1", **signed(event))).status_code == 200
        for _ in range(100):
            if {status for _, status in await inbox(engine)} == {"processed"}:
                break
            await asyncio.sleep(0.1)
    assert await mrr_rows(engine) == [(date(2024, 1, 2), 5800)]


async def test_each_event_keeps_the_api_version_it_was_sent_with(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    a = Account()
    a.customer("cus_old", date(2024, 1, 2), "2024")
    a.customer("cus_new", date(2024, 1, 3), "2025")
    for event in a.events:
        response = await client.post("/webhooks/1", **signed(event))
        assert response.status_code == 200, response.text
    async with engine.connect() as connection:
        found = await connection.execute(
            sa.text("SELECT payload->'data'->'object'->>'id', api_version FROM raw_event")
        )
        assert dict(found.all()) == {"cus_old": "2024-06-20", "cus_new": "2025-03-31.basil"}
