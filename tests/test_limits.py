"""What one request may ask of the server: depth, aliases, tokens and operations per batch are
capped, a slow statement is cancelled (TIMEOUT), partners see neither the schema nor
suggestions, GraphiQL only where configured, and every error carries a code."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import load_settings
from app.security.persisted import Document, load_documents, sha256_hex
from tests.edge import bearer, codes, extended_app, new_key, persisted, real_app, serving, settings

DOCUMENTS = load_documents()
CHURN = '{ churn(start: "2024-01-01", end: "2024-01-31") { churnedCustomers { events { name } } } }'
ALIASES = "{ a: metrics { name } b: metrics { name } c: metrics { name } }"
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
