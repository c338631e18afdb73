"""Saved segments: named boolean trees of conditions, stored as JSON, used as the customer
universe (`spec.segment`) or as compared branches (`spec.compareSegments`) of any metric.

The JSON form of a tree node is one of
    {"field": "customer_country", "op": "IN", "values": ["US", "CA"]}
    {"and": [node, ...]}    {"or": [node, ...]}    {"not": node}
Definitions are checked against the fields that exist when they are saved (`validate`); a
query re-checks them, so a segment naming an attribute deleted since is reported, not ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import Database
from app.errors import InvalidQuery, NotFound, UserError
from app.metrics.cube import Cube
from app.metrics.spec import AllOf, AnyOf, Filter, FilterOp, Node, Not, SegmentSpec
from app.metrics.universe import tree_problems
from app.tables import segment

OPS = ", ".join(op.value for op in FilterOp)


@dataclass(frozen=True)
class Segment:
    id: int
    name: str
    description: str
    definition: Node
    created_at: datetime
    updated_at: datetime


def to_json(node: Node) -> dict[str, Any]:
    match node:
        case Filter(field, op, values):
            return {"field": field, "op": op.value, "values": list(values)}
        case AllOf(items):
            return {"and": [to_json(item) for item in items]}
        case AnyOf(items):
            return {"or": [to_json(item) for item in items]}
        case Not(item):
            return {"not": to_json(item)}


def _strings(values: Any, path: str, problems: list[str]) -> tuple[str, ...]:
    if values is None:
        return ()
    if not isinstance(values, list) or not all(isinstance(v, str | int | float) for v in values):
        problems.append(f"{path}.values must be a list of strings")
        return ()
    return tuple(str(value) for value in values)


def _condition(data: dict[str, Any], path: str, problems: list[str]) -> Node:
    extra = sorted(set(data) - {"field", "op", "values"})
    if extra:
        problems.append(f"{path}: unexpected key(s) {', '.join(extra)} in a condition")
    op_name = data.get("op", FilterOp.EQ.value)
    try:
        op = FilterOp(str(op_name).upper())
    except ValueError:
        problems.append(f"{path}.op {op_name!r} is not one of: {OPS}")
        op = FilterOp.EQ
    if not isinstance(data["field"], str):
        problems.append(f"{path}.field must be a string")
    return Filter(str(data["field"]), op, _strings(data.get("values"), path, problems))


def _node(data: Any, path: str, problems: list[str]) -> Node:
    if not isinstance(data, dict):
        problems.append(f"{path}: a node is an object with `field`, `and`, `or` or `not`")
        return AllOf(())
    combinators = [key for key in ("and", "or", "not") if data.get(key) is not None]
    if "field" in data and not combinators:
        return _condition(data, path, problems)
    if len(combinators) != 1 or "field" in data or len(data) != 1:
        problems.append(
            f"{path}: a node is exactly one of a condition {{field, op, values}}, "
            "{and: [...]}, {or: [...]} or {not: ...}"
        )
        return AllOf(())
    [key] = combinators
    if key == "not":
        return Not(_node(data["not"], f"{path}.not", problems))
    items = data[key]
    if not isinstance(items, list):
        problems.append(f"{path}.{key} must be a list of nodes")
        return AllOf(())
    nodes = tuple(_node(item, f"{path}.{key}[{i}]", problems) for i, item in enumerate(items))
    return AllOf(nodes) if key == "and" else AnyOf(nodes)


def parse(data: Any, path: str = "definition") -> tuple[Node, list[str]]:
    """A tree from its JSON form, and what is wrong with its shape."""
    problems: list[str] = []
    node = _node(data, path, problems)
    return node, problems


def check(cube: Cube, data: Any) -> Node:
    """The tree of a JSON definition, or InvalidQuery listing every problem."""
    node, problems = parse(data)
    problems = problems or tree_problems(cube, node)
    if problems:
        raise InvalidQuery(problems)
    return node


def definition_problems(cube: Cube, data: Any) -> list[str]:
    """`validateSegment`: every problem of a definition, without saving it."""
    node, problems = parse(data)
    return problems or tree_problems(cube, node)


def _segment(row: Any) -> Segment:
    node, _ = parse(row["definition"])
    return Segment(
        row["id"], row["name"], row["description"], node, row["created_at"], row["updated_at"]
    )


def _name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned or len(cleaned) > 200:
        raise UserError("a segment name is 1 to 200 characters")
    return cleaned


async def create(engine: Database, cube: Cube, name: str, description: str, data: Any) -> Segment:
    node = check(cube, data)
    values = {"name": _name(name), "description": description, "definition": to_json(node)}
    async with engine.begin() as connection:
        row = (
            await connection.execute(
                insert(segment).values(values).on_conflict_do_nothing().returning(segment)
            )
        ).first()
    if row is None:
        raise UserError(f"a segment named {values['name']!r} already exists")
    return _segment(row._mapping)


async def update(
    engine: Database,
    cube: Cube,
    ident: int,
    name: str | None = None,
    description: str | None = None,
    data: Any = None,
) -> Segment:
    changes: dict[str, Any] = {}
    if name is not None:
        changes["name"] = _name(name)
    if description is not None:
        changes["description"] = description
    if data is not None:
        changes["definition"] = to_json(check(cube, data))
    async with engine.begin() as connection:
        statement = (
            sa.update(segment)
            .where(segment.c.id == ident)
            .values(**changes, updated_at=sa.func.now())
            .returning(segment)
        )
        try:
            row = (await connection.execute(statement)).first()
        except IntegrityError:
            raise UserError(f"a segment named {changes.get('name')!r} already exists") from None
    if row is None:
        raise NotFound(f"no segment with id {ident}")
    return _segment(row._mapping)


async def delete(engine: Database, ident: int) -> None:
    async with engine.begin() as connection:
        deleted = await connection.execute(sa.delete(segment).where(segment.c.id == ident))
    if not deleted.rowcount:
        raise NotFound(f"no segment with id {ident}")


async def list_segments(engine: Database) -> list[Segment]:
    async with engine.connect() as connection:
        rows = await connection.execute(sa.select(segment).order_by(segment.c.name))
        return [_segment(row) for row in rows.mappings()]


async def fetch(connection: AsyncConnection, ids: Sequence[int]) -> list[Segment]:
    """Segments by id, in the order asked; NotFound names the ids that do not exist."""
    rows = await connection.execute(sa.select(segment).where(segment.c.id.in_(ids)))
    found = {row["id"]: _segment(row) for row in rows.mappings()}
    missing = [str(ident) for ident in ids if ident not in found]
    if missing:
        raise NotFound(f"no segment with id {', '.join(missing)}")
    return [found[ident] for ident in ids]


async def get(engine: Database, ident: int) -> Segment:
    async with engine.connect() as connection:
        [found] = await fetch(connection, [ident])
    return found


async def resolve(
    engine: Database, universe: int | None, compare: Sequence[int]
) -> tuple[Node | None, tuple[SegmentSpec, ...]]:
    """The trees of a spec's segment and compared segments (one statement)."""
    wanted = [*([universe] if universe is not None else []), *compare]
    if not wanted:
        return None, ()
    async with engine.connect() as connection:
        found = {s.id: s for s in await fetch(connection, list(dict.fromkeys(wanted)))}
    node = found[universe].definition if universe is not None else None
    return node, tuple(SegmentSpec(found[i].name, found[i].definition) for i in compare)
