"""Loading the demo company into a database: a list of steps, each adding one kind of data.

To add demo data of another kind (usage events, ...), write a `Step` and list it in `STEPS`.
A step gets the engine, the `DemoCompany` (its range and customers) and a progress callback; it
must be idempotent (loading the same company again changes nothing, loading it on a later day
only adds) and returns one line for the summary `tidemill demo` prints.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app import attributes as attribute_store
from app import segments as segment_store
from app.attributes import AttributeDefinition, AttributeType
from app.demo.company import (
    DEFAULT_RATES,
    DEMO_START,
    LOCAL_CURRENCIES,
    REFERENCE_MONTHS,
    Customer,
    Rates,
    customers,
)
from app.demo.periods import customer_periods
from app.demo.usage import load_usage
from app.errors import UserError
from app.ingest.rows import PeriodRow
from app.ingest.subscriptions import Progress, load_periods
from app.metrics.service import MetricsEngine
from app.text import plural

SOURCE = "demo"  # app.demo.usage names it too


@dataclass(frozen=True)
class DemoCompany:
    """The demo company as it stands at the end of `today`: the input of every step."""

    seed: int
    size: int  # customers signing up in the first five years
    start: datetime.date
    today: datetime.date
    customers: tuple[Customer, ...]
    rates: Rates = DEFAULT_RATES

    @classmethod
    def at(cls, today: datetime.date, size: int = 300, seed: int = 7) -> DemoCompany:
        signed_up = customers(size, seed, DEMO_START, REFERENCE_MONTHS, today, LOCAL_CURRENCIES)
        return cls(seed, size, DEMO_START, today, tuple(signed_up))

    @property
    def currencies(self) -> list[str]:
        return sorted({customer.currency for customer in self.customers})

    def periods(self) -> Iterator[PeriodRow]:
        return customer_periods(self.customers, self.seed, self.today, self.rates)


Step = Callable[[AsyncEngine, DemoCompany, Progress], Awaitable[str]]


async def load_subscriptions(engine: AsyncEngine, company: DemoCompany, progress: Progress) -> str:
    """The subscription periods (source "demo"); a later day replaces the histories it extends."""
    result = await load_periods(
        engine,
        company.periods(),
        filename="demo",
        sha256=f"demo-{company.seed}-{company.size}-{company.today}",
        source=SOURCE,
        progress=progress,
    )
    updated = plural(result.changed_customers, "customer")
    return f"subscriptions: {result.rows} periods, {updated} updated"


ATTRIBUTES = (
    AttributeDefinition("industry", "Industry", AttributeType.STRING, "csv", "The market served."),
    AttributeDefinition("seats", "Seats", AttributeType.NUMBER, "csv", "People in the team."),
    AttributeDefinition(
        "self_serve", "Self-serve", AttributeType.BOOLEAN, "csv", "Signed up without sales."
    ),
    AttributeDefinition(
        "onboarded_on", "Onboarded on", AttributeType.DATE, "csv", "Onboarding call done."
    ),
)


def _attribute_lines(company: DemoCompany) -> Iterator[str]:
    yield ",".join(("customer", *(definition.key for definition in ATTRIBUTES))) + "\n"
    for c in company.customers:
        values = (c.id, c.industry, str(c.seats), str(c.self_serve).lower(), str(c.onboarded_on))
        yield ",".join(values) + "\n"


async def _define_attributes(engine: AsyncEngine) -> None:
    defined = {d.key: d for d in await attribute_store.list_definitions(engine)}
    for definition in ATTRIBUTES:
        found = defined.get(definition.key)
        if found is None:
            await attribute_store.create(engine, definition)
        elif found.type is not definition.type:
            raise UserError(
                f"attribute {definition.key!r} is already defined as {found.type.value}; "
                f"the demo defines it as {definition.type.value}"
            )


async def load_attributes(engine: AsyncEngine, company: DemoCompany, progress: Progress) -> str:
    """Every customer's industry, seats, self-serve flag and onboarding day."""
    await _define_attributes(engine)
    rows, _ = await attribute_store.import_csv(
        engine, _attribute_lines(company), "demo attributes", lambda line: progress("attributes", 1)
    )
    keys = ", ".join(definition.key for definition in ATTRIBUTES)
    return f"attributes: {keys} on {plural(rows, 'customer')}"


SEGMENTS: Sequence[tuple[str, str, dict[str, Any]]] = (
    ("Europe", "Customers in Europe.", {"field": "region", "values": ["Europe"]}),
    (
        "Small teams",
        "Fewer than 10 seats.",
        {"field": "attr.seats", "op": "LT", "values": ["10"]},
    ),
    (
        "Large teams",
        "10 seats or more.",
        {"field": "attr.seats", "op": "GTE", "values": ["10"]},
    ),
    (
        "Yearly SaaS",
        "SaaS customers who have paid for a yearly plan.",
        {
            "and": [
                {"field": "plan_interval", "values": ["year"]},
                {"field": "attr.industry", "values": ["saas"]},
            ]
        },
    ),
)


async def load_segments(engine: AsyncEngine, company: DemoCompany, progress: Progress) -> str:
    """The saved segments (on a fresh database their ids are 1, 2, ... in this order)."""
    cube = await MetricsEngine(engine).current_cube()
    saved = {s.name for s in await segment_store.list_segments(engine)}
    for name, description, definition in SEGMENTS:
        if name not in saved:
            await segment_store.create(engine, cube, name, description, definition)
    progress("segments", len(SEGMENTS))
    listed = sorted(await segment_store.list_segments(engine), key=lambda s: s.id)
    names = {name for name, _, _ in SEGMENTS}
    return "segments: " + ", ".join(f"{s.id} {s.name}" for s in listed if s.name in names)


STEPS: tuple[Step, ...] = (load_subscriptions, load_attributes, load_segments, load_usage)


@dataclass(frozen=True)
class DemoResult:
    company: DemoCompany
    lines: tuple[str, ...]  # one per step

    @property
    def summary(self) -> str:
        company = self.company
        return (
            f"demo company: {company.start}..{company.today}, "
            f"{plural(len(company.customers), 'customer')} billed in "
            f"{', '.join(company.currencies)}"
        )


def _noop(_stage: str, _count: int) -> None:
    """No progress display."""


async def load_demo(
    engine: AsyncEngine,
    customers: int = 300,
    seed: int = 7,
    today: datetime.date | None = None,
    progress: Progress = _noop,
    steps: Sequence[Step] = STEPS,
) -> DemoResult:
    """Load the demo company as it stands at the end of `today` (default: today, UTC).

    Loading the same company on the same day again changes nothing; a later day extends it."""
    day = today or datetime.datetime.now(datetime.UTC).date()
    company = DemoCompany.at(day, customers, seed)
    lines = [await step(engine, company, progress) for step in steps]
    return DemoResult(company, tuple(lines))
