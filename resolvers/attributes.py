"""Resolvers of attribute definitions, values and imports."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from app import attributes
from app.attributes import AttributeDefinition, AttributeType
from app.errors import UserError
from app.ids import parse_id
from resolvers.context import Context


def customer_id(text: str) -> int:
    return parse_id(text, "customer")


async def definitions(context: Context) -> list[AttributeDefinition]:
    return await attributes.list_definitions(context.metrics.engine)


async def distinct_values(context: Context, key: str, first: int) -> list[str]:
    if not 1 <= first <= attributes.MAX_VALUES:
        raise UserError(f"first must be between 1 and {attributes.MAX_VALUES}, not {first}")
    return await attributes.distinct_values(context.metrics.engine, key, first)


async def create(
    context: Context,
    key: str,
    label: str,
    kind: AttributeType,
    source: str,
    description: str,
) -> AttributeDefinition:
    definition = AttributeDefinition(key, label, kind, source, description)
    return await attributes.create(context.metrics.engine, definition)


async def update(
    context: Context, key: str, label: str | None, description: str | None
) -> AttributeDefinition:
    return await attributes.update(context.metrics.engine, key, label, description)


async def set_values(context: Context, ident: str, values: Sequence[tuple[str, str]]) -> int:
    customer = customer_id(ident)
    await attributes.set_values(context.metrics.engine, customer, values)
    return customer


async def remove_value(context: Context, ident: str, key: str) -> int:
    customer = customer_id(ident)
    await attributes.remove_value(context.metrics.engine, customer, key)
    return customer


async def import_file(context: Context, lines: Iterable[str], filename: str) -> tuple[int, int]:
    return await attributes.import_csv(context.metrics.engine, lines, filename)
