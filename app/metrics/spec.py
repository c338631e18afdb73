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
class QuerySpec:
    """What to slice and how: breakdown dimensions and filters (names from the metric's cube)."""

    dimensions: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    currency: str | None = None  # report currency; None = the base currency
    fix_fx: bool = False  # convert at the rate of the first point's date


@dataclass(frozen=True)
class SeriesRequest:
    """A series over [start, end] at `interval`; `fields` are the Point fields to compute
    (empty means all)."""

    start: date
    end: date
    interval: Interval = Interval.MONTH
    spec: QuerySpec = field(default_factory=QuerySpec)
    fields: frozenset[str] = frozenset()
