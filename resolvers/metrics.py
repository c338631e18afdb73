"""Resolvers of the metric fields. Each turns its arguments into a spec and calls the service."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import fields
from datetime import UTC, date, datetime

from app.errors import InvalidQuery
from app.metrics.catalog import MetricInfo
from app.metrics.churn import ChurnPage, ChurnRequest, Cursor
from app.metrics.cohorts import Cohort, CohortRequest
from app.metrics.coverage import DataRange
from app.metrics.points import Point, Summary, summarize
from app.metrics.service import Breakdown
from app.metrics.spec import Filter, FilterOp, Interval, QuerySpec, SeriesRequest
from app.metrics.trials import Trials, TrialsRequest
from app.metrics.waterfall import Waterfall, period_of
from app.metrics.waterfall import waterfall as build_waterfall
from resolvers.context import Context

POINT_FIELDS = {
    "".join(part.title() if i else part for i, part in enumerate(f.name.split("_"))): f.name
    for f in fields(Point)
}
SUMMARY_FIELDS = tuple(
    name for name, attr in POINT_FIELDS.items() if attr not in {"date", "end_date"}
)


def to_spec(
    dimensions: Iterable[str],
    filters: Iterable[tuple[str, FilterOp, Sequence[str]]],
    currency: str | None = None,
    fix_fx: bool = False,
) -> QuerySpec:
    return QuerySpec(
        dimensions=tuple(dimensions),
        filters=tuple(Filter(name, op, tuple(values)) for name, op, values in filters),
        currency=None if currency is None else currency.upper(),  # "" is refused, not the base
        fix_fx=fix_fx,
    )


def point_attributes(graphql_names: Iterable[str]) -> frozenset[str]:
    return frozenset(POINT_FIELDS[name] for name in graphql_names if name in POINT_FIELDS)


def summary_attribute(field: str) -> str:
    if field not in SUMMARY_FIELDS:
        raise InvalidQuery([f"unknown summary field {field!r}; valid: {', '.join(SUMMARY_FIELDS)}"])
    return POINT_FIELDS[field]


async def series_request(
    context: Context,
    start: date,
    end: date,
    interval: Interval,
    spec: QuerySpec,
    wanted: Iterable[str],
) -> SeriesRequest:
    request = SeriesRequest(start, end, interval, spec, point_attributes(wanted))
    await context.metrics.validate(request)
    return request


async def points(context: Context, request: SeriesRequest) -> tuple[Point, ...]:
    return await context.once(("points", request), lambda: context.metrics.series(request))


async def breakdown(
    context: Context, request: SeriesRequest, top: int | None = None
) -> tuple[Breakdown, ...]:
    return await context.once(
        ("breakdown", request, top), lambda: context.metrics.breakdown(request, top)
    )


async def waterfall(context: Context, request: SeriesRequest, day: date | None) -> Waterfall:
    return build_waterfall(period_of(await points(context, request), day))


async def data_range(context: Context) -> DataRange:
    return await context.metrics.data_range(datetime.now(UTC).date())


def points_summary(points: Sequence[Point], field: str) -> Summary:
    """Summary of the Point field named `field` (GraphQL name) over the last two points."""
    return summarize(points, summary_attribute(field))


async def series_summary(context: Context, request: SeriesRequest, field: str) -> Summary:
    attribute = summary_attribute(field)
    return summarize(await points(context, request), attribute)


async def snapshot(context: Context, at: date, spec: QuerySpec, wanted: Iterable[str]) -> Point:
    return await context.metrics.snapshot(at, spec, point_attributes(wanted))


async def available_metrics(context: Context) -> tuple[MetricInfo, ...]:
    return await context.metrics.available_metrics()


async def cohorts(context: Context, start: date, end: date, spec: QuerySpec) -> tuple[Cohort, ...]:
    return await context.metrics.cohorts(CohortRequest(start, end, spec))


async def trials(
    context: Context, start: date, end: date, interval: Interval, spec: QuerySpec
) -> Trials:
    return await context.metrics.trials(TrialsRequest(start, end, interval, spec))


async def churn_page(
    context: Context,
    start: date,
    end: date,
    spec: QuerySpec,
    kinds: tuple[str, ...],
    first: int,
    after: str | None,
) -> ChurnPage:
    cursor = Cursor.decode(after) if after else None
    request = ChurnRequest(start, end, spec, kinds, first, cursor)
    return await context.metrics.churn(request)
