"""What one request may ask of the server: depth, aliases, tokens, the expanded size of a document,
the digits of an integer and operations per batch are capped, a slow statement is cancelled
(TIMEOUT), partners see neither the schema nor suggestions, GraphiQL only where configured, and
every error carries a code."""

from __future__ import annotations

import json
from typing import Any

import pytest
from graphql import parse
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import load_settings
from app.security.persisted import Document, load_documents, sha256_hex
from schema.limits import MAX_SELECTIONS, Cycle, expanded_size
from tests.edge import bearer, codes, extended_app, new_key, persisted, real_app, serving, settings

DOCUMENTS = load_documents()
CHURN = '{ churn(start: "2024-01-01", end: "2024-01-31") { churnedCustomers { events { name } } } }'
ALIASES = "{ a: metrics { name } b: metrics { name } c: metrics { name } }"
# each fragment spreads the next twice: the document's expanded size doubles per fragment
REUSED = """query Reused { a: metrics { ...Metric } b: metrics { ...Metric } c: metrics { ...Metric } }
fragment Metric on Metric { name ...Parts ... on Metric { unit } }
fragment Parts on Metric { dimensions { name } filters { name } fields { name } ...Names }
fragment Names on Metric { name description }"""
NINES = "9" * 5_000  # more digits than Python reads as an int (4,300)
VARIABLES = {"start": "2024-01-01", "end": "2024-03-31", "id": "1", "customerId": "1"}


async def post(database_url: str, body: Any, **limits: Any) -> tuple[int, Any]:
    async with serving(real_app(database_url, **limits)) as client:
        response = await client.post("/graphql", json=body)
    return response.status_code, response.json()


@pytest.mark.usefixtures("engine")
async def test_every_registered_query_is_within_the_default_limits(database_url: str) -> None:
    async with serving(real_app(database_url)) as client:
        for document in DOCUMENTS.values():
            body = {"extensions": persisted(document.sha256), "variables": VARIABLES}
            response = await client.post("/graphql", json=body)
            # The empty database has no customer 1: NOT_FOUND, after every limit let it run.
            assert set(codes(response.json())) <= {"NOT_FOUND"}, (document.name, response.json())


@pytest.mark.usefixtures("engine")
async def test_too_deep(database_url: str) -> None:
    status, body = await post(database_url, {"query": CHURN}, max_query_depth=2)
    assert (status, codes(body)) == (200, ["BAD_USER_INPUT"])
    assert body["errors"][0]["message"] == "'anonymous' exceeds maximum operation depth of 2"
    _, allowed = await post(database_url, {"query": CHURN}, max_query_depth=3)
    assert "errors" not in allowed


@pytest.mark.usefixtures("engine")
async def test_too_many_aliases(database_url: str) -> None:
    _, body = await post(database_url, {"query": ALIASES}, max_aliases=2)
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["message"] == "3 aliases found. Allowed: 2"


@pytest.mark.usefixtures("engine")
async def test_too_many_tokens(database_url: str) -> None:
    _, body = await post(database_url, {"query": ALIASES}, max_tokens=10)
    assert codes(body) == ["BAD_USER_INPUT"]
    assert "Document contains more than 10 tokens" in body["errors"][0]["message"]


@pytest.mark.usefixtures("engine")
async def test_too_many_selections_by_the_setting(database_url: str) -> None:
    """`max_selections` (TIDEMILL_MAX_SELECTIONS) sets the limit: 3 aliased fields with a field
    each are 6 selections."""
    _, body = await post(database_url, {"query": ALIASES}, max_selections=5)
    assert codes(body) == ["BAD_USER_INPUT"]
    assert "selects 6 fields and fragments" in body["errors"][0]["message"]
    assert "at most 5 are accepted" in body["errors"][0]["message"]
    _, body = await post(database_url, {"query": ALIASES}, max_selections=6)
    assert "errors" not in body


def fragment_bomb(fragments: int) -> str:
    """Under a kilobyte for 22 fragments, and millions of fields once its fragments are expanded."""
    spreads = " ".join(
        f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(fragments)
    )
    return f"query {{ ...F0 }} {spreads} fragment F{fragments} on Query {{ __typename }}"


def test_the_expanded_size_counts_each_fragment_where_it_is_spread() -> None:
    assert expanded_size(parse(REUSED)) == 3 * (2 + 13)  # 3 fields, each its spread and 13
    assert expanded_size(parse(fragment_bomb(40))) == 2**41 - 1 + 2**40  # spreads, fields
    assert expanded_size(parse("{ ...Missing ... on Query { __typename } }")) == 3
    with pytest.raises(Cycle):
        expanded_size(parse("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }"))


@pytest.mark.parametrize("fragments", [22, 40])
@pytest.mark.usefixtures("engine")
async def test_a_fragment_bomb_is_refused_before_it_is_expanded(
    database_url: str, fragments: int
) -> None:
    """Refused at once: expanded, 22 such fragments took 17 seconds and 40 would never end."""
    status, body = await post(database_url, {"query": fragment_bomb(fragments)})
    assert (status, codes(body)) == (200, ["BAD_USER_INPUT"])
    size = 2 ** (fragments + 1) - 1 + 2**fragments
    assert body["errors"][0]["message"] == (
        f"The document selects {size:,} fields and fragments once its fragments are expanded; "
        f"at most {MAX_SELECTIONS:,} are accepted: spread fragments less often, or split the query."
    )


@pytest.mark.usefixtures("engine")
async def test_fragments_spread_many_times_within_the_limit_run(database_url: str) -> None:
    assert expanded_size(parse(fragment_bomb(10))) <= MAX_SELECTIONS
    _, bomb = await post(database_url, {"query": fragment_bomb(10)})
    assert bomb == {"data": {"__typename": "Query"}}
    _, body = await post(database_url, {"query": REUSED})
    assert "errors" not in body
    assert body["data"]["a"] == body["data"]["c"]
    assert {"name", "unit", "dimensions", "description"} <= set(body["data"]["b"][0])


@pytest.mark.usefixtures("engine")
async def test_a_fragment_cycle_is_the_callers_error(database_url: str) -> None:
    cycle = "{ ...A } fragment A on Query { __typename ...B } fragment B on Query { ...A }"
    _, body = await post(database_url, {"query": cycle})
    assert codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["message"] == "Cannot spread fragment 'A' within itself via 'B'."


@pytest.mark.parametrize(
    "query",
    [
        f"{{ customers(first: {NINES}) {{ totalCount }} }}",
        f'{{ series(start: "2024-01-01", end: "2024-02-01") {{ breakdown(top: -{NINES}) {{ key }} }} }}',
        f"query($first: Int! = {NINES}) {{ customers(first: $first) {{ totalCount }} }}",
        f"{{ customers(first: {NINES}.0) {{ totalCount }} }}",
    ],
)
@pytest.mark.usefixtures("engine")
async def test_an_integer_of_thousands_of_digits_is_the_callers_error(
    database_url: str, query: str
) -> None:
    _, body = await post(database_url, {"query": query})
    assert codes(body) == ["BAD_USER_INPUT"]
    kind = "a number of 5,001" if ".0)" in query else "an integer of 5,000"
    assert body["errors"][0]["message"] == (
        f"The document holds {kind} digits; numbers of at most 100 digits are "
        "accepted (no argument takes one beyond 64 bits)."
    )
    assert NINES not in json.dumps(body)  # not quoted whole


@pytest.mark.usefixtures("engine")
async def test_too_many_operations_in_a_batch(database_url: str) -> None:
    operation = {"query": "{ metrics { name } }"}
    status, body = await post(database_url, [operation] * 3, max_batch_operations=2)
    assert status == 400
    message = "Too many operations: at most 2 operations per request (this batch has 3)."
    assert body == {"errors": [{"message": message, "extensions": {"code": "BAD_USER_INPUT"}}]}
    status, batch = await post(database_url, [operation] * 2, max_batch_operations=2)
    assert status == 200
    assert [len(result["data"]["metrics"]) > 0 for result in batch] == [True, True]


@pytest.mark.usefixtures("engine")
async def test_a_slow_statement_is_cancelled_with_timeout(database_url: str) -> None:
    app = extended_app(settings(database_url, statement_timeout_ms=100))
    async with serving(app) as client:
        response = await client.post("/graphql", json={"query": "{ sleep(seconds: 5) }"})
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "TIMEOUT"
    assert error["message"].startswith("The query ran longer than the server's statement timeout")


@pytest.mark.usefixtures("engine")
async def test_an_internal_error_is_masked_and_logged_with_its_request_id(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(extended_app(settings(database_url))) as client:
        response = await client.post("/graphql", json={"query": "{ crash }"})
    [error] = response.json()["errors"]
    request_id = error["extensions"]["requestId"]
    assert error == {
        "message": f"Internal error (request id {request_id}).",
        "locations": [{"line": 1, "column": 3}],
        "path": ["crash"],
        "extensions": {"code": "INTERNAL", "requestId": request_id},
    }
    [record] = [r for r in caplog.records if request_id in r.getMessage()]
    assert record.exc_info is not None
    assert "secret internals" in str(record.exc_info[1])


async def test_partners_get_no_introspection_and_no_suggestions(
    engine: AsyncEngine, database_url: str
) -> None:
    introspection = "query Schema { __schema { queryType { name } } }"
    documents = DOCUMENTS | {sha256_hex(introspection): Document("Schema", "", introspection)}
    series = next(d for d in DOCUMENTS.values() if d.name == "MrrSeries")
    body = {"extensions": persisted(series.sha256), "variables": VARIABLES | {"interval": "MONTHH"}}
    partner, reader = await new_key(engine, "partner"), await new_key(engine, "read")
    async with serving(extended_app(settings(database_url), documents)) as client:
        schema = await client.post(
            "/graphql",
            json={"extensions": persisted(sha256_hex(introspection))},
            headers=bearer(partner),
        )
        hidden = await client.post("/graphql", json=body, headers=bearer(partner))
        suggested = await client.post("/graphql", json=body, headers=bearer(reader))
    assert set(codes(schema.json())) == {"FORBIDDEN"}
    assert "introspection has been disabled" in schema.json()["errors"][0]["message"]
    assert "Did you mean" in suggested.json()["errors"][0]["message"]
    [error] = hidden.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "MONTHH" in error["message"]
    assert "Did you mean" not in error["message"]


@pytest.mark.usefixtures("engine")
async def test_graphiql_only_where_configured(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = {"accept": "text/html"}
    async with serving(real_app(database_url)) as client:
        assert "graphiql" in (await client.get("/graphql", headers=page)).text.lower()
    monkeypatch.setenv("TIDEMILL_GRAPHIQL", "off")
    assert load_settings().graphiql is False
    async with serving(real_app(database_url, graphiql=False)) as client:
        response = await client.get("/graphql", headers=page)
    assert response.status_code == 404
    assert codes(response.json()) == ["NOT_FOUND"]


@pytest.mark.usefixtures("engine")
async def test_protocol_errors_carry_codes(database_url: str) -> None:
    async with serving(real_app(database_url)) as client:
        bad_json = await client.post(
            "/graphql", content=b"{", headers={"content-type": "application/json"}
        )
        no_query = await client.post("/graphql", json={})
        unknown_fragment = await client.post("/graphql", json={"query": "{ ...Missing }"})
        bad_variable = await client.post(
            "/graphql",
            json={
                "query": "query($at: Date) { snapshot(at: $at) { mrr } }",
                "variables": {"at": "2024-13-01"},
            },
        )
        wrong_method = await client.put("/graphql", json={})
    assert (bad_json.status_code, codes(bad_json.json())) == (400, ["BAD_USER_INPUT"])
    assert (no_query.status_code, codes(no_query.json())) == (400, ["BAD_USER_INPUT"])
    assert codes(unknown_fragment.json()) == ["BAD_USER_INPUT"]  # not a crash of the depth rule
    assert (wrong_method.status_code, codes(wrong_method.json())) == (405, ["METHOD_NOT_ALLOWED"])
    [error] = bad_variable.json()["errors"]  # a value that does not coerce is the caller's
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"].startswith("Variable '$at' has invalid value")


async def test_without_a_database_the_server_starts_and_says_it_is_unavailable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = real_app("postgresql://nobody@127.0.0.1:1/none")
    async with serving(app) as client:  # start-up reports, does not crash
        response = await client.post("/graphql", json={"query": "{ metrics { name } }"})
    assert "could not check API keys at start-up" in caplog.text
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    [error] = response.json()["errors"]
    request_id = error["extensions"]["requestId"]
    assert error == {
        "message": "Service unavailable: the database cannot be reached; retry shortly "
        f"(request id {request_id}).",
        "extensions": {"code": "UNAVAILABLE", "requestId": request_id},
    }
    assert f"database unavailable (request {request_id})" in caplog.text
