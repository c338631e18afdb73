"""What a request may carry (schema/inputs.py): bodies that are not GraphQL requests, bytes that
are not UTF-8, deep nesting, NUL and lone surrogates in any string, ids beyond 64 bits, the
size of arguments and several operations without a name. Each is BAD_USER_INPUT naming the
problem, by POST and by GET, and leaves the stored data as it was."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ids import BIGINT_MAX
from tests.conftest import import_text, table_counts
from tests.edge import INPUTS, codes, real_app, serving, with_literal, with_variable

JSON = {"content-type": "application/json"}
HUGE = "99999999999999999999"
NUL = "contains a NUL character (U+0000), which text cannot hold"
SURROGATE = "contains a lone UTF-16 surrogate (such as \\ud800), which is not a character"
DEEP = "The JSON is nested more than 64 levels deep."
NOT_A_REQUEST = (
    "The request must be a JSON object (one GraphQL request) or a list of them (a batch)"
)


async def post_raw(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await client.post("/graphql", content=body, headers=JSON)


def assert_refused(response: httpx.Response, status: int, message: str) -> None:
    """Refused with `status`, every error BAD_USER_INPUT, one of them saying `message`."""
    assert response.status_code == status, response.text
    errors = response.json()["errors"]
    assert {error["extensions"]["code"] for error in errors} == {"BAD_USER_INPUT"}, errors
    assert any(message in error["message"] for error in errors), errors


# --- bodies -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'["x", 1]', "; the list holds a string."),
        (b"42", ", not a number."),
        (b'"s"', ", not a string."),
        (b"null", ", not null."),
        (b"true", ", not a boolean."),
        (b'[{"query": "{ metrics { name } }"}, null]', "; the list holds null."),
    ],
)
async def test_a_body_that_is_not_a_request(database_url: str, body: bytes, problem: str) -> None:
    async with serving(real_app(database_url)) as client:
        response = await post_raw(client, body)
    assert_refused(response, 400, NOT_A_REQUEST + problem)


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize(
    ("headers", "given"),
    [({"content-type": "text/plain"}, "'text/plain'"), ({}, "'none'")],
)
async def test_a_body_of_another_content_type(
    database_url: str, headers: dict[str, str], given: str
) -> None:
    """Refused naming the type it came as and the ways a request may come."""
    async with serving(real_app(database_url)) as client:
        response = await client.post("/graphql", content=b"{ metrics { name } }", headers=headers)
    assert_refused(response, 400, f"Unsupported content type {given}: send a GraphQL request")
    assert "application/json" in response.json()["errors"][0]["message"]


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"query": ["{ metrics { name } }"]}', "query must be a string or null, not a list"),
        (b'{"query": "{ metrics { name } }", "operationName": 1}', "operationName must be a "),
        (b'[{"query": "{ metrics { name } }", "variables": 1}]', "[0].variables must be an "),
        (b'[{"query": "{ metrics { name } }", "extensions": []}]', "[0].extensions must be an"),
        (b"[]", "The batch is empty: send at least one operation."),
    ],
)
async def test_a_request_with_fields_of_the_wrong_kind(
    database_url: str, body: bytes, problem: str
) -> None:
    async with serving(real_app(database_url)) as client:
        response = await post_raw(client, body)
    assert_refused(response, 400, problem)


@pytest.mark.usefixtures("engine")
async def test_a_body_that_is_not_utf8_or_not_json(database_url: str) -> None:
    async with serving(real_app(database_url)) as client:
        latin1 = await post_raw(
            client, '{"query": "{ metrics { name } }", "x": "é"}'.encode("latin-1")
        )
        nan = await post_raw(client, b'{"query": "{ metrics { name } }", "variables": {"x": NaN}}')
        digits = await post_raw(
            client, b'{"query": "{ metrics { name } }", "x": ' + b"9" * 5000 + b"}"
        )
    assert_refused(latin1, 400, "The request body is not UTF-8 (invalid continuation byte).")
    assert_refused(nan, 400, "Unable to parse the request as JSON: NaN is not JSON.")
    assert_refused(
        digits, 400, "Unable to parse the request as JSON: it holds an integer of more than 4,300"
    )
    assert "sys.set_int_max_str_digits" not in digits.text  # not Python's advice to itself


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize("levels", [65, 1_000, 100_000])
async def test_variables_nested_deep(database_url: str, levels: int) -> None:
    nested = "[" * levels + "]" * levels
    body = '{"query": "query($v: String) { customers(search: $v) { totalCount } }", '
    body += f'"variables": {{"v": {nested}}}}}'
    params = {"query": with_variable("search"), "variables": f'{{"v": {nested}}}'}
    async with serving(real_app(database_url)) as client:
        posted = await post_raw(client, body.encode())
        got = await client.get("/graphql", params=params) if levels <= 1_000 else posted
    assert_refused(posted, 400, DEEP)
    assert_refused(got, 400, DEEP)  # a URL of 100,000 levels is over any client's length


@pytest.mark.usefixtures("engine")
async def test_nesting_within_the_limit_is_the_schema_s_business(database_url: str) -> None:
    nested = "[" * 20 + "]" * 20
    async with serving(real_app(database_url)) as client:
        response = await client.post(
            "/graphql",
            json={"query": with_variable("search"), "variables": {"v": json.loads(nested)}},
        )
    assert_refused(response, 200, "Variable '$v' has invalid value")


# --- text that PostgreSQL cannot hold -------------------------------------------------------------


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize("name", INPUTS)
@pytest.mark.parametrize(
    ("value", "problem"), [("a\x00b", NUL), ("a\ud800b", SURROGATE)], ids=["nul", "surrogate"]
)
async def test_no_string_input_takes_nul_or_a_lone_surrogate(
    database_url: str, name: str, value: str, problem: str
) -> None:
    body = json.dumps({"query": with_variable(name), "variables": {"v": value}})
    params = {"query": with_variable(name), "variables": json.dumps({"v": value})}
    async with serving(real_app(database_url)) as client:
        posted = await post_raw(client, body.encode())
        got = await client.get("/graphql", params=params)
    assert_refused(posted, 400, f"The request's variables.v {problem}.")
    if INPUTS[name][0] == "query":  # GET runs no mutation, whatever its variables
        assert_refused(got, 400, f"The request's variables.v {problem}.")


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize("name", INPUTS)
async def test_a_nul_escaped_in_a_literal(database_url: str, name: str) -> None:
    query = with_literal(name, '"a\\u0000b"')
    async with serving(real_app(database_url)) as client:
        posted = await client.post("/graphql", json={"query": query})
        got = await client.get("/graphql", params={"query": query.replace("mutation", "query")})
    assert_refused(posted, 200, NUL)
    assert "argument " in posted.json()["errors"][-1]["message"]
    assert codes(got.json())  # GET: a refusal (the mutation) or the same error, never a run
    assert set(codes(got.json())) == {"BAD_USER_INPUT"}


@pytest.mark.usefixtures("engine")
async def test_raw_nul_and_surrogates_anywhere_in_the_request(database_url: str) -> None:
    async with serving(real_app(database_url)) as client:
        in_query = await client.post("/graphql", json={"query": "{ metrics { name } } #\x00"})
        named = {"query": "query A { metrics { name } }", "operationName": "A\ud800"}
        in_name = await post_raw(client, json.dumps(named).encode())  # JSON escapes it
        in_extensions = await client.post(
            "/graphql", json={"query": "{ metrics { name } }", "extensions": {"x": ["\x00"]}}
        )
        in_get = await client.get("/graphql?query=%7B%20metrics%20%7B%20name%20%7D%20%7D%00")
    assert_refused(in_query, 400, f"The request's query {NUL}.")
    assert_refused(in_name, 400, f"The request's operationName {SURROGATE}.")
    assert_refused(in_extensions, 400, f"The request's extensions.x[0] {NUL}.")
    assert_refused(in_get, 400, f"The request's query {NUL}.")


@pytest.mark.usefixtures("engine")
async def test_a_surrogate_pair_is_a_character(database_url: str) -> None:
    body = b'{"query": "query($v: String) { customers(search: $v) { totalCount } }", "variables": {"v": "\\ud83d\\ude00"}}'
    async with serving(real_app(database_url)) as client:
        response = await post_raw(client, body)
    assert response.json() == {"data": {"customers": {"totalCount": 0}}}


async def test_refused_text_changes_nothing(engine: AsyncEngine, database_url: str) -> None:
    await import_text(
        engine,
        "subscription_id,customer_id,start_date,end_date,monthly_amount\ns1,C1,2024-01-01,,10\n",
    )
    before = await table_counts(engine)
    async with serving(real_app(database_url)) as client:
        for name, (operation, _, _) in INPUTS.items():
            if operation == "mutation":
                await client.post(
                    "/graphql", json={"query": with_variable(name), "variables": {"v": "x\x00"}}
                )
                await client.post("/graphql", json={"query": with_literal(name, '"x\\u0000"')})
    assert await table_counts(engine) == before


# --- ids and cursors ------------------------------------------------------------------------------


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("customer id", "customer"),
        ("segment id", "segment"),
        ("compared segment", "segment"),
        ("attribute value", "customer"),
    ],
)
async def test_ids_beyond_64_bits(database_url: str, name: str, kind: str) -> None:
    query = with_literal(name, f'"{HUGE}"')
    if name == "attribute value":
        query = with_literal(name, '"x"').replace('customerId: "1"', f'customerId: "{HUGE}"')
    async with serving(real_app(database_url)) as client:
        posted = await client.post("/graphql", json={"query": query})
        got = await client.get("/graphql", params={"query": query})
    message = f"{kind} id '{HUGE}' is not a {kind} id (a whole number up to {BIGINT_MAX})"
    assert_refused(posted, 200, message)
    if not query.startswith("mutation"):
        assert_refused(got, 200, message)


def cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode("\x1f".join(parts).encode()).decode()


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize(
    "query",
    [
        '{{ customers(after: "{c}", sort: MRR) {{ totalCount }} }}',
        '{{ customers(after: "{n}") {{ totalCount }} }}',
        '{{ churn(start: "2024-01-01", end: "2024-02-01") {{ churnedCustomers(after: "{c}") {{ totalCount }} }} }}',
    ],
)
async def test_forged_cursors(database_url: str, query: str) -> None:
    forged = query.format(c=cursor(HUGE, HUGE), n=cursor("a\x00", "1"))
    async with serving(real_app(database_url)) as client:
        response = await client.post("/graphql", json={"query": forged})
    assert_refused(response, 200, "is not a cursor")


# --- size of arguments ---------------------------------------------------------------------------


@pytest.mark.usefixtures("engine")
async def test_search_is_at_most_200_characters(database_url: str) -> None:
    async with serving(real_app(database_url)) as client:
        fits = await client.post(
            "/graphql", json={"query": with_variable("search"), "variables": {"v": "x" * 200}}
        )
        long = await client.post(
            "/graphql", json={"query": with_variable("search"), "variables": {"v": "x" * 201}}
        )
    assert fits.json() == {"data": {"customers": {"totalCount": 0}}}
    assert_refused(long, 200, "argument search has 201 characters; at most 200")


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("segment name", "n" * 201, "argument name has 201 characters; at most 200"),
        ("attribute label", "l" * 101, "argument key has 101 characters; at most 100"),
        (
            "attribute value",
            "v" * 1001,
            "argument values[0].value has 1,001 characters; at most 1,000",
        ),
        (
            "filter value",
            "f" * 1001,
            "argument spec.filters[0].values[0] has 1,001 characters; at most 1,000",
        ),
    ],
)
async def test_text_arguments_have_limits(
    database_url: str, name: str, value: str, problem: str
) -> None:
    async with serving(real_app(database_url)) as client:
        response = await client.post(
            "/graphql", json={"query": with_variable(name), "variables": {"v": value}}
        )
    assert_refused(response, 200, problem)


@pytest.mark.usefixtures("engine")
async def test_lists_and_nesting_have_limits(database_url: str) -> None:
    tree: dict[str, Any] = {"field": "plan", "op": "EQ", "values": ["a"]}
    for _ in range(32):
        tree = {"not": tree}
    spec = {"filters": [{"field": "plan", "op": "IN", "values": ["p"] * 1001}]}
    async with serving(real_app(database_url)) as client:
        values = await client.post(
            "/graphql",
            json={
                "query": 'query($s: QuerySpecInput) { snapshot(at: "2024-01-01", spec: $s) { mrr } }',
                "variables": {"s": spec},
            },
        )
        deep = await client.post(
            "/graphql",
            json={
                "query": "query($d: SegmentNodeInput!) { validateSegment(definition: $d) { valid } }",
                "variables": {"d": tree},
            },
        )
    assert_refused(values, 200, "argument spec.filters[0].values has 1,001 items; at most 1,000")
    assert_refused(deep, 200, "argument definition.not.not")
    assert "is nested more than 32 levels deep" in deep.json()["errors"][0]["message"]


# --- several operations -----------------------------------------------------------------------


@pytest.mark.usefixtures("engine")
async def test_several_operations_need_an_operation_name(database_url: str) -> None:
    document = "query Plans { metrics { name } } query Segments { segments { id } }"
    async with serving(real_app(database_url)) as client:
        unnamed = await client.post("/graphql", json={"query": document})
        named = await client.post("/graphql", json={"query": document, "operationName": "Segments"})
        got = await client.get("/graphql", params={"query": document})
    message = "the document has 2 operations (Plans, Segments); say which to run with operationName"
    assert unnamed.json() == {
        "data": None,
        "errors": [{"message": message, "extensions": {"code": "BAD_USER_INPUT"}}],
    }
    assert got.json() == unnamed.json()
    assert named.json() == {"data": {"segments": []}}


# --- multipart requests (uploads) -----------------------------------------------------------------

UPLOAD = json.dumps(
    {
        "query": "mutation($file: Upload!) { importAttributes(file: $file) { rows } }",
        "variables": {"file": None},
    }
)
CSV = ("attributes.csv", b"customer,tier\n", "text/csv")


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize(
    ("parts", "problem"),
    [
        ({"operations": (None, "42"), "map": (None, "{}")}, NOT_A_REQUEST + ", not a number."),
        ({"operations": (None, UPLOAD), "map": (None, "[1]")}, "map must be an object of lists"),
        ({"operations": (None, UPLOAD), "map": (None, '{"0": "x"}')}, "map must be an object"),
        (
            {
                "operations": (None, UPLOAD),
                "map": (None, '{"0": ["variables.file.a.b"]}'),
                "0": CSV,
            },
            "The multipart map names a file or a path that is not there.",
        ),
        (
            {"operations": (None, UPLOAD), "map": (None, '{"1": ["variables.file"]}'), "0": CSV},
            "The multipart map names a file or a path that is not there.",
        ),
        (
            {"operations": ("o.json", UPLOAD.encode(), "application/json"), "map": (None, "{}")},
            "The multipart fields operations and map must be text.",
        ),
    ],
)
async def test_a_multipart_request_that_does_not_fit(
    database_url: str, parts: dict[str, Any], problem: str
) -> None:
    async with serving(real_app(database_url)) as client:
        response = await client.post("/graphql", files=parts)
    assert_refused(response, 400, problem)


# --- dates ------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize("day", ["0001-01-01", "1899-12-31", "2201-01-01", "9999-12-31"])
async def test_days_far_out_are_refused(database_url: str, day: str) -> None:
    literal = f'{{ snapshot(at: "{day}") {{ mrr }} }}'
    variable = "query($at: Date) { snapshot(at: $at) { mrr } }"
    async with serving(real_app(database_url)) as client:
        posted = await client.post("/graphql", json={"query": literal})
        got = await client.get(
            "/graphql", params={"query": variable, "variables": f'{{"at": "{day}"}}'}
        )
    message = f'Value cannot represent a Date: "{day}". Dates run from 1900-01-01 to 2200-12-31.'
    assert_refused(posted, 200, message)
    assert_refused(got, 200, message)


@pytest.mark.usefixtures("engine")
async def test_the_first_and_last_days_are_taken(database_url: str) -> None:
    query = '{ series(start: "1900-01-01", end: "2200-12-31", interval: YEAR) { end } }'
    async with serving(real_app(database_url)) as client:
        response = await client.post("/graphql", json={"query": query})
    assert response.json() == {"data": {"series": {"end": "2200-12-31"}}}
