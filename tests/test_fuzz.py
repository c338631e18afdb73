"""Fuzzing `/graphql` with schemathesis (GraphQL mode): queries generated from the schema, with
valid and invalid dates, against a real server. No answer may be a 5xx, and every error must
carry a code; INTERNAL ones only the masked message and the request id. Bounded: a few hundred
requests, well under a minute."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes

from schema.export import SDL_PATH
from tests.edge import real_app, running

EXAMPLES_PER_FIELD = 50
CODES = {"BAD_USER_INPUT", "NOT_FOUND", "PERSISTED_QUERY_NOT_FOUND", "TIMEOUT", "INTERNAL"}
DATES = st.dates(datetime.date(1900, 1, 1), datetime.date(2100, 12, 31)).map(
    lambda day: nodes.String(day.isoformat())
)
NOT_DATES = st.sampled_from(["", "2024-02-30", "2024-13-01", "31/12/2024", "0000-00-00"])
# mostly real dates (so queries run), one in four not a date (so coercion errors are seen too)
schemathesis.graphql.scalar("Date", st.one_of(DATES, DATES, DATES, NOT_DATES.map(nodes.String)))
schemathesis.graphql.scalar("Cents", st.integers(-(2**63), 2**63 - 1).map(nodes.Int))
# a JSON body cannot carry a file: what a confused client sends instead of a multipart upload
schemathesis.graphql.scalar("Upload", st.text(max_size=20).map(nodes.String))


@pytest.fixture
def server(database_url: str) -> Iterator[str]:
    """A server per test, started on the emptied database (no key: keyless on loopback)."""
    with running(real_app(database_url)) as url:
        yield url


# the SDL that `make schema` exports (a test keeps it current), fuzzed against a running server
fuzzed = schemathesis.graphql.from_path(SDL_PATH)


def check_masked(error: dict[str, Any]) -> None:
    extensions = error.get("extensions") or {}
    assert extensions.get("code") in CODES, error
    if extensions["code"] == "INTERNAL":
        request_id = extensions["requestId"]
        assert error["message"] == f"Internal error (request id {request_id}).", error


@fuzzed.parametrize()
@settings(
    max_examples=EXAMPLES_PER_FIELD,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@pytest.mark.usefixtures("engine")  # migrated and emptied: no key, so keyless on loopback
def test_no_server_error_and_no_unmasked_error(case: Any, server: str) -> None:
    response = case.call(base_url=f"{server}/graphql")
    assert response.status_code < 500, response.text
    for error in response.json().get("errors") or []:
        check_masked(error)
