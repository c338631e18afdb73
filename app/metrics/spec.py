"""The frozen query specs: the boundary between the API layers and the metrics compiler."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date


class Interval(enum.Enum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


class FilterOp(enum.Enum):
    EQ = "EQ"
    NEQ = "NEQ"
    IN = "IN"
    NOT_IN = "NOT_IN"
    GT = "GT"
    GTE = "GTE"
    LT = "LT"
    LTE = "LTE"
    CONTAINS = "CONTAINS"
    IS_NULL = "IS_NULL"
    IS_NOT_NULL = "IS_NOT_NULL"


@dataclass(frozen=True)
class Filter:
    field: str
    op: FilterOp = FilterOp.EQ
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class AllOf:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


# A segment definition: a boolean tree whose leaves are conditions (filters) on customer
# fields, attributes and metric dimensions.
Node = Filter | AllOf | AnyOf | Not


@dataclass(frozen=True)
class SegmentSpec:
    """A named segment definition, as a compare branch."""

    name: str
    definition: Node


@dataclass(frozen=True)
class QuerySpec:
    """What to slice and how: breakdown dimensions and filters (names from the metric's cube),
    the customer universe (`segment`) and segments to compare (one breakdown branch each)."""

    dimensions: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    segment: Node | None = None
    compare: tuple[SegmentSpec, ...] = ()
    currency: str | None = None  # report currency; None = the base currency
    fix_fx: bool = False  # convert at the rate of the first point's date
    # the segments (app.metrics.universe.members_key) whose member ids the statement's executor
    # passes as parameters; set by the metrics service, not by a caller
    listed: frozenset[str] = frozenset()

    @property
    def groups(self) -> tuple[str, ...]:
        """The breakdown's key parts: the compared segment (if any), then the dimensions."""
        return ("segment",) * bool(self.compare) + self.dimensions


@dataclass(frozen=True)
class SeriesRequest:
    """A series over [start, end] at `interval`; `fields` are the Point fields to compute
    (empty means all)."""

    start: date
    end: date
    interval: Interval = Interval.MONTH
    spec: QuerySpec = field(default_factory=QuerySpec)
    fields: frozenset[str] = frozenset()
