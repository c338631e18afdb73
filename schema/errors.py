"""Error shaping at the edge: expected errors carry `extensions.code`, the rest is masked."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from app.errors import UserError

log = logging.getLogger("tidemill.graphql")


def _shaped(error: GraphQLError, request_id: str) -> GraphQLError:
    original = error.original_error
    if isinstance(original, UserError):
        extensions = {"code": original.code, "problems": list(original.problems)}
        return GraphQLError(
            error.message, error.nodes, error.source, error.positions, error.path, None, extensions
        )
    if original is None:  # parse or validation error: the query itself is wrong
        extensions = {"code": "BAD_USER_INPUT", **(error.extensions or {})}
        return GraphQLError(
            error.message, error.nodes, error.source, error.positions, error.path, None, extensions
        )
    log.error("internal error (request %s)", request_id, exc_info=original)
    return GraphQLError(
        f"Internal error (request id {request_id}).",
        error.nodes,
        error.source,
        error.positions,
        error.path,
        None,
        {"code": "INTERNAL", "requestId": request_id},
    )


class ErrorCodes(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not getattr(result, "errors", None):
            return
        context = self.execution_context.context
        request_id = getattr(context, "request_id", "-")
        result.errors = [_shaped(error, request_id) for error in result.errors or []]
