"""Resolvers of usage metrics: definitions, values, series, ranking, events in."""

from __future__ import annotations

import datetime
from collections.abc import Sequence

from app.customers import CustomerRow
from app.ids import parse_id
from app.metrics.spec import Interval, QuerySpec
from app.metrics.usage import UsageMetric, Window
from app.usage import definitions
from app.usage.definitions import MetricInput, MetricUpdate
from app.usage.ingest import IngestResult, ingest
from app.usage.service import (
    UsageBreakdown,
    UsagePoint,
    UsageRank,
    UsageSeriesRequest,
    UsageService,
    UsageValue,
)
from resolvers.context import Context


def metric_id(text: str) -> int:
    return parse_id(text, "usage metric")


def service(context: Context) -> UsageService:
    return UsageService(context.metrics)


async def all_metrics(context: Context, include_deleted: bool) -> list[UsageMetric]:
    return await definitions.list_metrics(context.metrics.engine, include_deleted)


async def metric(context: Context, ident: str) -> UsageMetric:
    return await definitions.get(context.metrics.engine, metric_id(ident))


async def create(context: Context, given: MetricInput) -> UsageMetric:
    return await definitions.create(context.metrics.engine, given)


async def update(context: Context, ident: str, change: MetricUpdate) -> UsageMetric:
    return await definitions.update(context.metrics.engine, metric_id(ident), change)


async def delete(context: Context, ident: str) -> UsageMetric:
    return await definitions.delete(context.metrics.engine, metric_id(ident))


async def value(context: Context, ident: str, customer_id: str, window: Window) -> UsageValue:
    customer = parse_id(customer_id, "customer")
    return await service(context).value(metric_id(ident), customer, window)


def series_request(
    ident: str, start: datetime.date, end: datetime.date, interval: Interval, spec: QuerySpec
) -> UsageSeriesRequest:
    return UsageSeriesRequest(metric_id(ident), start, end, interval, spec)


async def points(context: Context, request: UsageSeriesRequest) -> tuple[UsagePoint, ...]:
    return await context.once(("usage_points", request), lambda: service(context).points(request))


async def breakdown(context: Context, request: UsageSeriesRequest) -> tuple[UsageBreakdown, ...]:
    return await context.once(
        ("usage_breakdown", request), lambda: service(context).breakdown(request)
    )


async def top(
    context: Context,
    ident: str,
    start: datetime.date,
    end: datetime.date,
    first: int,
    within: QuerySpec,
) -> tuple[UsageRank, ...]:
    return await service(context).top(metric_id(ident), start, end, first, within)


async def ranked_customers(
    context: Context, ranks: Sequence[UsageRank]
) -> list[CustomerRow | None]:
    """The customers of a ranking, through the customer loader (one statement per page)."""
    found: list[CustomerRow | None] = await context.loaders.customer.load_many(
        [rank.customer_id for rank in ranks]
    )
    return found


async def customer_usage(
    context: Context, customer_id: int, ident: str, window: Window
) -> float | None:
    """One customer's value; the customers of a page share one statement per metric read."""
    found: float | None = await context.loaders.usage(metric_id(ident), window).load(customer_id)
    return found


async def ingest_events(context: Context, raw: Sequence[object], source: str) -> IngestResult:
    """The events stored; `ingest` checks the source's name (app.usage.ingest.source_name)."""
    return await ingest(context.metrics.engine, raw, source)
