"""The HTTP edge every route shares (GraphQL, the probes, webhooks, the dashboard).

- **Size.** A request body may be at most `max_body_bytes` (a multipart upload:
  `max_upload_bytes`; a batch of usage events to `/events`: `max_events_bytes`), a query
  string `max_body_bytes`. The declared Content-Length is checked
  first and the body is counted while it streams in, so an oversized body is refused without
  being read: HTTP 413 (414 for a query string), code `PAYLOAD_TOO_LARGE`.
- **Outages.** An exception caused by the database being out (`app.db.outage`: unreachable,
  shutting down, every pooled connection busy past `pool_timeout_ms`) is HTTP 503 with
  `Retry-After`, code `UNAVAILABLE`; the pool reconnects by itself once the database is back.
  Any other exception is HTTP 500, code `INTERNAL`, with a request id that the log repeats next
  to the traceback; the body says nothing else.
- **HTTP errors** (an unknown path, a method the route does not take, a malformed form) are
  coded too: `NOT_FOUND`, `METHOD_NOT_ALLOWED` (with `Allow`), `BAD_USER_INPUT`.

Every error body has GraphQL's shape: `{"errors": [{"message", "extensions": {"code"}}]}`.
A route raises; this module answers. `Edge` is the outermost middleware of the app (inside
Starlette's last-resort handler, which it leaves nothing to do).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.db import outage
from schema.errors import is_query_canceled, unavailable_message

log = logging.getLogger("tidemill.server")
RETRY_AFTER_SECONDS = 5
STATUS_CODES = {
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    414: "PAYLOAD_TOO_LARGE",
}


class PayloadTooLarge(Exception):
    """The request is bigger than the edge accepts: `what` is over `limit` bytes."""

    def __init__(self, what: str, limit: int, status: int = 413) -> None:
        self.status = status
        super().__init__(f"{what} is larger than {limit:,} bytes, the most this server accepts")


def error_response(
    message: str,
    code: str,
    status: int,
    headers: Mapping[str, str] | None = None,
    **extensions: str,
) -> JSONResponse:
    """A coded error, in the shape of a GraphQL response with errors only."""
    body = {"errors": [{"message": message, "extensions": {"code": code, **extensions}}]}
    return JSONResponse(body, status, headers=dict(headers or {}))


def http_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """An HTTP-level refusal (4xx) as a coded error."""
    return error_response(message, STATUS_CODES.get(status, "BAD_USER_INPUT"), status, headers)


async def http_exception(request: Request, error: Exception) -> Response:
    """Starlette's HTTPException (unknown path, wrong method, bad form), coded."""
    assert isinstance(error, HTTPException)
    message, headers = error.detail, dict(error.headers or {})
    if error.status_code == 405:
        headers["Allow"] = ", ".join(sorted(m.strip() for m in headers["Allow"].split(",")))
        path, method = request.url.path, request.method
        message = f"{path} does not take {method} requests; it takes {headers['Allow']}"
    elif error.status_code == 404 and message == "Not Found":  # no route: say where things are
        message = f"nothing at {request.url.path} (GraphQL is at /graphql, the dashboard at /)"
    return http_error(error.status_code, message, headers)


def unavailable(reason: str, request_id: str) -> Response:
    """HTTP 503: the database is out; the client should retry after a few seconds."""
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    message = unavailable_message(reason, request_id)
    return error_response(message, "UNAVAILABLE", 503, headers, requestId=request_id)


def timed_out(request_id: str) -> Response:
    """HTTP 503: a statement outlasted the statement timeout (waiting on a lock held by a
    usage metric's rollup build, a busy database); its transaction was rolled back."""
    message = (
        "The request ran longer than the server's statement timeout and was cancelled; what "
        f"it would have stored was rolled back: send it again shortly (request id {request_id})."
    )
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return error_response(message, "TIMEOUT", 503, headers, requestId=request_id)


def internal(error: BaseException) -> Response:
    """HTTP 500, masked: only a request id, which the log repeats next to the traceback."""
    request_id = uuid.uuid4().hex[:12]
    log.error("internal error (request %s)", request_id, exc_info=error)
    message = f"Internal error (request id {request_id})."
    return error_response(message, "INTERNAL", 500, requestId=request_id)


def failure(error: Exception) -> Response:
    """The answer to an exception that left a route."""
    if isinstance(error, PayloadTooLarge):
        return http_error(error.status, str(error))
    reason = outage(error)
    if reason is not None:
        request_id = uuid.uuid4().hex[:12]
        log.warning("database unavailable (request %s): %s", request_id, error)
        return unavailable(reason, request_id)
    if is_query_canceled(error):
        request_id = uuid.uuid4().hex[:12]
        log.warning("statement timeout (request %s)", request_id)
        return timed_out(request_id)
    return internal(error)


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _content_type(scope: Scope) -> bytes:
    return next((value for name, value in scope["headers"] if name == b"content-type"), b"")


class Edge:
    """ASGI middleware: body limits and the answer to whatever a route raises (module doc)."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        max_upload_bytes: int,
        path_limits: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes
        self.path_limits = dict(path_limits or {})  # body limits of routes that take more

    def body_limit(self, scope: Scope) -> int:
        """The most bytes this request's body may have; raises when it says it has more."""
        if len(scope.get("query_string", b"")) > self.max_body_bytes:
            raise PayloadTooLarge("the query string", self.max_body_bytes, status=414)
        multipart = _content_type(scope).lower().startswith(b"multipart/")
        limit = self.max_upload_bytes if multipart else self.max_body_bytes
        limit = self.path_limits.get(scope.get("path", ""), limit)
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            raise PayloadTooLarge("the request body", limit)
        return limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, _counted(receive, self.body_limit(scope)), sending)
        except Exception as error:
            if started:  # too late to answer: Starlette's last resort logs it
                raise
            await failure(error)(scope, receive, send)


def _counted(receive: Receive, limit: int) -> Receive:
    """`receive`, raising PayloadTooLarge as soon as the body passes `limit` bytes."""
    received = 0

    async def counting() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise PayloadTooLarge("the request body", limit)
        return message

    return counting


def middleware(settings: Settings) -> list[Middleware]:
    """The edge of an app served with `settings`."""
    return [
        Middleware(
            Edge,
            max_body_bytes=settings.max_body_bytes,
            max_upload_bytes=settings.max_upload_bytes,
            path_limits={"/events": settings.max_events_bytes},
        )
    ]


EXCEPTION_HANDLERS: dict[Any, Any] = {HTTPException: http_exception}
