"""The service's enums, registered as GraphQL enums.

`strawberry.enum` marks the class it is given and returns it, so fields and arguments are
annotated with the service's own classes (a name bound to the call's result would be a
variable to mypy, not a type). Import them from here: importing registers them.
"""

from __future__ import annotations

import strawberry

from app.attributes import AttributeType
from app.customers import CustomerSort
from app.ingest.sources import EventStatus, SourceKind
from app.metrics.spec import FilterOp, Interval
from app.metrics.usage import Aggregation as UsageAggregation
from app.metrics.usage import QueryType as UsageQueryType
from app.metrics.usage import ValueType as UsageValueType

strawberry.enum(Interval, name="Interval")
strawberry.enum(FilterOp, name="FilterOp")
strawberry.enum(CustomerSort, name="CustomerSort")
strawberry.enum(
    AttributeType, name="AttributeType", description="How values are stored and compared."
)
strawberry.enum(
    UsageAggregation,
    name="UsageAggregation",
    description="COUNT, SUM, MIN, MAX, AVG of a property; UNIQUE_COUNT: its distinct values; "
    "LATEST: its value in the most recent event.",
)
strawberry.enum(
    UsageQueryType,
    name="UsageQueryType",
    description="SIMPLE: computed from the events; INDEXED: kept per customer and day as events "
    "arrive; COMPOSITE: arithmetic over other metrics.",
)
strawberry.enum(UsageValueType, name="UsageValueType")

strawberry.enum(SourceKind, name="SourceKind", description="A billing system Tidemill connects.")
strawberry.enum(EventStatus, name="EventStatus", description="Where an inbox event stands.")

__all__ = [
    "AttributeType",
    "CustomerSort",
    "EventStatus",
    "FilterOp",
    "Interval",
    "SourceKind",
    "UsageAggregation",
    "UsageQueryType",
    "UsageValueType",
]
