"""Custom scalars: Python types here, their GraphQL definitions in `SCALARS` (schema config)."""

from __future__ import annotations

import dataclasses
import datetime
from typing import NewType

import strawberry
from strawberry.schema.types.base_scalars import DateDefinition, wrap_parser
from strawberry.types.scalar import ScalarDefinition

Cents = NewType("Cents", int)
# Days a query may name: PostgreSQL and Python run further, but no subscription business does,
# and days far out make date arithmetic overflow or series run for minutes.
FIRST_DAY, LAST_DAY = datetime.date(1900, 1, 1), datetime.date(2200, 12, 31)


def _day(text: str) -> datetime.date:
    day = datetime.date.fromisoformat(text)
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"Dates run from {FIRST_DAY} to {LAST_DAY}.")
    return day


SCALARS: dict[object, ScalarDefinition] = {
    Cents: strawberry.scalar(
        name="Cents",
        serialize=int,
        parse_value=int,
        description="Integer cents (hundredths of the currency's major unit), 64-bit safe, "
        "serialized as a JSON number.",
    ),
    datetime.date: dataclasses.replace(DateDefinition, parse_value=wrap_parser(_day, "Date")),
}
