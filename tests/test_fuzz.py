"""Fuzzing `/graphql`, against a real server: no answer may be a 5xx, and every error must carry
a code other than INTERNAL (what a client sends is never a reason for an internal error).

- schemathesis (GraphQL mode) generates queries and mutations from the schema, with valid,
  invalid and far-out dates, and strings and ids that are hostile one time in four: a NUL, a lone
  surrogate, longer than any limit, ids beyond 64 bits;
- hypothesis sends what schemathesis never does: any JSON as a body, any bytes, variables
  nested to any depth, and hostile strings as variables of every string input, by POST and
  by GET.

Bounded: a few hundred requests each, well under a minute or two."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes

from schema.export import SDL_PATH
from tests.edge import INPUTS, real_app, running, with_variable

EXAMPLES_PER_FIELD = 50
EXAMPLES = 100
CODES = {"BAD_USER_INPUT", "NOT_FOUND", "PERSISTED_QUERY_NOT_FOUND", "TIMEOUT"}
DATES = st.dates(datetime.date(1900, 1, 1), datetime.date(2100, 12, 31)).map(
    lambda day: nodes.String(day.isoformat())
)
NOT_DATES = st.sampled_from(["", "2024-02-30", "2024-13-01", "31/12/2024", "0000-00-00"])
TEXT = st.text(max_size=20)
SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
# texts read as numbers somewhere (filter values, bounds): far beyond any column or driver
NUMBERISH = st.sampled_from(
    ["1e999999", "-1e-999999", "1e131072", "9" * 2_000, "0." + "0" * 2_000 + "1", "NaN", "-0"]
)
HOSTILE_TEXT = st.one_of(
    st.tuples(TEXT, TEXT).map("\x00".join),
    st.tuples(TEXT, SURROGATES, TEXT).map("".join),
    st.integers(201, 5_000).map(lambda length: "x" * length),
    NUMBERISH,
)
IDS = st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(2**63, 10**40)).map(str)
ANY_DATES = st.dates().map(lambda day: nodes.String(day.isoformat()))  # years 1 to 9999
OFFSETS = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(
    lambda minutes: datetime.timezone(datetime.timedelta(minutes=minutes))
)
MOMENTS = st.datetimes(
    datetime.datetime(1990, 1, 1), datetime.datetime(2100, 12, 31), timezones=OFFSETS
).map(datetime.datetime.isoformat)
# far out, at the ends of Python's range, finer than a microsecond, not a date-time
ODD_MOMENTS = st.one_of(
    st.datetimes(timezones=OFFSETS).map(datetime.datetime.isoformat),
    st.sampled_from(
        [
            "0001-01-01T00:00:00Z",
            "9999-12-31T24:00:00Z",
            "9999-12-31T23:59:59.999999-23:59",
            "2026-10-01T00:00:00.000000001Z",
            "2026-10-01T24:00:00",
            "2026-02-30T00:00:00Z",
            "2026-10-01T00:00:00+24:00",
            "",
        ]
    ),
)
# mostly real dates (so queries run), else not a date or far out (so coercion errors are seen)
schemathesis.graphql.scalar(
    "Date", st.one_of(DATES, DATES, DATES, NOT_DATES.map(nodes.String), ANY_DATES)
)
schemathesis.graphql.scalar(
    "DateTime", st.one_of(MOMENTS, MOMENTS, MOMENTS, ODD_MOMENTS).map(nodes.String)
)
schemathesis.graphql.scalar("Cents", st.integers(-(2**63), 2**63 - 1).map(nodes.Int))
# a JSON body cannot carry a file: what a confused client sends instead of a multipart upload
schemathesis.graphql.scalar("Upload", st.text(max_size=20).map(nodes.String))
# strings and ids: hostile one time in four
schemathesis.graphql.scalar("String", st.one_of(TEXT, TEXT, TEXT, HOSTILE_TEXT).map(nodes.String))
schemathesis.graphql.scalar("ID", st.one_of(IDS, IDS, IDS, HOSTILE_TEXT).map(nodes.String))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def server(database_url: str) -> Iterator[str]:
    """A server per test, started on the emptied database (no key: keyless on loopback)."""
    with running(real_app(database_url)) as url:
        yield url


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    """A client of this test's server (hypothesis' examples share it: none of them writes)."""
    with httpx.Client(base_url=server, timeout=60) as client:
        yield client


# the SDL that `make schema` exports (a test keeps it current), fuzzed against a running server
fuzzed = schemathesis.graphql.from_path(SDL_PATH)


def check_answer(response: httpx.Response | Any) -> list[str]:
    """No 5xx, a JSON answer, every error coded and none INTERNAL; the codes."""
    assert response.status_code < 500, response.text
    body = response.json()
    results = body if isinstance(body, list) else [body]
    errors = [error for result in results for error in result.get("errors") or []]
    for error in errors:
        assert (error.get("extensions") or {}).get("code") in CODES, error
    return [error["extensions"]["code"] for error in errors]


@fuzzed.parametrize()
@settings(
    max_examples=EXAMPLES_PER_FIELD,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@pytest.mark.usefixtures("engine")  # migrated and emptied: no key, so keyless on loopback
def test_no_server_error_and_no_internal_error(case: Any, server: str) -> None:
    check_answer(case.call(base_url=f"{server}/graphql"))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)
REQUEST_KEYS = st.sampled_from(["query", "variables", "operationName", "extensions"])
REQUESTISH = st.dictionaries(REQUEST_KEYS, JSON_VALUES, max_size=4)


def post(client: httpx.Client, body: bytes) -> httpx.Response:
    return client.post("/graphql", content=body, headers={"content-type": "application/json"})


@FUZZ
@given(value=st.one_of(JSON_VALUES, REQUESTISH, st.lists(REQUESTISH, max_size=3)))
@pytest.mark.usefixtures("engine")
def test_any_json_body(client: httpx.Client, value: Any) -> None:
    response = post(client, json.dumps(value).encode())
    codes = check_answer(response)
    requests = value if isinstance(value, list) else [value]
    if not all(isinstance(request, dict) for request in requests):
        assert (response.status_code, codes) == (400, ["BAD_USER_INPUT"])


@FUZZ
@given(body=st.binary(max_size=200))
@pytest.mark.usefixtures("engine")
def test_any_bytes_as_a_body(client: httpx.Client, body: bytes) -> None:
    check_answer(post(client, body))


@FUZZ
@given(levels=st.integers(1, 5_000), brackets=st.sampled_from(["[]", '{"a":}']))
@pytest.mark.usefixtures("engine")
def test_variables_nested_to_any_depth(client: httpx.Client, levels: int, brackets: str) -> None:
    opening, closing = brackets[:-1], brackets[-1]
    nested = opening * levels + "1" + closing * levels
    body = json.dumps({"query": with_variable("search"), "variables": {"v": "$"}})
    response = post(client, body.replace('"$"', nested).encode())
    codes = check_answer(response)
    assert codes == ["BAD_USER_INPUT"]  # a list or an object is no string, at any depth
    if levels > 64:
        assert response.status_code == 400


def is_hostile(value: str) -> bool:
    return "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value)


@FUZZ
@given(
    name=st.sampled_from(sorted(INPUTS)),
    value=st.one_of(TEXT, HOSTILE_TEXT, IDS),
    by_get=st.booleans(),
)
@pytest.mark.usefixtures("engine")
def test_hostile_strings_in_every_string_input(
    client: httpx.Client, name: str, value: str, by_get: bool
) -> None:
    query, variables = with_variable(name), json.dumps({"v": value})
    if by_get:
        params = {"query": query, "variables": variables}
        response = client.get("/graphql", params=params)
    else:
        response = post(client, json.dumps({"query": query, "variables": {"v": value}}).encode())
    codes = check_answer(response)
    if is_hostile(value):
        assert (response.status_code, codes) == (400, ["BAD_USER_INPUT"])
