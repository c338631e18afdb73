"""The demo company's usage: API calls with tokens, active seats, storage; and its metrics.

Over the last DAYS days, each customer that had signed up makes a few API calls a day (each
with `tokens` and a `model`), has some of its seats active (one `seat_active` event per user
and day) and reports its storage once a day. Event ids are derived from the customer, day and
number, so loading the same day again stores nothing twice; a later day adds its new days.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.demo.company import Customer
from app.ingest.subscriptions import Progress
from app.metrics.spec import FilterOp
from app.metrics.usage import Aggregation, PropertyFilter, QueryType, ValueType
from app.text import plural
from app.usage import definitions
from app.usage.definitions import MetricInput
from app.usage.ingest import MAX_BATCH, IngestResult, ingest

if TYPE_CHECKING:  # app.demo.load lists this module's step
    from app.demo.load import DemoCompany

SOURCE = "demo"
DAYS = 90
MODELS = ("small", "large")
METRICS = (
    MetricInput(
        "api_calls",
        "api_call",
        Aggregation.COUNT,
        query_type=QueryType.INDEXED,
        description="API calls.",
    ),
    MetricInput(
        "tokens",
        "api_call",
        Aggregation.SUM,
        "tokens",
        ValueType.INTEGER,
        query_type=QueryType.INDEXED,
        description="Tokens processed by API calls.",
    ),
    MetricInput(
        "large_model_tokens",
        "api_call",
        Aggregation.SUM,
        "tokens",
        filters=(PropertyFilter("model", FilterOp.EQ, ("large",)),),
        description="Tokens of calls to the large model (SIMPLE: read from events).",
    ),
    MetricInput(
        "active_users",
        "seat_active",
        Aggregation.UNIQUE_COUNT,
        "user",
        ValueType.STRING,
        query_type=QueryType.INDEXED,
        description="Distinct users active.",
    ),
    MetricInput(
        "storage_gb",
        "storage",
        Aggregation.LATEST,
        "gb",
        query_type=QueryType.INDEXED,
        description="Storage used, as last reported.",
    ),
    MetricInput(
        "tokens_per_call",
        query_type=QueryType.COMPOSITE,
        expression="tokens / api_calls",
        description="Average tokens per API call.",
    ),
)


def _at(day: datetime.date, hour: int, minute: int) -> str:
    return f"{day.isoformat()}T{hour:02}:{minute:02}:00Z"


def _customer_day(customer: Customer, day: datetime.date, seed: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(f"tidemill-demo-usage:{seed}:{customer.id}:{day}")
    base = {"customer": customer.id}
    for n in range(rng.randint(0, 2 + customer.seats // 10)):
        properties = {"tokens": rng.randint(50, 4_000), "model": rng.choice(MODELS)}
        yield {
            **base,
            "id": f"{customer.id}-{day}-call-{n}",
            "name": "api_call",
            "timestamp": _at(day, rng.randint(0, 23), rng.randint(0, 59)),
            "properties": properties,
        }
    for user in range(min(customer.seats, 1 + rng.randint(0, 3))):
        yield {
            **base,
            "id": f"{customer.id}-{day}-seat-{user}",
            "name": "seat_active",
            "timestamp": _at(day, 9, user % 60),
            "properties": {"user": f"u{user}"},
        }
    gb = round(customer.seats * 0.5 + (day - customer.signup).days * 0.01, 2)
    yield {
        **base,
        "id": f"{customer.id}-{day}-storage",
        "name": "storage",
        "timestamp": _at(day, 23, 30),
        "properties": {"gb": gb},
    }


def events(company: DemoCompany) -> Iterator[dict[str, Any]]:
    first = company.today - datetime.timedelta(days=DAYS - 1)
    for offset in range(DAYS):
        day = first + datetime.timedelta(days=offset)
        for customer in company.customers:
            if customer.signup <= day:
                yield from _customer_day(customer, day, company.seed)


async def _define(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        live = await definitions.live_metrics(connection)
    for metric in METRICS:
        if metric.name not in live:
            await definitions.create(engine, metric)


async def load_usage(engine: AsyncEngine, company: DemoCompany, progress: Progress) -> str:
    """The usage metrics, then the last DAYS days of events (duplicates of a reload ignored)."""
    await _define(engine)
    total, batch = IngestResult(), []
    for event in events(company):
        batch.append(event)
        if len(batch) == MAX_BATCH:
            total.add(await ingest(engine, batch, SOURCE))
            progress("usage events", len(batch))
            batch = []
    total.add(await ingest(engine, batch, SOURCE))
    progress("usage events", len(batch))
    names = ", ".join(metric.name for metric in METRICS)
    return f"usage: {plural(total.accepted, 'event')} stored over {DAYS} days; metrics {names}"
