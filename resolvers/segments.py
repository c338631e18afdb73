"""Resolvers of segments, and of the segment parts of a query spec."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from app import segments
from app.ids import parse_id
from app.metrics.spec import QuerySpec
from app.segments import Segment
from resolvers.context import Context


def segment_id(text: str) -> int:
    return parse_id(text, "segment")


async def with_segments(
    context: Context, spec: QuerySpec, segment: str | None, compare: Sequence[str]
) -> QuerySpec:
    """The spec with the trees of its segment and compared segments (NOT_FOUND if one is not
    there); their definitions are validated with the rest of the spec by the service."""
    if segment is None and not compare:
        return spec
    universe = segment_id(segment) if segment is not None else None
    ids = [segment_id(ident) for ident in compare]
    node, branches = await segments.resolve(context.metrics.engine, universe, ids)
    return replace(spec, segment=node, compare=branches)


async def all_segments(context: Context) -> list[Segment]:
    return await segments.list_segments(context.metrics.engine)


async def segment(context: Context, ident: str) -> Segment:
    return await segments.get(context.metrics.engine, segment_id(ident))


async def problems(context: Context, definition: Any) -> list[str]:
    cube = await context.metrics.current_cube()
    return segments.definition_problems(cube, definition)


async def create(context: Context, name: str, description: str, definition: Any) -> Segment:
    cube = await context.metrics.current_cube()
    return await segments.create(context.metrics.engine, cube, name, description, definition)


async def update(
    context: Context,
    ident: str,
    name: str | None,
    description: str | None,
    definition: Any,
) -> Segment:
    cube = await context.metrics.current_cube()
    engine = context.metrics.engine
    return await segments.update(engine, cube, segment_id(ident), name, description, definition)


async def delete(context: Context, ident: str) -> None:
    await segments.delete(context.metrics.engine, segment_id(ident))
