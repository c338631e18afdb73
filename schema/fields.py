"""`@field(...)` and `@mutation(...)`: Strawberry's resolver decorators, typed.

Strawberry types `strawberry.field(description=...)` and `strawberry.mutation(...)` as `Any`
when they are called with options, because its overloads cannot tell a decorator from a field
declaration (`x: int = strawberry.field(...)`), and `mypy --strict` rejects an untyped
decorator (strawberry-graphql/strawberry#1929). These make the same calls and say what they
return: a StrawberryField, which takes the resolver and returns itself. Field declarations keep
using `strawberry.field`.

`graphql_type` names the GraphQL type of a resolver that returns the service's own result
(app.metrics: a Point, a Cohort...), whose fields the Strawberry type declares: the resolver
is annotated with what it really returns.
"""

from __future__ import annotations

import strawberry
from strawberry.permission import BasePermission
from strawberry.types.field import StrawberryField

Permissions = list[type[BasePermission]] | None


def field(
    *,
    description: str | None = None,
    permission_classes: Permissions = None,
    graphql_type: object | None = None,
) -> StrawberryField:
    """`@strawberry.field(...)` on a resolver."""
    made: StrawberryField = strawberry.field(
        description=description, permission_classes=permission_classes, graphql_type=graphql_type
    )
    return made


def mutation(
    *,
    description: str | None = None,
    permission_classes: Permissions = None,
    graphql_type: object | None = None,
) -> StrawberryField:
    """`@strawberry.mutation(...)` on a resolver."""
    made: StrawberryField = strawberry.mutation(
        description=description, permission_classes=permission_classes, graphql_type=graphql_type
    )
    return made
