"""Deliveries the inbox or the database cannot take: refused at the webhook (400, nothing
stored, never a 500), or, signed and stored, failed alone by the worker with a reason while
every other event (of any source) is applied."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ingest import inbox, worker
from app.ingest.recompute import recompute_touched
from app.ingest.secrets import vault
from app.ingest.sources import add_source
from connectors.registry import TRANSLATORS
from connectors.stripe import signature
from connectors.stripe.translate import read_event
from tests.conftest import session_engine
from tests.edge import Relay, real_app, serving, settings
from tests.test_stripe_scenario import KEY, SECRET, new_source, reset

Json = dict[str, Any]
PAST = 1_700_000_000  # 2023-11-14


def subscription_event(
    quantity: Any = 1, price: Json | None = None, event_id: str = "evt_poison"
) -> Json:
    price = price or {"unit_amount": 100}
    return {
        "id": event_id,
        "object": "event",
        "type": "customer.subscription.created",
        "api_version": "2025-03-31.basil",
        "created": PAST,
        "data": {
            "object": {
                "id": "sub_q",
                "object": "subscription",
                "customer": "cus_q",
                "status": "active",
                "currency": "usd",
                "start_date": PAST,
                "items": {
                    "object": "list",
                    "data": [
                        {
                            "id": "si_q",
                            "quantity": quantity,
                            "price": {
                                "id": "price_q",
                                "object": "price",
                                "currency": "usd",
                                "recurring": {"interval": "month", "interval_count": 1},
                                **price,
                            },
                        }
                    ],
                },
            }
        },
    }


def customer_event(event_id: str = "evt_good", customer: str = "cus_good") -> Json:
    return {
        "id": event_id,
        "object": "event",
        "type": "customer.created",
        "api_version": "2025-03-31.basil",
        "created": PAST + 1,
        "data": {"object": {"id": customer, "object": "customer", "name": "Good"}},
    }


def signed_body(body: bytes) -> Json:
    header = signature.header(body, [SECRET], int(time.time()))
    return {"content": body, "headers": {"Stripe-Signature": header}}


async def second_source(engine: AsyncEngine) -> None:
    secrets = {"api_key": "sk_test_other", "webhook_secret": SECRET}
    await add_source(engine, vault(settings("", secret_key=KEY)), "stripe", "other", secrets)


async def events(engine: AsyncEngine) -> dict[str, tuple[int, str, int, str | None]]:
    async with engine.connect() as connection:
        found = await connection.execute(
            sa.text("SELECT event_id, source_id, status, attempts, last_error FROM raw_event")
        )
        return {str(row[0]): (row[1], row[2], row[3], row[4]) for row in found}


async def customers(engine: AsyncEngine) -> set[tuple[str, str]]:
    async with engine.connect() as connection:
        found = await connection.execute(sa.text("SELECT source, external_id FROM customer"))
        return {(str(source), str(ident)) for source, ident in found}


@pytest.fixture
async def client(database_url: str, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    await reset(engine)
    await new_source(engine)
    async with serving(real_app(database_url, secret_key=KEY)) as client:
        yield client


def refusal(response: httpx.Response) -> tuple[int, str, str]:
    [first] = response.json()["errors"]
    return response.status_code, first["extensions"]["code"], first["message"]


def nested(depth: int) -> bytes:
    event = json.dumps(customer_event()).encode()
    return event[:-1] + b', "x": ' + b"[" * depth + b"]" * depth + b"}"


def body_of(event: Json) -> bytes:
    return json.dumps(event).encode()


def changed(**fields: Any) -> bytes:
    return body_of({**customer_event(), **fields})


def with_object(**fields: Any) -> bytes:
    event = subscription_event()
    event["type"] = "customer.subscription.updated"
    event["data"]["object"].update(fields)
    return body_of(event)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (changed(id="evt_\u0000"), "`id` holds a NUL character (\\u0000)"),
        (changed(extra="a\u0000b"), "`extra` holds a NUL character (\\u0000)"),
        (changed(**{"k\u0000": 1}), "a key in the body holds a NUL character"),
        (changed(x="\ud800"), "`x` holds an unpaired surrogate"),
        (changed(x=["ok", {"y": "\udc00"}]), "`x[1].y` holds an unpaired surrogate"),
        (changed(id="e" * 1_000_000), "`id` is not a string of 1 to 255 characters"),
        (changed(id=""), "`id` is not a string of 1 to 255 characters"),
        (changed(type="customer." * 100), "`type` is not a string of 1 to 255 characters"),
        (changed(api_version={"a": 1}), "`api_version` is not a string of 1 to 255"),
        (changed(api_version=5), "`api_version` is not a string of 1 to 255"),
        (with_object(items="nope"), 'data.object.items is not a list object ({"data": [objects]})'),
        (with_object(items={"data": ["x"]}), "data.object.items is not a list object"),
        (with_object(discounts="nope"), "data.object.discounts is not a list"),
        (with_object(id="s" * 300), "`data.object.id` is not a string of 1 to 255"),
        (nested(5_000), "the JSON is nested more than 64 levels deep"),
        (nested(100), "the JSON is nested more than 64 levels deep"),
        (changed(x=float("nan")), "NaN is not a JSON number"),
        (changed(x=1e308).replace(b"1e+308", b"1e400"), "the number 1e400 is out of"),
    ],
)
async def test_a_signed_body_the_inbox_cannot_store_is_400_naming_why(
    engine: AsyncEngine, client: httpx.AsyncClient, body: bytes, message: str
) -> None:
    response = await client.post("/webhooks/1", **signed_body(body))
    status, code, text = refusal(response)
    assert (status, code) == (400, "BAD_USER_INPUT")
    assert text.startswith(f"malformed event: {message}"), text
    assert await events(engine) == {}


@pytest.mark.parametrize("path", ["/webhooks/%C2%B2", "/webhooks/%D9%A1", "/webhooks/%EF%BC%91"])
async def test_a_source_id_of_other_than_ascii_digits_is_404(
    engine: AsyncEngine, client: httpx.AsyncClient, path: str
) -> None:
    response = await client.post(path, **signed_body(body_of(customer_event())))
    assert refusal(response)[:2] == (404, "NOT_FOUND")
    assert await events(engine) == {}


# a header is read as Latin-1: "²" is a digit to str.isdigit, not to int()
@pytest.mark.parametrize("timestamp", ["9" * 5_000, "\u00b2" * 10, "9" * 19])
async def test_a_timestamp_that_is_no_unix_time_is_a_signature_error(
    engine: AsyncEngine, client: httpx.AsyncClient, timestamp: str
) -> None:
    body = body_of(customer_event())
    header = f"t={timestamp},v1={signature.sign(body, SECRET, int(time.time()))}"
    response = await client.post(
        "/webhooks/1", content=body, headers=[(b"Stripe-Signature", header.encode("latin-1"))]
    )
    assert refusal(response) == (
        400,
        "BAD_USER_INPUT",
        "signature refused: the Stripe-Signature header needs t=<timestamp> and at least one "
        "v1=<signature>",
    )
    assert await events(engine) == {}


POISONS = [
    (2_147_483_648, {}, "quantity 2147483648 is not between 0 and 2,147,483,647"),
    (2**63, {}, "quantity 9223372036854775808 is not between 0 and 2,147,483,647"),
    (-1, {}, "quantity -1 is not between 0 and 2,147,483,647"),
    (
        1,
        {"unit_amount": 10**25},
        "an MRR of 100,000,000,000,000,000,000,000.00 a month is over the limit of "
        "10,000,000,000 a month per subscription",
    ),
    (
        1,
        {"unit_amount": 10**27},
        "price price_q: unit_amount 1000000000000000000000000000 (the currency's smallest "
        "unit) is too large (at most 26 digits before the decimal point)",
    ),
    (
        1,
        {"recurring": {"interval": "month", "interval_count": 2**31}},
        "interval_count 2147483648 is not between 1 and 2,147,483,647",
    ),
]


@pytest.mark.parametrize(("quantity", "price", "reason"), POISONS)
async def test_a_signed_event_out_of_bounds_fails_alone_naming_the_field_and_the_range(
    engine: AsyncEngine, client: httpx.AsyncClient, quantity: Any, price: Json, reason: str
) -> None:
    await second_source(engine)
    poison = subscription_event(quantity, price)
    accepted = await client.post("/webhooks/1", **signed_body(body_of(poison)))
    assert accepted.json() == {"received": True, "duplicate": False}
    good = await client.post("/webhooks/2", **signed_body(body_of(customer_event())))
    assert good.status_code == 200
    await worker.drain(engine, TRANSLATORS)
    found = await events(engine)
    assert found["evt_good"][:3] == (2, "processed", 0)
    source, status, attempts, error = found["evt_poison"]
    assert (source, status, attempts) == (1, "failed", 1)
    assert error is not None
    assert error.startswith("customer cus_q: ")
    assert reason in error
    assert ("stripe:2", "cus_good") in await customers(engine)


async def stored(engine: AsyncEngine, source_id: int, *events: Json) -> None:
    await inbox.store_many(engine, source_id, [read_event(event) for event in events])


async def test_a_value_the_database_refuses_fails_its_event_alone_and_others_go_on(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: were the bounds not checked, the database's data error fails the
    event that brought the value (the batch is applied again in halves without it)."""
    monkeypatch.setattr(worker, "bundle_problem", lambda bundle: None)
    await reset(engine)
    await new_source(engine)
    await second_source(engine)
    await stored(engine, 1, subscription_event(2_147_483_648), customer_event("evt_same", "cus_1"))
    await stored(engine, 2, customer_event())
    assert await worker.drain(engine, TRANSLATORS) == 3
    found = await events(engine)
    assert found["evt_good"][:3] == (2, "processed", 0)
    assert found["evt_same"][:3] == (1, "processed", 0)
    source, status, attempts, error = found["evt_poison"]
    assert (source, status, attempts) == (1, "failed", 1)
    assert error is not None
    assert "out of range for type integer" in error
    assert await customers(engine) == {("stripe:1", "cus_1"), ("stripe:2", "cus_good")}
    # retried after its backoff, failing again (its attempts counted), nothing else taken
    later = datetime.now(UTC) + worker.backoff(1) * 2
    assert await worker.drain(engine, TRANSLATORS, now=later) == 1
    assert (await events(engine))["evt_poison"][1:3] == ("failed", 2)


UNREADABLE = [
    (
        {"unit_amount_decimal": "abc"},
        "price price_q: unit_amount_decimal abc (the currency's smallest unit) is not a number",
    ),
    (
        {"unit_amount_decimal": "1e-40"},
        "price price_q: unit_amount_decimal 1e-40 (the currency's smallest unit) has more "
        "than 18 decimal places",
    ),
    ({"tiers": "nope", "billing_scheme": "tiered"}, "price price_q: tiers is not a list of tiers"),
    ({"recurring": "month"}, "unreadable (AttributeError("),
]


@pytest.mark.parametrize(("price", "reason"), UNREADABLE)
async def test_a_signed_object_that_cannot_be_translated_fails_with_a_reason(
    engine: AsyncEngine, price: Json, reason: str
) -> None:
    await reset(engine)
    await new_source(engine)
    await second_source(engine)
    await stored(engine, 1, subscription_event(1, price))
    await stored(engine, 2, customer_event())
    await worker.drain(engine, TRANSLATORS)
    found = await events(engine)
    assert found["evt_good"][1] == "processed"
    assert found["evt_poison"][1:3] == ("failed", 1)
    assert reason in str(found["evt_poison"][3])


async def test_a_stored_event_the_translator_cannot_read_fails_and_others_go_on(
    engine: AsyncEngine,
) -> None:
    """Stored before the webhook checked its shape (or by another path): read again by the
    worker, it fails with the reason instead of stopping the batch."""
    await reset(engine)
    await new_source(engine)
    await stored(engine, 1, subscription_event(), customer_event())
    poison = subscription_event()
    poison["data"]["object"]["items"] = "nope"
    async with engine.begin() as connection:
        await connection.execute(
            sa.text("UPDATE raw_event SET payload = CAST(:p AS jsonb) WHERE event_id = :e"),
            {"p": json.dumps(poison), "e": "evt_poison"},
        )
    await worker.drain(engine, TRANSLATORS)
    found = await events(engine)
    assert found["evt_good"][1] == "processed"
    assert found["evt_poison"][1:3] == ("failed", 1)
    assert "data.object.items is not a list object" in str(found["evt_poison"][3])


async def test_losing_the_database_while_applying_is_retried_not_failed(
    engine: AsyncEngine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await reset(engine)
    await new_source(engine)
    await stored(engine, 1, customer_event())
    async with Relay(database_url) as relay:
        relayed = session_engine(relay.url)

        async def cut_first(connection: Any) -> None:
            await relay.cut()
            await recompute_touched(connection)

        monkeypatch.setattr("app.ingest.worker.recompute_touched", cut_first)
        with pytest.raises(sa.exc.DBAPIError) as raised:
            await worker.process_batch(relayed, TRANSLATORS)
        assert not worker.data_error(raised.value)
        assert (await events(engine))["evt_good"][1:3] == ("received", 0)
        monkeypatch.undo()
        await relay.start()
        assert await worker.drain(relayed, TRANSLATORS) == 1
        await relayed.dispose()
    assert (await events(engine))["evt_good"][1:3] == ("processed", 0)
