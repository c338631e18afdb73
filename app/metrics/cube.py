"""Cube declarations: the dimensions a metric family accepts, and spec validation against them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.expression import ColumnElement

from app.errors import InvalidQuery, UserError
from app.metrics.spec import Filter, FilterOp, QuerySpec
from app.money import ISO_CURRENCIES


class Level(Enum):
    """Customer-level dimensions select customers; subscription-level ones re-scope their MRR
    (METRICS.md 3, filtered and broken-down views)."""

    CUSTOMER = "customer"
    SUBSCRIPTION = "subscription"


@dataclass(frozen=True)
class Sources:
    """The tables a dimension expression may read; the compiler joins what is used. `rows` is
    the table the query reads movements or ledger changes from (both carry `currency`)."""

    rows: sa.FromClause
    plan: sa.FromClause
    customer: sa.FromClause
    end: sa.ColumnElement[Any]  # the last day the query reads (for time-relative dimensions)

    @property
    def customer_id(self) -> sa.ColumnElement[Any]:
        """The customer's id: the rows' own `customer_id` where they carry one (so no customer
        row is joined to read it), else the customer's."""
        rows: sa.ColumnElement[Any] | None = self.rows.c.get("customer_id")
        return rows if rows is not None else self.customer.c.id


@dataclass(frozen=True)
class Dimension:
    name: str
    description: str
    level: Level
    expression: Callable[[Sources], ColumnElement[Any]]
    needs_plan: bool = False
    kind: str = "string"
    materialized: bool = False  # per-value movements are kept in movement_scope
    reads_customer: bool = False  # the expression reads the customer table
    # ... through tables keyed by the customer's id only (an attribute's values), by
    # `Sources.customer_id`: a query over rows that carry it joins no customer row for it
    keyed_by_customer: bool = False
    parse: Callable[[str], object] = str  # a filter value as the expression's type
    # a value of GT/GTE/LT/LTE, when those compare another type than the others (an event
    # property: numbers in order, text otherwise; `condition` compiles each way)
    parse_ordered: Callable[[str], object] | None = None
    # A filter on this dimension as a condition, when not `filter_clause(expression)` (e.g.
    # attributes: a semi-join on the attribute's index instead of a per-row lookup).
    condition: Callable[[Sources, Filter], ColumnElement[bool]] | None = None
    # A table the expression reads, outer-joined (with its ON clause) by a query that groups
    # by the dimension; filters use `condition` instead.
    join: Callable[[Sources], tuple[sa.FromClause, ColumnElement[bool]]] | None = None

    @property
    def ops(self) -> tuple[FilterOp, ...]:
        """The filter operators that make sense for the dimension's kind."""
        return OPS_BY_KIND[self.kind]


@dataclass(frozen=True)
class Cube:
    name: str
    description: str
    dimensions: tuple[Dimension, ...]

    def dimension(self, name: str) -> Dimension:
        return next(d for d in self.dimensions if d.name == name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)

    def with_dimensions(self, extra: Iterable[Dimension]) -> Cube:
        return Cube(self.name, self.description, (*self.dimensions, *extra))


NO_VALUE_OPS = frozenset({FilterOp.IS_NULL, FilterOp.IS_NOT_NULL})
MULTI_VALUE_OPS = frozenset({FilterOp.IN, FilterOp.NOT_IN})
_ORDERED = (FilterOp.GT, FilterOp.GTE, FilterOp.LT, FilterOp.LTE)
_EQUALITY = (FilterOp.EQ, FilterOp.NEQ, FilterOp.IN, FilterOp.NOT_IN)
_NULLS = (FilterOp.IS_NULL, FilterOp.IS_NOT_NULL)
OPS_BY_KIND: dict[str, tuple[FilterOp, ...]] = {
    "string": (*_EQUALITY, FilterOp.CONTAINS, *_NULLS),
    "number": (*_EQUALITY, *_ORDERED, *_NULLS),
    "date": (*_EQUALITY, *_ORDERED, *_NULLS),
    "boolean": (FilterOp.EQ, FilterOp.NEQ, *_NULLS),
    # a JSON value of an event: compared as text, or as a number by an ordered operator
    "property": (*_EQUALITY, *_ORDERED, FilterOp.CONTAINS, *_NULLS),
}


def filter_problems(cube: Cube, item: Filter, what: str = "filter") -> list[str]:
    """What is wrong with a filter (or segment condition): unknown field, an operator that
    does not fit the field's type, the wrong number of values, a value not of the type."""
    if item.field not in cube.names:
        return [f"unknown {what} field {item.field!r}; valid: {', '.join(cube.names)}"]
    dimension = cube.dimension(item.field)
    if item.op not in dimension.ops:
        accepted = ", ".join(op.value for op in dimension.ops)
        return [
            f"{what} {item.field} ({dimension.kind}) does not take {item.op.value}; "
            f"accepted: {accepted}"
        ]
    if item.op in NO_VALUE_OPS and item.values:
        return [f"{what} {item.field} {item.op.value} takes no values"]
    if item.op in MULTI_VALUE_OPS and not item.values:
        return [f"{what} {item.field} {item.op.value} needs at least one value"]
    if item.op not in NO_VALUE_OPS | MULTI_VALUE_OPS and len(item.values) != 1:
        return [f"{what} {item.field} {item.op.value} needs exactly one value"]
    if item.op is FilterOp.CONTAINS:
        return []
    parse = dimension.parse
    if item.op in _ORDERED and dimension.parse_ordered is not None:
        parse = dimension.parse_ordered
    problems = []
    for value in item.values:
        try:
            parse(value)
        except (ValueError, UserError) as error:
            problems.append(f"{what} {item.field}: {error}")
    return problems


def spec_problems(cube: Cube, spec: QuerySpec) -> list[str]:
    problems = []
    if spec.currency is not None and spec.currency not in ISO_CURRENCIES:
        problems.append(
            f"currency {spec.currency!r} is not an ISO 4217 code (e.g. USD, EUR, GBP); "
            "any currency with FX rates is accepted"
        )
    problems += [
        f"unknown dimension {name!r}; valid: {', '.join(cube.names)}"
        for name in spec.dimensions
        if name not in cube.names
    ]
    if len(set(spec.dimensions)) != len(spec.dimensions):
        problems.append("a dimension is listed twice")
    for item in spec.filters:
        problems.extend(filter_problems(cube, item))
    return problems


def validate(cube: Cube, spec: QuerySpec, extra: Iterable[str] = ()) -> None:
    problems = [*extra, *spec_problems(cube, spec)]
    if problems:
        raise InvalidQuery(problems)


def dimension_condition(
    dimension: Dimension,
    sources: Sources,
    item: Filter,
    expression: ColumnElement[Any] | None = None,
) -> ColumnElement[bool]:
    """A filter on `dimension` as a SQL condition over `sources` (`expression` overrides the
    dimension's own, e.g. with a stored value column)."""
    if dimension.condition is not None and expression is None:
        return dimension.condition(sources, item)
    column = dimension.expression(sources) if expression is None else expression
    return filter_clause(column, item, dimension.parse)


def filter_clause(
    column: ColumnElement[Any], item: Filter, parse: Callable[[str], object] = str
) -> ColumnElement[bool]:
    """A filter as a SQL condition; values are parsed to the dimension's type and always
    bound as parameters."""
    values = [parse(value) for value in item.values]
    first = values[0] if values else ""
    match item.op:
        case FilterOp.EQ:
            return column == first
        case FilterOp.NEQ:
            return column.is_distinct_from(first)
        case FilterOp.IN:
            return column.in_(values)
        case FilterOp.NOT_IN:
            return sa.or_(column.is_(None), column.not_in(values))
        case FilterOp.GT:
            return column > first
        case FilterOp.GTE:
            return column >= first
        case FilterOp.LT:
            return column < first
        case FilterOp.LTE:
            return column <= first
        case FilterOp.CONTAINS:
            return sa.cast(column, sa.Text).icontains(str(first), autoescape=True)
        case FilterOp.IS_NULL:
            return column.is_(None)
        case FilterOp.IS_NOT_NULL:
            return column.is_not(None)
