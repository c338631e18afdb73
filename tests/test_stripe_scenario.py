"""Acceptance: the scenario company delivered as signed webhooks in chronological order, in
reverse, and shuffled with duplicates gives identical series, equal to the hand-computed MRR
(tests/stripe_scenario.py)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ingest import worker
from app.ingest.secrets import vault
from app.ingest.sources import Source, add_source
from app.metrics.service import MetricsEngine
from connectors.registry import TRANSLATORS
from connectors.stripe import signature
from tests import stripe_scenario
from tests.conftest import TABLES, execute
from tests.edge import real_app, serving, settings

SECRET = "whsec_scenario_0123456789"
KEY = Fernet.generate_key().decode()
SERIES = """{ series(start: "2024-01-01", end: "2024-12-31", interval: MONTH) {
  points { date endDate mrr customers new expansion contraction churn reactivation }
  breakdown { key points { mrr } } } }"""
BY_PRODUCT = """query ($dimension: String!) {
  series(start: "2024-12-01", end: "2024-12-31", spec: {dimensions: [$dimension]}) {
    breakdown { key points { mrr } } } }"""
TRIALS = """{ trials(start: "2024-01-01", end: "2024-12-31", interval: YEAR) {
  points { trialsStarted trialsConverted trialsExpired } } }"""


async def reset(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(sa.text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY"))
        await connection.execute(
            sa.text("INSERT INTO fx_rate VALUES ('EUR', '2024-01-01', :rate, 'test')"),
            {"rate": stripe_scenario.EUR_RATE},
        )


async def new_source(engine: AsyncEngine) -> Source:
    secrets = {"api_key": "sk_test_scenario", "webhook_secret": SECRET}
    return await add_source(engine, vault(settings("", secret_key=KEY)), "stripe", "prod", secrets)


def signed(event: dict[str, Any], secret: str = SECRET, at: int | None = None) -> dict[str, Any]:
    body = json.dumps(event).encode()
    header = signature.header(body, [secret], at or int(time.time()))
    return {"content": body, "headers": {"Stripe-Signature": header}}


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(real_app(database_url, secret_key=KEY)) as client:
        yield client


async def deliver(
    client: httpx.AsyncClient, engine: AsyncEngine, events: list[dict[str, Any]]
) -> list[bool]:
    """POST each event, then let the worker apply what is due, as a live server would."""
    duplicates = []
    for event in events:
        response = await client.post("/webhooks/1", **signed(event))
        assert response.status_code == 200, response.text
        duplicates.append(response.json()["duplicate"])
        await worker.drain(engine, TRANSLATORS)
    return duplicates


async def outcome(engine: AsyncEngine) -> dict[str, Any]:
    metrics = MetricsEngine(engine)
    return {
        "series": await execute(metrics, SERIES),
        "trials": await execute(metrics, TRIALS),
        "products": await execute(metrics, BY_PRODUCT, {"dimension": "product"}),
        "collection": await execute(metrics, BY_PRODUCT, {"dimension": "collection_method"}),
    }


async def statuses(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.text("SELECT status, count(*) FROM raw_event GROUP BY status")
        )
        return {str(status): int(count) for status, count in rows.all()}


def orders(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    shuffled = [*events, *random.Random(11).sample(events, 15)]
    random.Random(7).shuffle(shuffled)
    return {
        "chronological": list(events),
        "reversed": list(reversed(events)),
        "shuffled with duplicates": shuffled,
    }


async def test_every_delivery_order_gives_the_hand_computed_series(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    account = stripe_scenario.build()
    results = {}
    for name, events in orders(account.events).items():
        await reset(engine)
        await new_source(engine)
        duplicates = await deliver(client, engine, events)
        assert sum(duplicates) == len(events) - len(account.events), name
        assert await statuses(engine) == {"processed": len(account.events)}, name
        results[name] = await outcome(engine)
    first = results["chronological"]
    assert all(result == first for result in results.values())
    points = first["series"]["series"]["points"]
    assert [p["mrr"] for p in points] == [
        stripe_scenario.mrr_at(date.fromisoformat(p["endDate"])) for p in points
    ]


async def test_the_scenario_by_hand_month_by_month(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    await reset(engine)
    await new_source(engine)
    await deliver(client, engine, stripe_scenario.build().events)
    result = await outcome(engine)
    points = result["series"]["series"]["points"]
    # Jan: 01 02900, 04 2900, 05 3000, 08 5800, 10 2900, 15 2900, 17 2900, 18 2900, 19 9900
    assert points[0]["mrr"] == 36100
    assert points[0]["customers"] == 9
    # Dec: 01 2900, 02 9900, 04 9900, 05 2000, 06 8250, 07 10000, 08 4000, 09 8000, 10 2900,
    # 11 7425, 12 9900, 13 2900, 14 8167, 17 2900, 18 9900, 19 9900, 20 5500, 22 11900
    assert points[-1]["mrr"] == 126342
    # cus_18 came back in July (Pro), cus_17 resumed in June, cus_19 was paid again in June
    assert [p["reactivation"] for p in points[5:7]] == [2900 + 9900, 9900]
    assert result["trials"]["trials"]["points"] == [
        {"trialsStarted": 2, "trialsConverted": 1, "trialsExpired": 1}
    ]
    # each item in its product: Basic 01 10 13 17 (2900 each) + 20 (5500); Pro 02 04 12 18 19
    # 22 (9900 each) + 06 8250 + 11 7425 + 14 8167; Seats 05 2000, 08 4000, 09 8000, 22 2000
    assert breakdown(result["products"]) == {
        "Basic": 17100,
        "Pro": 83242,
        "Seats": 16000,
        "Team": 10000,
    }
    assert breakdown(result["collection"]) == {
        "charge_automatically": 116342,
        "send_invoice": 10000,  # cus_07
    }


def breakdown(data: dict[str, Any]) -> dict[str, int]:
    return {
        entry["key"][0]: entry["points"][-1]["mrr"]
        for entry in data["series"]["breakdown"]
        if entry["points"][-1]["mrr"]
    }
