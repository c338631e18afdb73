"""The customer universe: segment trees and customer-level conditions compiled to SQL.

A segment selects customers (METRICS.md 3: customer-level dimensions just select customers).
A condition on a customer-level dimension, customer field or attribute reads the customer; one
on a subscription-level dimension (plan, plan_interval, ...) means "had MRR in that scope at some
time" (plan = Pro: ever paid for Pro). Trees compile to one boolean expression over `customer`.

A statement tests its rows against a segment in several places (the movements, the opening
stocks, ...). For a segment whose members cost a statement to find (`listable`: an attribute,
the ledger or the customer's MRR), the metrics service finds them once (`listed_members`),
remembered per data version, and passes their ids as an array parameter (`members_key`, named
in `QuerySpec.listed`): the statement keeps the rows whose `customer_id = ANY` of it, which
PostgreSQL tests by hashing the array once per process. A segment of customer fields only, or
of more than MAX_LISTED members, is a semi-join on the `members` subquery in the statement
(docs/benchmarks.md, twenty-first session).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql import visitors
from sqlalchemy.sql.expression import BindParameter, ColumnElement, FromClause, Select

from app.attributes import AttributeType, parse_value
from app.metrics.cube import Cube, Dimension, Level, Sources, dimension_condition, filter_problems
from app.metrics.spec import AllOf, AnyOf, Filter, Node, Not, QuerySpec
from app.tables import customer, movement, mrr_change, plan

MAX_COMPARE = 10
MAX_CONDITIONS = 100
MAX_DEPTH = 10


def customer_mrr(who: FromClause, at: ColumnElement[Any]) -> ColumnElement[Any]:
    """A customer's MRR in cents (own currency) at `at`: the `after` of its last movement."""
    latest = (
        sa.select(movement.c.after)
        .where(movement.c.customer_id == who.c.id, movement.c.day <= at)
        .order_by(movement.c.day.desc())
        .limit(1)
        .correlate(who)
        .scalar_subquery()
    )
    return sa.func.coalesce(latest, 0)


def _typed(kind: AttributeType) -> Any:
    return lambda text: parse_value(kind, text)


def _field(name: str, description: str, column: str, kind: str = "string") -> Dimension:
    return Dimension(
        name,
        description,
        Level.CUSTOMER,
        lambda s: s.customer.c[column],
        kind=kind,
        reads_customer=True,
        parse=_typed(AttributeType(kind)),
    )


# Customer fields a segment may test besides the metric dimensions and `attr.*`.
CUSTOMER_FIELDS = (
    _field("email", "Customer's email", "email"),
    _field("name", "Customer's name", "name"),
    _field("external_id", "Customer's id in its source system", "external_id"),
    _field("source", "Where the customer comes from: csv, stripe, ...", "source"),
    _field(
        "customer_since", "Day of the customer's first `new` movement", "customer_since", "date"
    ),
    Dimension(
        "mrr",
        "Customer's MRR at the end of the query range, major units of its own currency",
        Level.CUSTOMER,
        lambda s: customer_mrr(s.customer, s.end) / sa.literal(100, sa.Numeric),
        kind="number",
        reads_customer=True,
        parse=_typed(AttributeType.NUMBER),
    ),
)


def segment_cube(cube: Cube) -> Cube:
    """The fields a segment condition may name: the cube's dimensions and the customer's."""
    return cube.with_dimensions(d for d in CUSTOMER_FIELDS if d.name not in cube.names)


def customer_condition(
    cube: Cube, item: Filter, end: ColumnElement[Any], who: FromClause = customer
) -> ColumnElement[bool]:
    """One condition as a test of customer `who`."""
    dimension = cube.dimension(item.field)
    if dimension.reads_customer:
        tested = dimension_condition(dimension, Sources(who, plan, who, end), item)
        if dimension.keyed_by_customer:
            # an attribute: the customer's id IN (or NOT IN) its holders' ids, never NULL. Left
            # bare, a condition of an `and` becomes a join with the holders, built once and
            # shared by the parallel workers, instead of a subplan each worker hashes again
            # (at 1M, one statement of a segment's overview 5.8 s to 2.8 s)
            return tested
        # two-valued: a customer whose field is NULL fails the condition, so `not` keeps it
        return sa.func.coalesce(tested, sa.false())
    on_ledger = Sources(rows=mrr_change, plan=plan, customer=who, end=end)
    ledger = sa.select(sa.literal(1)).where(
        mrr_change.c.customer_id == who.c.id,
        dimension_condition(dimension, on_ledger, item),
    )
    if dimension.needs_plan:
        ledger = ledger.outerjoin_from(mrr_change, plan, plan.c.id == mrr_change.c.plan_id)
    return ledger.correlate(who).exists()


def tree_condition(
    cube: Cube, node: Node, end: ColumnElement[Any], who: FromClause = customer
) -> ColumnElement[bool]:
    match node:
        case Filter():
            return customer_condition(cube, node, end, who)
        case AllOf(items):
            return sa.and_(sa.true(), *(tree_condition(cube, i, end, who) for i in items))
        case AnyOf(items):
            return sa.or_(sa.false(), *(tree_condition(cube, i, end, who) for i in items))
        case Not(item):
            return sa.not_(tree_condition(cube, item, end, who))


def members(cube: Cube, node: Node, end: ColumnElement[Any]) -> Select[int]:
    """The ids of the customers in a segment (an uncorrelated subquery)."""
    return (
        sa.select(customer.c.id)
        .where(tree_condition(segment_cube(cube), node, end))
        .correlate(None)
    )


MAX_LISTED = 200_000


def members_key(node: Node) -> str:
    """The name of the execution parameter that holds the ids of a segment's members."""
    return "members_" + hashlib.blake2b(repr(node).encode(), digest_size=8).hexdigest()


def universe(
    cube: Cube, spec: QuerySpec, customer_id: ColumnElement[Any], end: ColumnElement[Any]
) -> list[ColumnElement[bool]]:
    """The spec's segment as a condition on a customer id column (none without a segment): in
    the member ids its executor passes (`spec.listed`), or in a subquery finding them."""
    if spec.segment is None:
        return []
    key = members_key(spec.segment)
    if key in spec.listed:
        return [customer_id == sa.any_(sa.bindparam(key, type_=sa.ARRAY(sa.BigInteger)))]
    return [customer_id.in_(members(cube, spec.segment, end))]


def universes(spec: QuerySpec) -> list[Node]:
    """The segments a statement of `spec` tests customers against: its universe, or each
    compared segment within it."""
    if spec.compare:
        return [branch.segment for branch in branch_specs(spec) if branch.segment is not None]
    return [] if spec.segment is None else [spec.segment]


def listable(cube: Cube, node: Node) -> bool:
    """Whether finding the segment's members costs more than a test of each customer's own
    row: it reads an attribute's holders, the ledger, or each customer's movements (`mrr`)."""
    fields = segment_cube(cube)
    return any(
        (dimension := fields.dimension(item.field)).keyed_by_customer
        or not dimension.reads_customer
        or dimension.name == "mrr"
        for item in _conditions(node)
    )


def members_at(cube: Cube, node: Node, end: date) -> tuple[Select[int], date | None]:
    """The statement finding a segment's members with its conditions read at `end`, and the
    day its answer depends on: `end`, or None when no condition reads it (attributes, plans
    ever paid for, customer fields other than the MRR and the age)."""
    statement = members(cube, node, sa.bindparam("end", end, type_=sa.Date))
    reads = any(
        isinstance(element, BindParameter) and element.key == "end"
        for element in visitors.iterate(statement)
    )
    return statement, end if reads else None


async def listed_members(
    connection: AsyncConnection, statement: Select[int]
) -> Sequence[int] | None:
    """The ids `statement` finds (`members_at`); None when there are more than MAX_LISTED (a
    statement tests them itself)."""
    ids = (await connection.scalars(statement.limit(MAX_LISTED + 1))).all()
    return ids if len(ids) <= MAX_LISTED else None


def branch_specs(spec: QuerySpec) -> list[QuerySpec]:
    """One spec per compared segment: the universe narrowed to the branch."""
    return [
        replace(
            spec,
            compare=(),
            segment=branch.definition
            if spec.segment is None
            else AllOf((spec.segment, branch.definition)),
        )
        for branch in spec.compare
    ]


def _conditions(node: Node) -> Iterable[Filter]:
    match node:
        case Filter():
            yield node
        case AllOf(items) | AnyOf(items):
            for item in items:
                yield from _conditions(item)
        case Not(item):
            yield from _conditions(item)


def _depth(node: Node) -> int:
    match node:
        case Filter():
            return 1
        case AllOf(items) | AnyOf(items):
            return 1 + max((_depth(i) for i in items), default=0)
        case Not(item):
            return 1 + _depth(item)


def _empty(node: Node, path: str) -> Iterable[str]:
    match node:
        case AllOf(items) | AnyOf(items):
            kind = "and" if isinstance(node, AllOf) else "or"
            if not items:
                yield f"{path}: `{kind}` needs at least one item"
            for index, item in enumerate(items):
                yield from _empty(item, f"{path}.{kind}[{index}]")
        case Not(item):
            yield from _empty(item, f"{path}.not")


def tree_problems(cube: Cube, node: Node, path: str = "definition") -> list[str]:
    """Everything wrong with a segment tree: its shape, unknown fields, operators that do not
    fit a field's type, values that do not parse."""
    problems = list(_empty(node, path))
    conditions = list(_conditions(node))
    if len(conditions) > MAX_CONDITIONS:
        problems.append(f"{path}: at most {MAX_CONDITIONS} conditions, not {len(conditions)}")
    if _depth(node) > MAX_DEPTH:
        problems.append(f"{path}: nested deeper than {MAX_DEPTH} levels")
    fields = segment_cube(cube)
    for item in conditions:
        problems.extend(filter_problems(fields, item, "condition"))
    return list(dict.fromkeys(problems))


def spec_segment_problems(cube: Cube, spec: QuerySpec) -> list[str]:
    problems = []
    if spec.segment is not None:
        problems += tree_problems(cube, spec.segment, "segment")
    if len(spec.compare) > MAX_COMPARE:
        problems.append(
            f"compareSegments takes at most {MAX_COMPARE} segments, not {len(spec.compare)}"
        )
    names = [branch.name for branch in spec.compare]
    if len(set(names)) != len(names):
        problems.append("compareSegments lists a segment twice")
    for branch in spec.compare:
        problems += tree_problems(cube, branch.definition, f"segment {branch.name!r}")
    return problems
