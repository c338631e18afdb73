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

strawberry.enum(Interval, name="Interval")
strawberry.enum(FilterOp, name="FilterOp")
strawberry.enum(CustomerSort, name="CustomerSort")
strawberry.enum(
    AttributeType, name="AttributeType", description="How values are stored and compared."
)

strawberry.enum(SourceKind, name="SourceKind", description="A billing system Tidemill connects.")
strawberry.enum(EventStatus, name="EventStatus", description="Where an inbox event stands.")

__all__ = ["AttributeType", "CustomerSort", "EventStatus", "FilterOp", "Interval", "SourceKind"]
