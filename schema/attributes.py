"""GraphQL types of customer attributes: definitions, typed values, imports."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

import strawberry
from strawberry.scalars import JSON

from app.attributes import AttributeDefinition, Value
from schema.enums import AttributeType
from schema.fields import field


@strawberry.type(description="An attribute definition; its values filter and slice as attr.<key>.")
class Attribute:
    key: str
    label: str
    type: AttributeType
    source: str = strawberry.field(description="stripe, csv, api or computed.")
    description: str

    @field(description="Its dimension and filter name in metric specs.")
    def dimension(self) -> str:
        return f"attr.{self.key}"

    @classmethod
    def of(cls, definition: AttributeDefinition) -> Attribute:
        return cls(
            key=definition.key,
            label=definition.label,
            type=definition.type,
            source=definition.source,
            description=definition.description,
        )


def kind_of(value: Value) -> AttributeType:
    match value:
        case bool():
            return AttributeType.BOOLEAN
        case Decimal():
            return AttributeType.NUMBER
        case datetime.date():
            return AttributeType.DATE
        case _:
            return AttributeType.STRING


def json_value(value: Value) -> Any:
    """A typed value as JSON: string, number, boolean, or an ISO date string."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def text_of(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value.isoformat() if isinstance(value, datetime.date) else str(value)


@strawberry.type(description="One attribute value of a customer.")
class AttributeValue:
    key: str
    type: AttributeType
    value: JSON = strawberry.field(description="Typed: string, number, boolean or ISO date.")
    text: str = strawberry.field(description="The value as text (as filters take it).")

    @classmethod
    def of(cls, key: str, value: Value) -> AttributeValue:
        return cls(key=key, type=kind_of(value), value=json_value(value), text=text_of(value))


@strawberry.input(description="A value to set: its text is parsed as the attribute's type.")
class AttributeValueInput:
    key: str
    value: str


@strawberry.type(description="What an attribute import saved (all rows, or nothing).")
class AttributeImport:
    rows: int = strawberry.field(description="Customer rows read.")
    values: int = strawberry.field(description="Values upserted.")
