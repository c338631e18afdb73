"""The GraphQL client side of the CLI: persisted documents from `queries/`, sent through gql."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from gql import Client, GraphQLRequest
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportQueryError,
    TransportServerError,
)
from gql.transport.httpx import HTTPXTransport

from app.config import Settings

QUERIES_DIR = Path(__file__).resolve().parent.parent / "queries"


class ClientError(Exception):
    """A request the CLI could not complete; the message is meant for the user."""


def document(name: str) -> str:
    path = QUERIES_DIR / f"{name}.graphql"
    if not path.is_file():
        raise ClientError(f"no persisted query {name!r} in {QUERIES_DIR}")
    return path.read_text()


def _describe(error: TransportQueryError) -> str:
    messages = [e.get("message", str(e)) for e in error.errors or []]
    codes = {e.get("extensions", {}).get("code") for e in error.errors or []} - {None}
    prefix = f"[{', '.join(sorted(codes))}] " if codes else ""
    return prefix + "; ".join(messages or [str(error)])


def run(settings: Settings, name: str, variables: dict[str, Any]) -> dict[str, Any]:
    """Execute the persisted document `name` against the server at `settings.url`."""
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    transport = HTTPXTransport(url=settings.url, headers=headers, timeout=120)
    client = Client(transport=transport, fetch_schema_from_transport=False)
    request = GraphQLRequest(document(name), variable_values=variables)
    try:
        result: dict[str, Any] = client.execute(request)
    except (httpx.ConnectError, TransportConnectionFailed):
        raise ClientError(
            f"cannot reach the Tidemill server at {settings.url} "
            "(start it with `tidemill serve`, or set TIDEMILL_URL)"
        ) from None
    except TransportQueryError as error:
        raise ClientError(_describe(error)) from None
    except TransportServerError as error:
        raise ClientError(f"the server answered HTTP {error.code}: {error}") from None
    return result
