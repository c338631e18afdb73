"""Resolvers of customers: the list, one customer, and per-customer facts via dataloaders."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any

from aiodataloader import DataLoader

from app import customers
from app.attributes import Value
from app.customers import (
    Activity,
    CustomerPage,
    CustomerQuery,
    CustomerRow,
    CustomerSort,
    CustomerState,
    MrrAt,
    SubscriptionFacts,
)
from app.errors import NotFound
from app.metrics.spec import Interval, QuerySpec
from resolvers.context import Context


def _today() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()


async def customer_page(
    context: Context,
    search: str | None,
    first: int,
    after: str | None,
    sort: CustomerSort,
    spec: QuerySpec,
    count: bool = True,
) -> CustomerPage:
    today = _today()
    cube = await context.metrics.current_cube()
    where = tuple(customers.spec_conditions(cube, spec, today))
    query = CustomerQuery(search, first, after, sort, today, where, count)
    return await customers.list_customers(context.metrics.engine, query)


async def customer(context: Context, ident: int) -> CustomerRow:
    found: CustomerRow | None = await context.loaders.customer.load(ident)
    if found is None:
        raise NotFound(f"no customer with id {ident}")
    return found


# The GraphQL fields of Customer that each loader serves.
STATE_FIELDS = frozenset({"mrr", "arr", "currency", "status", "churnedAt", "churnedMrr"})


@dataclass(frozen=True)
class Facts:
    """What the loaders fetched for one customer (None: not selected, so not fetched)."""

    state: CustomerState | None = None
    subscriptions: list[SubscriptionFacts] | None = None
    activities: list[Activity] | None = None
    attributes: dict[str, Value] | None = None


async def facts(context: Context, ids: Sequence[int], wanted: set[str]) -> list[Facts]:
    """The selected facts of a page of customers: one batch per loader, all at once, so each
    field then resolves without awaiting (a constant number of statements per page)."""
    loaders = context.loaders

    def load(loader: DataLoader[int, Any], needed: bool) -> Awaitable[list[Any]]:
        if needed:
            return loader.load_many(list(ids))
        return asyncio.sleep(0, [None] * len(ids))

    parts = await asyncio.gather(
        load(loaders.state, bool(wanted & STATE_FIELDS)),
        load(loaders.subscriptions, "subscriptions" in wanted),
        load(loaders.activities, "activities" in wanted),
        load(loaders.attributes, "attributes" in wanted),
    )
    return [Facts(*found) for found in zip(*parts, strict=True)]


async def mrr_series(
    context: Context, ident: int, start: datetime.date, end: datetime.date, interval: Interval
) -> list[MrrAt]:
    """One customer's MRR series; the customers of a page share one statement per range."""
    request = customers.MrrSeriesRequest(start, end, interval)
    found: list[MrrAt] = await context.loaders.mrr_series(request).load(ident)
    return found
