"""Error shaping at the edge: expected errors carry `extensions.code`, the rest is masked."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from app.db import causes, connection_lost, outage
from app.errors import UserError

log = logging.getLogger("tidemill.graphql")
# Whether an error of the operation just run (in this task) came from a pooled connection
# found dead: the secure view then runs a query again (schema/security.py).
CONNECTION_LOST: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "connection_lost", default=False
)


QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement cancelled by statement_timeout
TIMEOUT_MESSAGE = (
    "The query ran longer than the server's statement timeout and was cancelled; "
    "ask for less (a shorter range, a coarser interval, fewer dimensions). A breakdown by "
    "status, pricing_model, collection_method or product reads precomputed rows once an operator "
    "rolls that dimension up (`tidemill rollups add <dimension>`)."
)


def is_query_canceled(error: BaseException | None) -> bool:
    """Whether PostgreSQL cancelled the statement, through SQLAlchemy's and asyncpg's wrappers."""
    return any(getattr(cause, "sqlstate", None) == QUERY_CANCELED for cause in causes(error))


def unavailable_message(reason: str, request_id: str) -> str:
    """What a client reads when the database is out (HTTP 503, code UNAVAILABLE)."""
    return f"Service unavailable: {reason}; retry shortly (request id {request_id})."


def _coded(error: GraphQLError, message: str, extensions: dict[str, object]) -> GraphQLError:
    return GraphQLError(
        message, error.nodes, error.source, error.positions, error.path, None, extensions
    )


def _shaped(error: GraphQLError, request_id: str) -> GraphQLError:
    original = error.original_error
    if isinstance(original, UserError):
        extensions = {"code": original.code, "problems": list(original.problems)}
        return GraphQLError(
            error.message, error.nodes, error.source, error.positions, error.path, None, extensions
        )
    reason = outage(original)
    if reason is not None:
        log.warning("database unavailable (request %s): %s", request_id, original)
        message = unavailable_message(reason, request_id)
        return _coded(error, message, {"code": "UNAVAILABLE", "requestId": request_id})
    if is_query_canceled(original):
        log.warning("statement timeout (request %s)", request_id)
        return _coded(error, TIMEOUT_MESSAGE, {"code": "TIMEOUT", "requestId": request_id})
    if original is None or isinstance(original, GraphQLError):
        # parse or validation error, or a variable value that does not coerce: the request
        # itself is wrong (graphql-core and Strawberry raise GraphQLErrors for the caller)
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


def coded(error: GraphQLError, request_id: str) -> GraphQLError:
    """`error` if it already carries a code, else shaped: the last guard at the HTTP edge."""
    if (error.extensions or {}).get("code"):
        return error
    return _shaped(error, request_id)


class ErrorCodes(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not getattr(result, "errors", None):
            return
        context = self.execution_context.context
        request_id = getattr(context, "request_id", "-")
        lost = (connection_lost(error.original_error) for error in result.errors or [])
        CONNECTION_LOST.set(any(lost))
        result.errors = [_shaped(error, request_id) for error in result.errors or []]
