"""The root Query and the assembled schema."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import SchemaExtension
from strawberry.schema.config import BatchingConfig, StrawberryConfig

from app.ids import parse_id
from app.metrics.catalog import MetricInfo
from app.metrics.churn import ChurnPage as ChurnPageResult
from app.metrics.cohorts import Cohort as CohortResult
from app.metrics.coverage import DataRange as DataRangeResult
from app.metrics.mrr import KINDS
from app.metrics.points import Point as PointResult
from app.metrics.spec import QuerySpec
from app.metrics.trials import Trials as TrialsResult
from app.security.access import Access
from resolvers import access as resolve_access
from resolvers import attributes as resolve_attributes
from resolvers import customers as resolve_customers
from resolvers import metrics as resolve
from resolvers import segments as resolve_segments
from resolvers import sources as resolve_sources
from resolvers import usage as resolve_usage
from resolvers.context import Context
from schema.attributes import Attribute
from schema.enums import CustomerSort, EventStatus, Interval
from schema.errors import ErrorCodes
from schema.execution import PlainExecutor
from schema.fields import field
from schema.mutation import Mutation
from schema.plans import QueryPlans
from schema.scalars import SCALARS
from schema.segments import Segment, SegmentNodeInput, SegmentValidation
from schema.selection import nested_names, selected_names, wanted_point_fields
from schema.sources import Source, SourceEvent
from schema.transactions import AtomicMutations
from schema.types import (
    ChurnPage,
    ChurnReport,
    Cohort,
    Customer,
    CustomerConnection,
    CustomerEdge,
    DataRange,
    Metric,
    PageInfo,
    Point,
    QuerySpecInput,
    Series,
    Trials,
    Viewer,
    customer_nodes,
)
from schema.usage import (
    TimeframeInput,
    UsageMetricType,
    UsageRank,
    UsageSeries,
    UsageValue,
    window_of,
)

Info = strawberry.Info[Context, None]


async def _spec(info: Info, spec: QuerySpecInput | None) -> QuerySpec:
    if spec is None:
        return QuerySpec()
    return await resolve_segments.with_segments(
        info.context, spec.to_spec(), spec.segment, spec.compare_segments
    )


@strawberry.type
class Query:
    @field(
        description="Discovery: metric families with their dimensions and filters.",
        graphql_type=list[Metric],
    )
    async def metrics(self, info: Info) -> tuple[MetricInfo, ...]:
        return await resolve.available_metrics(info.context)

    @field(description="A series over [start, end], one point per calendar period.")
    async def series(
        self,
        info: Info,
        start: datetime.date,
        end: datetime.date,
        interval: Interval = Interval.MONTH,
        spec: QuerySpecInput | None = None,
    ) -> Series:
        request = await resolve.series_request(
            info.context, start, end, interval, await _spec(info, spec), wanted_point_fields(info)
        )
        currency = request.spec.currency or info.context.metrics.base_currency
        return Series(start=start, end=end, interval=interval, currency=currency, request=request)

    @field(
        description="Retention cohorts by month of first `new` (METRICS.md 5).",
        graphql_type=list[Cohort],
    )
    async def cohorts(
        self,
        info: Info,
        start: datetime.date,
        end: datetime.date,
        spec: QuerySpecInput | None = None,
    ) -> tuple[CohortResult, ...]:
        return await resolve.cohorts(info.context, start, end, await _spec(info, spec))

    @field(description="Trials started, converted and expired (METRICS.md 6).", graphql_type=Trials)
    async def trials(
        self,
        info: Info,
        start: datetime.date,
        end: datetime.date,
        interval: Interval = Interval.MONTH,
        spec: QuerySpecInput | None = None,
    ) -> TrialsResult:
        spec_ = await _spec(info, spec)
        return await resolve.trials(info.context, start, end, interval, spec_)

    @field(description="Churn detail: churned customers and revenue-churn events.")
    async def churn(
        self,
        info: Info,
        start: datetime.date,
        end: datetime.date,
        spec: QuerySpecInput | None = None,
    ) -> ChurnReport:
        query_spec = await _spec(info, spec)
        currency = query_spec.currency or info.context.metrics.base_currency
        return ChurnReport(start=start, end=end, currency=currency, spec=query_spec)

    @field(
        description="The movements of some kinds in [start, end], with their customers (what "
        "a chart's bar is made of), paginated; totals over every page.",
        graphql_type=ChurnPage,
    )
    async def movements(
        self,
        info: Info,
        start: datetime.date,
        end: datetime.date,
        kinds: Annotated[
            list[str] | None, strawberry.argument(description="Default: every kind.")
        ] = None,
        spec: QuerySpecInput | None = None,
        first: int = 50,
        after: str | None = None,
    ) -> ChurnPageResult:
        query_spec = await _spec(info, spec)
        return await resolve.churn_page(
            info.context, start, end, query_spec, tuple(kinds or KINDS), first, after
        )

    @field(description="The days the data covers, and the server's today.", graphql_type=DataRange)
    async def data_range(self, info: Info) -> DataRangeResult:
        return await resolve.data_range(info.context)

    @field(
        description="Who is asking (the API key or keyless access) and what it may do.",
        graphql_type=Viewer,
    )
    def viewer(self, info: Info) -> Access:
        return resolve_access.viewer(info.context)

    @field(description="Customers: search, filter, sort, cursor-paginated.")
    async def customers(
        self,
        info: Info,
        search: str | None = None,
        first: int = 50,
        after: str | None = None,
        sort: CustomerSort = CustomerSort.NAME,
        spec: QuerySpecInput | None = None,
    ) -> CustomerConnection:
        counted = "totalCount" in nested_names(info)  # counting every match is O(matches)
        page = await resolve_customers.customer_page(
            info.context, search, first, after, sort, await _spec(info, spec), counted
        )
        nodes = await customer_nodes(info, page.customers, nested_names(info, "edges", "node"))
        edges = [
            CustomerEdge(node=node, cursor=cursor)
            for node, cursor in zip(nodes, page.cursors, strict=True)
        ]
        info_ = PageInfo(
            end_cursor=page.cursors[-1] if page.cursors else None, has_next_page=page.has_next_page
        )
        return CustomerConnection(total_count=page.total_count, edges=edges, page_info=info_)

    @field(description="One customer by id.")
    async def customer(self, info: Info, id: strawberry.ID) -> Customer:
        row = await resolve_customers.customer(info.context, parse_id(id, "customer"))
        [node] = await customer_nodes(info, [row], selected_names(info))
        return node

    @field(description="The one-day point of day `at` (default: today, UTC).", graphql_type=Point)
    async def snapshot(
        self, info: Info, at: datetime.date | None = None, spec: QuerySpecInput | None = None
    ) -> PointResult:
        day = at or datetime.datetime.now(datetime.UTC).date()
        wanted = selected_names(info)
        return await resolve.snapshot(info.context, day, await _spec(info, spec), wanted)

    @field(description="Attribute definitions (their values slice as attr.<key>).")
    async def attributes(self, info: Info) -> list[Attribute]:
        return [Attribute.of(d) for d in await resolve_attributes.definitions(info.context)]

    @field(description="Observed values of an attribute, most frequent first.")
    async def attribute_values(self, info: Info, key: str, first: int = 100) -> list[str]:
        return await resolve_attributes.distinct_values(info.context, key, first)

    @field(description="Saved segments, by name.")
    async def segments(self, info: Info) -> list[Segment]:
        return [Segment.of(found) for found in await resolve_segments.all_segments(info.context)]

    @field(description="One saved segment.")
    async def segment(self, info: Info, id: strawberry.ID) -> Segment:
        return Segment.of(await resolve_segments.segment(info.context, id))

    @field(
        description="Lint a segment definition without saving it: unknown fields, operators "
        "that do not fit a field's type, values that do not parse."
    )
    async def validate_segment(self, info: Info, definition: SegmentNodeInput) -> SegmentValidation:
        problems = await resolve_segments.problems(info.context, definition.to_json())
        return SegmentValidation(valid=not problems, problems=problems)

    @field(description="Connected billing systems (Stripe), with their inbox counts.")
    async def sources(self, info: Info) -> list[Source]:
        return [Source.of(found) for found in await resolve_sources.all_sources(info.context)]

    @field(description="A source's inbox events, newest first (e.g. status: FAILED).")
    async def source_events(
        self,
        info: Info,
        source_id: strawberry.ID,
        status: EventStatus | None = None,
        first: int = 100,
    ) -> list[SourceEvent]:
        found = await resolve_sources.events(info.context, source_id, status, first)
        return [SourceEvent.of(event) for event in found]

    @field(description="Usage metric definitions (deleted ones only with includeDeleted).")
    async def usage_metrics(
        self, info: Info, include_deleted: bool = False
    ) -> list[UsageMetricType]:
        found = await resolve_usage.all_metrics(info.context, include_deleted)
        return [UsageMetricType.of(metric) for metric in found]

    @field(description="One usage metric, deleted or not.")
    async def usage_metric(self, info: Info, id: strawberry.ID) -> UsageMetricType:
        return UsageMetricType.of(await resolve_usage.metric(info.context, id))

    @field(
        description="A usage metric's value for one customer over [from, to) (default: all time)."
    )
    async def usage_metric_value(
        self,
        info: Info,
        id: strawberry.ID,
        customer_id: strawberry.ID,
        timeframe: TimeframeInput | None = None,
    ) -> UsageValue:
        found = await resolve_usage.value(info.context, id, customer_id, window_of(timeframe))
        return UsageValue.of(found)

    @field(
        description="A usage metric per period of [start, end] (UTC days), sliced by spec: "
        "customer_country, region, plan, customer, attr.<key>, property.<name>; filters, "
        "segment, compareSegments."
    )
    async def usage_series(
        self,
        info: Info,
        id: strawberry.ID,
        start: datetime.date,
        end: datetime.date,
        interval: Interval = Interval.MONTH,
        spec: QuerySpecInput | None = None,
    ) -> UsageSeries:
        request = resolve_usage.series_request(id, start, end, interval, await _spec(info, spec))
        return UsageSeries(start=start, end=end, interval=interval, request=request)

    @field(
        description="Customers ranked by a usage metric over [start, end] (UTC days); `spec` "
        "narrows them by filters and a segment."
    )
    async def usage_top(
        self,
        info: Info,
        id: strawberry.ID,
        start: datetime.date,
        end: datetime.date,
        first: int = 10,
        spec: QuerySpecInput | None = None,
    ) -> list[UsageRank]:
        within = await _spec(info, spec)
        found = await resolve_usage.top(info.context, id, start, end, first, within)
        if "customer" not in selected_names(info):
            return [UsageRank.of(rank) for rank in found]
        rows = await resolve_usage.ranked_customers(info.context, found)
        present = [row for row in rows if row is not None]
        nodes = await customer_nodes(info, present, nested_names(info, "customer"))
        by_id = {int(node.id): node for node in nodes}
        return [UsageRank.of(rank, by_id.get(rank.customer_id)) for rank in found]


class TidemillSchema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        """Errors are shaped and internal ones logged (with the request id) by ErrorCodes."""


def build_schema(
    extensions: Sequence[Callable[[], SchemaExtension]] = (), max_batch: int | None = None
) -> TidemillSchema:
    """The schema; the server adds its security extensions and batch cap (schema/security.py)."""
    batching: BatchingConfig | None = {"max_operations": max_batch} if max_batch else None
    return TidemillSchema(
        query=Query,
        mutation=Mutation,
        extensions=[*extensions, AtomicMutations, ErrorCodes, QueryPlans],
        execution_context_class=PlainExecutor,
        config=StrawberryConfig(scalar_map=SCALARS, batching_config=batching),
    )


schema = build_schema()

__all__ = ["schema"]
