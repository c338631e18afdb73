"""The GraphQL client side of the CLI: persisted documents from `queries/`, sent through gql.

A command first sends only its document's sha256 (automatic persisted queries); only when the
server answers PERSISTED_QUERY_NOT_FOUND (an older server, other `queries/`) does it send the
document with the hash. Every failure becomes a ClientError whose message says what to do.
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
from gql import Client, GraphQLRequest
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportProtocolError,
    TransportQueryError,
    TransportServerError,
)
from gql.transport.httpx import HTTPXTransport

from app.config import QUERIES_DIR, Settings

TIMEOUT_SECONDS = 120
NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
KEY_HINT = (
    "set TIDEMILL_API_KEY (or api_key in .tidemill.toml) to a key from `tidemill keys create`"
)
HINTS = {
    "UNAUTHENTICATED": KEY_HINT,
    "FORBIDDEN": "the API key's scopes do not allow this; ask for a key with the scope named",
}


class ClientError(Exception):
    """A request the CLI could not complete; the message is meant for the user."""


class HashOnlyRequest(GraphQLRequest):
    """A request that sends its document's sha256 but not the document (APQ)."""

    @property
    def payload(self) -> dict[str, Any]:
        payload = dict(super().payload)
        payload.pop("query", None)
        return payload


def document(name: str) -> str:
    path = QUERIES_DIR / f"{name}.graphql"
    if not path.is_file():
        raise ClientError(f"no persisted query {name!r} in {QUERIES_DIR}")
    return path.read_text()


def _codes(error: TransportQueryError) -> set[str]:
    return {e.get("extensions", {}).get("code") for e in error.errors or []} - {None}


def _describe(error: TransportQueryError) -> str:
    messages = [e.get("message", str(e)) for e in error.errors or []]
    codes = _codes(error)
    prefix = f"[{', '.join(sorted(codes))}] " if codes else ""
    hints = [HINTS[code] for code in sorted(codes) if code in HINTS]
    return prefix + "; ".join(messages or [str(error)]) + "".join(f" ({hint})" for hint in hints)


def _http_error(url: str, status: int | None) -> str:
    if status in (401, 403):
        return f"the server at {url} refused the request (HTTP {status}): {KEY_HINT}"
    return f"the server at {url} answered HTTP {status}"


def _unreachable(url: str, error: BaseException) -> str:
    if isinstance(error.__cause__, httpx.TimeoutException):
        return f"the Tidemill server at {url} did not answer within {TIMEOUT_SECONDS} s"
    return (
        f"cannot reach the Tidemill server at {url} "
        "(start it with `tidemill serve`, or set TIDEMILL_URL)"
    )


def _execute(client: Client, request: GraphQLRequest, url: str) -> dict[str, Any]:
    """One request; every failure but a GraphQL error answer as a ClientError."""
    try:
        result: dict[str, Any] = client.execute(request)
    except (httpx.ConnectError, TransportConnectionFailed) as error:
        raise ClientError(_unreachable(url, error)) from None
    except TransportServerError as error:
        raise ClientError(_http_error(url, error.code)) from None
    except TransportProtocolError:
        raise ClientError(
            f"the server at {url} did not answer with GraphQL (is TIDEMILL_URL right?)"
        ) from None
    return result


def persisted_requests(
    name: str, variables: dict[str, Any]
) -> tuple[GraphQLRequest, GraphQLRequest]:
    """The hash-only request for document `name`, and the one that also carries the document.

    The hash is that of the text gql sends: the document as GraphQL's printer prints it, which
    is also what the server registers `queries/` under (app/persisted.py).
    """
    full = GraphQLRequest(document(name), variable_values=variables)
    sha256 = hashlib.sha256(full.payload["query"].encode()).hexdigest()
    full.extensions = {"persistedQuery": {"version": 1, "sha256Hash": sha256}}
    return HashOnlyRequest(full), full


def run(settings: Settings, name: str, variables: dict[str, Any]) -> dict[str, Any]:
    """Execute the persisted document `name` against the server at `settings.url`."""
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    transport = HTTPXTransport(url=settings.url, headers=headers, timeout=TIMEOUT_SECONDS)
    client = Client(transport=transport, fetch_schema_from_transport=False)
    hash_only, full = persisted_requests(name, variables)
    try:
        try:
            return _execute(client, hash_only, settings.url)
        except TransportQueryError as error:
            if _codes(error) != {NOT_FOUND}:
                raise
        return _execute(client, full, settings.url)
    except TransportQueryError as error:
        raise ClientError(_describe(error)) from None
