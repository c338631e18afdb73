"""Custom scalars: Python types here, their GraphQL definitions in `SCALARS` (schema config)."""

from __future__ import annotations

from typing import NewType

import strawberry
from strawberry.types.scalar import ScalarDefinition

Cents = NewType("Cents", int)

SCALARS: dict[object, ScalarDefinition] = {
    Cents: strawberry.scalar(
        name="Cents",
        serialize=int,
        parse_value=int,
        description="Integer cents (hundredths of the currency's major unit), 64-bit safe, "
        "serialized as a JSON number.",
    ),
}
