"""One mutation operation, one transaction: its fields are saved together or not at all."""

from __future__ import annotations

from collections.abc import AsyncIterator

from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from resolvers.context import Context


class AtomicMutations(SchemaExtension):
    """Runs a mutation operation inside `Context.atomic()`: committed when it succeeds, rolled
    back when any of its fields fails (the response then has `data: null` and the error)."""

    async def on_execute(self) -> AsyncIterator[None]:
        execution = self.execution_context
        context = execution.context
        if execution.operation_type is not OperationType.MUTATION or not isinstance(
            context, Context
        ):
            yield
            return
        async with context.atomic() as outcome:
            yield
            result = execution.result
            outcome.failed = result is None or bool(result.errors)
