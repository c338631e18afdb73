"""GraphQL types of usage metrics (METRICS.md 9): events in, definitions, values."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry.scalars import JSON

from app.metrics.usage import PropertyFilter, UsageMetric, Window
from app.usage.definitions import MetricInput, MetricUpdate
from app.usage.events import Rejected
from app.usage.ingest import IngestResult
from app.usage.service import UsageBreakdown as UsageBreakdownResult
from app.usage.service import UsagePoint as UsagePointResult
from app.usage.service import UsageRank as UsageRankResult
from app.usage.service import UsageSeriesRequest
from app.usage.service import UsageValue as UsageValueResult
from resolvers import usage as resolve
from resolvers.context import Context
from schema.enums import FilterOp, Interval, UsageAggregation, UsageQueryType, UsageValueType
from schema.fields import field

if TYPE_CHECKING:  # schema.types imports this module
    from schema.types import Customer

Info = strawberry.Info[Context, None]


@strawberry.input(description="A condition on an event property: `property op values`.")
class UsageFilterInput:
    property: str
    op: FilterOp = FilterOp.EQ
    values: list[str] = strawberry.field(default_factory=list)

    def to_filter(self) -> PropertyFilter:
        return PropertyFilter(self.property, self.op, tuple(self.values))


@strawberry.type(description="A condition on an event property.")
class UsageFilter:
    property: str
    op: FilterOp
    values: list[str]


def _filters(items: list[UsageFilterInput] | None) -> tuple[PropertyFilter, ...] | None:
    return None if items is None else tuple(item.to_filter() for item in items)


@strawberry.input(description="A usage metric definition.")
class UsageMetricInput:
    name: str = strawberry.field(description="An identifier (COMPOSITE expressions name it).")
    description: str = ""
    event_name: str | None = strawberry.field(default=None, description="Not for COMPOSITE.")
    aggregation: UsageAggregation | None = strawberry.field(
        default=None, description="Not for COMPOSITE; immutable."
    )
    property: str | None = strawberry.field(
        default=None, description="The property aggregated (COUNT: optional)."
    )
    value_type: UsageValueType = strawberry.field(
        default=UsageValueType.FLOAT, description="Immutable."
    )
    filters: list[UsageFilterInput] = strawberry.field(default_factory=list)
    query_type: UsageQueryType = UsageQueryType.SIMPLE
    expression: str | None = strawberry.field(
        default=None,
        description="COMPOSITE only: arithmetic over other metrics, e.g. `errors / calls`.",
    )

    def to_input(self) -> MetricInput:
        return MetricInput(
            name=self.name,
            event_name=self.event_name,
            aggregation=self.aggregation,
            property=self.property,
            value_type=self.value_type,
            filters=_filters(self.filters) or (),
            query_type=self.query_type,
            expression=self.expression,
            description=self.description,
        )


@strawberry.input(
    description="The fields to change (omitted: kept). aggregation and valueType are "
    "immutable: giving another value is refused."
)
class UsageMetricUpdateInput:
    name: str | None = None
    description: str | None = None
    event_name: str | None = None
    aggregation: UsageAggregation | None = None
    property: str | None = None
    value_type: UsageValueType | None = None
    filters: list[UsageFilterInput] | None = None
    query_type: UsageQueryType | None = None
    expression: str | None = None

    def to_update(self) -> MetricUpdate:
        return MetricUpdate(
            name=self.name,
            description=self.description,
            event_name=self.event_name,
            property=self.property,
            filters=_filters(self.filters),
            query_type=self.query_type,
            expression=self.expression,
            aggregation=self.aggregation,
            value_type=self.value_type,
        )


@strawberry.type(description="A usage metric definition (deletedAt set: soft-deleted).")
class UsageMetricType:
    id: strawberry.ID
    name: str
    description: str
    event_name: str | None
    aggregation: UsageAggregation | None
    property: str | None
    value_type: UsageValueType
    filters: list[UsageFilter]
    query_type: UsageQueryType
    expression: str | None
    created_at: datetime.datetime
    updated_at: datetime.datetime
    deleted_at: datetime.datetime | None

    @classmethod
    def of(cls, metric: UsageMetric) -> UsageMetricType:
        filters = [
            UsageFilter(property=f.property, op=f.op, values=list(f.values)) for f in metric.filters
        ]
        return cls(
            id=strawberry.ID(str(metric.id)),
            name=metric.name,
            description=metric.description,
            event_name=metric.event_name,
            aggregation=metric.aggregation,
            property=metric.property,
            value_type=metric.value_type,
            filters=filters,
            query_type=metric.query_type,
            expression=metric.expression,
            created_at=metric.created_at,
            updated_at=metric.updated_at,
            deleted_at=metric.deleted_at,
        )


def _utc(moment: datetime.datetime | None) -> datetime.datetime | None:
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=datetime.UTC)


@strawberry.input(description="A half-open range of time [from, to); omitted ends are open.")
class TimeframeInput:
    from_: datetime.datetime | None = strawberry.field(
        default=None, name="from", description="Included. Without an offset: UTC."
    )
    to: datetime.datetime | None = strawberry.field(
        default=None, description="Excluded. Without an offset: UTC."
    )

    def to_window(self) -> Window:
        return Window(_utc(self.from_), _utc(self.to))


def window_of(timeframe: TimeframeInput | None) -> Window:
    return Window() if timeframe is None else timeframe.to_window()


@strawberry.type(description="[from, to): null ends are open.")
class Timeframe:
    from_: datetime.datetime | None = strawberry.field(name="from")
    to: datetime.datetime | None


@strawberry.type(description="A usage metric's value for one customer over a timeframe.")
class UsageValue:
    id: strawberry.ID = strawberry.field(description="The metric's id.")
    name: str
    customer_id: strawberry.ID
    value: float | None = strawberry.field(
        description="Null: no value (MIN, MAX, AVG, LATEST of no events; a zero denominator)."
    )
    query_type: UsageQueryType
    timeframe: Timeframe

    @classmethod
    def of(cls, found: UsageValueResult) -> UsageValue:
        window = found.window
        return cls(
            id=strawberry.ID(str(found.metric.id)),
            name=found.metric.name,
            customer_id=strawberry.ID(str(found.customer_id)),
            value=found.value,
            query_type=found.metric.query_type,
            timeframe=Timeframe(from_=window.start, to=window.end),
        )


@strawberry.type(description="A usage metric's value over one period.")
class UsagePoint:
    date: datetime.date
    end_date: datetime.date
    value: float | None


@strawberry.type(description="One value combination of the requested dimensions.")
class UsageBreakdown:
    key: list[str]
    label: str
    points: list[UsagePoint]

    @classmethod
    def of(cls, found: UsageBreakdownResult) -> UsageBreakdown:
        return cls(key=list(found.key), label=found.label, points=[_point(p) for p in found.points])


def _point(found: UsagePointResult) -> UsagePoint:
    return UsagePoint(date=found.date, end_date=found.end_date, value=found.value)


@strawberry.type(description="A usage metric per period of [start, end] (days, UTC).")
class UsageSeries:
    start: datetime.date
    end: datetime.date
    interval: Interval
    request: strawberry.Private[UsageSeriesRequest]

    @field(description="The total over the spec's universe and filters.")
    async def points(self, info: Info) -> list[UsagePoint]:
        return [_point(p) for p in await resolve.points(info.context, self.request)]

    @field(description="One entry per value combination of spec.dimensions (and segment).")
    async def breakdown(self, info: Info) -> list[UsageBreakdown]:
        found = await resolve.breakdown(info.context, self.request)
        return [UsageBreakdown.of(entry) for entry in found]


@strawberry.type(description="A customer's rank by a usage metric.")
class UsageRank:
    customer_id: strawberry.ID
    value: float | None
    customer: Annotated[Customer, strawberry.lazy("schema.types")] | None = strawberry.field(
        default=None,
        description="The customer (the customers of a page are read in one statement per "
        "loader); null only if its row is gone.",
    )

    @classmethod
    def of(cls, found: UsageRankResult, customer: Customer | None = None) -> UsageRank:
        return cls(
            customer_id=strawberry.ID(str(found.customer_id)), value=found.value, customer=customer
        )


@strawberry.input(description="A usage event: {id, customer, name, timestamp, properties}.")
class UsageEventInput:
    id: str = strawberry.field(description="Unique per source: a repeated id is a duplicate.")
    customer: str = strawberry.field(description="The customer's external id or Tidemill id.")
    name: str
    timestamp: str = strawberry.field(description="ISO 8601; without an offset: UTC.")
    properties: JSON | None = None
    product: str | None = None

    def to_raw(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "customer": self.customer,
            "name": self.name,
            "timestamp": self.timestamp,
            "properties": self.properties,
            "product": self.product,
        }


@strawberry.type(description="An event that was not stored, and why.")
class RejectedEvent:
    index: int = strawberry.field(description="Its position in the batch (0-based).")
    id: str | None
    reason: str

    @classmethod
    def of(cls, found: Rejected) -> RejectedEvent:
        return cls(index=found.index, id=found.id, reason=found.reason)


@strawberry.type(description="What became of a batch of events.")
class IngestEvents:
    accepted: int = strawberry.field(description="Stored now.")
    duplicates: int = strawberry.field(description="Ids already stored (or repeated): ignored.")
    rejected: int
    errors: list[RejectedEvent] = strawberry.field(description="One per rejected event.")

    @classmethod
    def of(cls, found: IngestResult) -> IngestEvents:
        return cls(
            accepted=found.accepted,
            duplicates=found.duplicates,
            rejected=len(found.rejected),
            errors=[RejectedEvent.of(item) for item in found.rejected],
        )
