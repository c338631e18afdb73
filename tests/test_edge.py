"""The HTTP edge every route shares (schema/edge.py): body limits (413 while streaming, the
upload limit apart), outages as 503 with Retry-After and recovery, coded errors for wrong
methods and unknown paths, and nothing of the server's insides in any error body."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.config import Settings, load_settings
from app.db import POOL_OVERFLOW, POOL_SIZE
from schema import edge
from tests.edge import (
    Relay,
    codes,
    extended_app,
    new_key,
    real_app,
    running,
    serving,
    settings,
)

METRICS = {"query": "{ metrics { name } }"}
INSIDES = ("Traceback", 'File "', "SELECT", "sqlalchemy", "asyncpg", "/work/", "site-packages")
MB = 1 << 20


def assert_no_insides(response: httpx.Response) -> None:
    assert not [leak for leak in INSIDES if leak in response.text], response.text


def test_the_default_limits() -> None:
    defaults = Settings()
    assert (defaults.max_body_bytes, defaults.max_upload_bytes) == (4 * MB, 50 * MB)
    assert defaults.pool_timeout_ms == 5_000


def test_the_limits_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEMILL_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("TIDEMILL_MAX_UPLOAD_BYTES", "4096")
    monkeypatch.setenv("TIDEMILL_POOL_TIMEOUT_MS", "250")
    loaded = load_settings()
    assert (loaded.max_body_bytes, loaded.max_upload_bytes, loaded.pool_timeout_ms) == (
        2048,
        4096,
        250,
    )


# --- body size ----------------------------------------------------------------------------------


def _scope(headers: dict[str, str], query_string: bytes = b"") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/graphql",
        "raw_path": b"/graphql",
        "query_string": query_string,
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
    }


async def call(app: Any, scope: dict[str, Any], chunks: Iterator[bytes]) -> tuple[int, Any, int]:
    """Send `chunks` as the request body through ASGI; the status, the JSON body and how many
    chunks the app took."""
    taken = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal taken
        chunk = next(chunks, None)
        taken += chunk is not None
        return {"type": "http.request", "body": chunk or b"", "more_body": chunk is not None}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body), taken


def ten_megabytes_of_search() -> Iterator[bytes]:
    yield b'{"query": "{ customers(search: \\"'
    for _ in range(160):
        yield b"x" * 65_536  # 160 x 64 KiB = 10 MiB
    yield b'\\") { totalCount } }"}'


@pytest.mark.usefixtures("engine")
async def test_a_body_over_the_limit_is_refused_as_it_streams_in(database_url: str) -> None:
    app = real_app(database_url)  # the default limit, 4 MiB
    headers = {"content-type": "application/json"}  # chunked: no Content-Length to trust
    status, body, taken = await call(app, _scope(headers), ten_megabytes_of_search())
    assert status == 413
    assert body == {
        "errors": [
            {
                "message": "the request body is larger than 4,194,304 bytes, the most this "
                "server accepts",
                "extensions": {"code": "PAYLOAD_TOO_LARGE"},
            }
        ]
    }
    assert taken == 1 + 64  # refused at the chunk that passed 4 MiB, the other 6 MiB unread


@pytest.mark.usefixtures("engine")
async def test_a_declared_length_over_the_limit_is_refused_before_any_byte(
    database_url: str,
) -> None:
    with running(real_app(database_url)) as server:
        address = urlsplit(server)
        request = (
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 10485760\r\n\r\n"
        )
        with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
            sock.sendall(request)  # the headers only: the server answers without the body
            answer = b""
            while chunk := sock.recv(65_536):
                answer += chunk
                if answer.endswith(b"}]}"):
                    break
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b'"code":"PAYLOAD_TOO_LARGE"' in answer


@pytest.mark.usefixtures("engine")
async def test_a_query_string_over_the_limit_is_refused(database_url: str) -> None:
    async with serving(real_app(database_url, max_body_bytes=1_000)) as client:
        response = await client.get("/graphql", params={"query": "{ metrics { name } }" * 60})
    assert response.status_code == 414
    assert codes(response.json()) == ["PAYLOAD_TOO_LARGE"]
    assert "the query string is larger than 1,000 bytes" in response.text


UPLOAD = """mutation($file: Upload!) { importAttributes(file: $file) { rows } }"""


async def upload(client: httpx.AsyncClient, size: int) -> httpx.Response:
    operations = json.dumps({"query": UPLOAD, "variables": {"file": None}})
    csv = b"customer,plan_tier\n" + b"C1,gold\n" * (size // 8)
    return await client.post(
        "/graphql",
        data={"operations": operations, "map": '{"0": ["variables.file"]}'},
        files={"0": ("attributes.csv", csv, "text/csv")},
    )


@pytest.mark.usefixtures("engine")
async def test_an_upload_has_its_own_limit(database_url: str) -> None:
    app = real_app(database_url, max_body_bytes=64_000, max_upload_bytes=400_000)
    async with serving(app) as client:
        within = await upload(client, 200_000)  # over the body limit, within the upload limit
        over = await upload(client, 500_000)
    assert within.status_code == 200
    assert codes(within.json()) == ["BAD_USER_INPUT"]  # read and checked: no such customer
    assert (over.status_code, codes(over.json())) == (413, ["PAYLOAD_TOO_LARGE"])


# --- outages ------------------------------------------------------------------------------------


def assert_unavailable(response: httpx.Response, reason: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == str(edge.RETRY_AFTER_SECONDS)
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAVAILABLE"
    request_id = error["extensions"]["requestId"]
    assert error["message"] == (
        f"Service unavailable: {reason}; retry shortly (request id {request_id})."
    )
    assert_no_insides(response)


@pytest.mark.usefixtures("engine")
async def test_a_database_outage_is_503_and_the_server_recovers(database_url: str) -> None:
    async with Relay(database_url) as relay, serving(real_app(relay.url)) as client:
        before = await client.post("/graphql", json=METRICS)
        await relay.cut()
        during = [await client.post("/graphql", json=METRICS) for _ in range(2)]
        await relay.start()
        after = await client.post("/graphql", json=METRICS)
    assert before.status_code == after.status_code == 200
    assert "errors" not in after.json()
    for response in during:
        assert_unavailable(response, "the database cannot be reached")


async def test_a_connection_lost_mid_query_is_503(engine: AsyncEngine, database_url: str) -> None:
    key = await new_key(engine, "read")
    async with Relay(database_url) as relay, serving(extended_app(settings(relay.url))) as client:
        headers = {"Authorization": f"Bearer {key}"}
        slow = asyncio.create_task(
            client.post("/graphql", json={"query": "{ sleep(seconds: 5) }"}, headers=headers)
        )
        await asyncio.sleep(1)  # authenticated, and asleep in the resolver
        await relay.cut()
        cut = await slow
        await relay.start()
        after = await client.post("/graphql", json=METRICS, headers=headers)
    assert_unavailable(cut, "the database cannot be reached")
    assert cut.json()["data"] is None
    assert after.status_code == 200


@pytest.mark.usefixtures("engine")
async def test_an_exhausted_pool_is_503_after_a_bounded_wait(database_url: str) -> None:
    app = extended_app(settings(database_url, pool_timeout_ms=300))
    sleep = {"query": "{ sleep(seconds: 2) }"}
    async with serving(app) as client:
        sleepers = [
            asyncio.create_task(client.post("/graphql", json=sleep))
            for _ in range(POOL_SIZE + POOL_OVERFLOW)  # every connection of the pool
        ]
        await asyncio.sleep(1)
        busy = await client.post("/graphql", json=METRICS)
        slept = await asyncio.gather(*sleepers)
        after = await client.post("/graphql", json=METRICS)
    assert [response.json() for response in slept] == [{"data": {"sleep": True}}] * len(slept)
    assert_unavailable(busy, "every database connection is busy")
    assert after.status_code == 200


# --- any route ----------------------------------------------------------------------------------


def edge_app(error: Exception) -> Starlette:
    """An app behind the edge with one route that raises `error` (as a webhook might)."""

    async def hook(_: Request) -> Response:
        raise error

    return Starlette(
        routes=[Route("/webhooks/{source}", hook, methods=["POST"])],
        middleware=edge.middleware(load_settings()),
        exception_handlers=edge.EXCEPTION_HANDLERS,
    )


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (ConnectionRefusedError(111, "Connect call failed ('10.0.0.5', 5432)"), 503, "UNAVAILABLE"),
        (RuntimeError('File "/srv/app/secret.py": SELECT * FROM api_key'), 500, "INTERNAL"),
    ],
)
async def test_any_route_gets_the_outage_and_the_mask(
    error: Exception, status: int, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(edge_app(error)) as client:
        response = await client.post("/webhooks/1", json={})
    assert response.status_code == status
    [body] = response.json()["errors"]
    assert body["extensions"]["code"] == code
    assert_no_insides(response)
    assert "10.0.0.5" not in response.text
    assert f"(request {body['extensions']['requestId']})" in caplog.text  # the log has it


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_a_wrong_method_is_a_coded_405(database_url: str, method: str) -> None:
    async with serving(real_app(database_url)) as client:
        response = await client.request(method, "/graphql", json=METRICS)
    assert response.status_code == 405
    assert {"GET", "POST"} <= {m.strip() for m in response.headers["allow"].split(",")}
    [error] = response.json()["errors"]
    assert error["extensions"] == {"code": "METHOD_NOT_ALLOWED"}
    assert error["message"] == f"/graphql does not take {method} requests; it takes GET, HEAD, POST"


@pytest.mark.usefixtures("engine")
async def test_an_unknown_path_is_a_coded_404(database_url: str) -> None:
    async with serving(real_app(database_url)) as client:
        response = await client.post("/graphq1", json=METRICS)
    assert (response.status_code, codes(response.json())) == (404, ["NOT_FOUND"])
    [error] = response.json()["errors"]
    assert error["message"] == "nothing at /graphq1 (GraphQL is at /graphql, the dashboard at /)"
