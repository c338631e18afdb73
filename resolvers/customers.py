"""Resolvers of customers: the list, one customer, and per-customer facts via dataloaders."""

from __future__ import annotations

import datetime

from app import customers
from app.customers import (
    Activity,
    CustomerPage,
    CustomerQuery,
    CustomerRow,
    CustomerSort,
    CustomerState,
    SubscriptionFacts,
)
from app.errors import NotFound
from app.metrics.spec import QuerySpec
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
) -> CustomerPage:
    today = _today()
    cube = await context.metrics.current_cube()
    where = tuple(customers.spec_conditions(cube, spec, today))
    query = CustomerQuery(search, first, after, sort, today, where)
    return await customers.list_customers(context.metrics.engine, query)


async def customer(context: Context, ident: int) -> CustomerRow:
    found: CustomerRow | None = await context.loaders.customer.load(ident)
    if found is None:
        raise NotFound(f"no customer with id {ident}")
    return found


async def state(context: Context, ident: int) -> CustomerState:
    result: CustomerState = await context.loaders.state.load(ident)
    return result


async def subscriptions(context: Context, ident: int) -> list[SubscriptionFacts]:
    result: list[SubscriptionFacts] = await context.loaders.subscriptions.load(ident)
    return result


async def activities(context: Context, ident: int) -> list[Activity]:
    result: list[Activity] = await context.loaders.activities.load(ident)
    return result
