"""API keys and scopes: hashing, the CLI, every scope against every kind of operation, keyless
loopback access, revocation."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from typer.testing import CliRunner

from app.cli import cli as tidemill_cli
from app.config import QUERIES_DIR
from app.errors import NotFound, UserError
from app.security import keys as auth
from app.security.keys import Scope
from app.security.persisted import load_documents
from app.tables import attribute, fx_rate
from schema import security
from tests.conftest import table_counts
from tests.edge import (
    bearer,
    cli,
    codes,
    extended_app,
    new_key,
    persisted,
    real_app,
    running,
    serving,
    settings,
)

SNAPSHOT = next(d for d in load_documents().values() if d.name == "MrrSnapshot")
OPERATIONS: dict[str, dict[str, Any]] = {
    "query": {"query": "{ metrics { name } }"},
    "persisted": {"extensions": persisted(SNAPSHOT.sha256), "variables": {"at": "2024-01-31"}},
    "mutation": {"query": "mutation { touch }"},
    "admin": {"query": "mutation { rotateSource }"},
    "introspection": {"query": "{ __schema { queryType { name } } }"},
}
OK = "ok"
# scope -> operation -> outcome (OK or the error code)
MATRIX = {
    "read": {"mutation": "FORBIDDEN", "admin": "FORBIDDEN"},
    "write": {"admin": "FORBIDDEN"},
    "admin": {},
    "partner": {
        "query": "FORBIDDEN",
        "mutation": "FORBIDDEN",
        "admin": "FORBIDDEN",
        "introspection": "FORBIDDEN",
    },
}
CASES = [
    (scope, operation, MATRIX[scope].get(operation, OK))
    for scope in MATRIX
    for operation in OPERATIONS
]


async def outcome(client: httpx.AsyncClient, operation: str, key: str | None) -> tuple[str, int]:
    response = await client.post("/graphql", json=OPERATIONS[operation], headers=bearer(key))
    body = response.json()
    found = codes(body)
    return (found[0] if found else OK), response.status_code


# --- keys and scopes, without a server ----------------------------------------------------------


def test_scopes_are_a_ladder_and_partner_is_apart() -> None:
    assert auth.granted({Scope.ADMIN}) == {Scope.ADMIN, Scope.WRITE, Scope.READ}
    assert auth.granted({Scope.WRITE}) == {Scope.WRITE, Scope.READ}
    assert auth.granted({Scope.PARTNER}) == {Scope.PARTNER, Scope.READ}
    assert auth.operation_scope("mutation") is Scope.WRITE
    assert auth.operation_scope("query") is Scope.READ
    assert auth.parse_scopes(["read,write", "admin"]) == {Scope.READ, Scope.WRITE, Scope.ADMIN}


def test_bad_scopes_are_all_reported() -> None:
    with pytest.raises(UserError) as caught:
        auth.parse_scopes(["reed", "partner", "read"])
    assert caught.value.problems == (
        "unknown scope 'reed'; valid: read, write, admin, partner",
        "partner is a restriction and cannot be combined with other scopes",
    )


def test_bearer_header() -> None:
    assert auth.bearer_token(None) is None
    assert auth.bearer_token("Bearer tm_abc") == "tm_abc"
    assert auth.bearer_token("bearer   tm_abc ") == "tm_abc"
    for bad in ("tm_abc", "Basic dXNlcjpwYXNz", "Bearer abc", "Bearer"):
        with pytest.raises(auth.Unauthenticated):
            auth.bearer_token(bad)


def test_loopback_hosts() -> None:
    assert all(map(auth.is_loopback, ["127.0.0.1", "::1", "localhost", "127.0.0.2"]))
    assert not any(map(auth.is_loopback, ["0.0.0.0", "::", "10.0.0.1", "example.com"]))


async def test_only_the_hash_of_a_key_is_stored(engine: AsyncEngine) -> None:
    _, key = await auth.create_key(engine, "dashboard", frozenset({Scope.READ}))
    assert key.startswith("tm_")
    assert len(key) == 3 + 43
    async with engine.connect() as connection:
        row = (await connection.execute(sa.text("SELECT * FROM api_key"))).one()
    assert row.key_hash == auth.key_hash(key) != key
    assert key not in json.dumps([str(value) for value in row])
    assert (row.name, row.scopes, row.last_used_at) == ("dashboard", ["read"], None)
    assert (await auth.key_principal(engine, key)).scopes == {Scope.READ}
    assert (await auth.list_keys(engine))[0].last_used_at is not None


async def test_names_are_unique_and_revoke_finds_name_or_id(engine: AsyncEngine) -> None:
    first, _ = await auth.create_key(engine, "a", frozenset({Scope.READ}))
    with pytest.raises(UserError, match="a key named 'a' already exists"):
        await auth.create_key(engine, "a", frozenset({Scope.WRITE}))
    second, _ = await auth.create_key(engine, "b", frozenset({Scope.READ}))
    assert (await auth.revoke_key(engine, "a")).id == first.id
    assert (await auth.revoke_key(engine, str(second.id))).name == "b"
    with pytest.raises(NotFound):
        await auth.revoke_key(engine, "nobody")
    for beyond in ("9223372036854775808", "9" * 20):  # no id, no name: not found, no overflow
        with pytest.raises(NotFound, match=f"no API key named \\(or with id\\) '{beyond}'"):
            await auth.revoke_key(engine, beyond)


# --- every scope against every operation kind, over HTTP ---------------------------------------


@pytest.mark.parametrize(("scope", "operation", "expected"), CASES)
async def test_scope_against_operation(
    engine: AsyncEngine, database_url: str, scope: str, operation: str, expected: str
) -> None:
    key = await new_key(engine, scope)
    async with serving(extended_app(settings(database_url))) as client:
        code, status = await outcome(client, operation, key)
    assert code == expected
    if expected == "FORBIDDEN" and operation != "admin":  # refused as a whole: HTTP 403
        assert status == 403


async def test_admin_only_field_refused_to_write_key(
    engine: AsyncEngine, database_url: str
) -> None:
    key = await new_key(engine, "write")
    async with serving(extended_app(settings(database_url))) as client:
        response = await client.post("/graphql", json=OPERATIONS["admin"], headers=bearer(key))
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "FORBIDDEN"
    assert error["message"] == "this needs an API key with the admin scope (key scopes: write)"


async def test_a_mutation_is_never_accepted_over_get(
    engine: AsyncEngine, database_url: str
) -> None:
    key = await new_key(engine, "admin")
    async with serving(extended_app(settings(database_url))) as client:
        response = await client.get(
            "/graphql", params={"query": "mutation { touch }"}, headers=bearer(key)
        )
    assert response.status_code == 400
    assert codes(response.json()) == ["BAD_USER_INPUT"]
    assert "mutations are not allowed when using GET" in response.text


# --- who gets in ---------------------------------------------------------------------------------


async def test_missing_unknown_and_malformed_keys_are_unauthenticated(
    engine: AsyncEngine, database_url: str
) -> None:
    await new_key(engine, "read")
    async with serving(real_app(database_url)) as client:
        for key in (None, "tm_not-a-key", "not-even-tm"):
            response = await client.post("/graphql", json=OPERATIONS["query"], headers=bearer(key))
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
            assert codes(response.json()) == ["UNAUTHENTICATED"]


async def test_a_revoked_key_stops_working_at_once(engine: AsyncEngine, database_url: str) -> None:
    key = await new_key(engine, "read", name="dashboard")
    async with serving(real_app(database_url)) as client:
        before = await outcome(client, "query", key)
        await auth.revoke_key(engine, "dashboard")
        after = await client.post("/graphql", json=OPERATIONS["query"], headers=bearer(key))
    assert before == (OK, 200)
    assert after.status_code == 401
    assert after.json()["errors"][0]["message"] == "the API key 'dashboard' has been revoked"


async def test_keyless_on_loopback_only_until_the_first_key(
    engine: AsyncEngine, database_url: str
) -> None:
    async with serving(real_app(database_url)) as client:
        assert await outcome(client, "query", None) == (OK, 200)
        await new_key(engine, "read", name="first")
        assert await outcome(client, "query", None) == ("UNAUTHENTICATED", 401)
    await auth.revoke_key(engine, "first")
    async with serving(real_app(database_url)) as restarted:  # revoking does not reopen it
        assert await outcome(restarted, "query", None) == ("UNAUTHENTICATED", 401)


async def test_no_keyless_access_when_bound_beyond_loopback(database_url: str) -> None:
    async with serving(real_app(database_url, host="0.0.0.0")) as client:
        assert await outcome(client, "query", None) == ("UNAUTHENTICATED", 401)


@pytest.mark.usefixtures("engine")
@pytest.mark.parametrize(
    ("base", "headers"),
    [
        ("http://192.168.1.20", {}),  # bound to loopback by the settings, reached elsewhere
        ("http://127.0.0.1", {"X-Forwarded-For": "203.0.113.9"}),  # a local reverse proxy
        ("http://127.0.0.1", {"Forwarded": "for=203.0.113.9"}),
        ("http://127.0.0.1", {"X-Real-IP": "203.0.113.9"}),
    ],
)
async def test_no_keyless_access_unless_the_request_came_over_loopback(
    database_url: str, base: str, headers: dict[str, str]
) -> None:
    async with serving(real_app(database_url)) as client:
        response = await client.post(f"{base}/graphql", json=OPERATIONS["query"], headers=headers)
    assert (response.status_code, codes(response.json())) == (401, ["UNAUTHENTICATED"])


def test_an_origin_is_loopback_only_with_both_ends_on_loopback() -> None:
    assert auth.Origin("127.0.0.1", "127.0.0.1").is_loopback
    assert auth.Origin("::1", "::1").is_loopback
    assert not auth.Origin("127.0.0.1", "127.0.0.1", forwarded=True).is_loopback
    assert not auth.Origin("10.0.0.2", "127.0.0.1").is_loopback
    assert not auth.Origin("127.0.0.1", "10.0.0.3").is_loopback
    assert not auth.Origin("/run/tidemill.sock", None).is_loopback  # uvicorn --uds
    assert not auth.Origin(None, None).is_loopback


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        return int(probe.getsockname()[1])


def _addresses_of_this_machine() -> set[str]:
    """Where clients reach a server bound to 0.0.0.0: every IPv4 address of every interface."""
    interfaces = psutil.net_if_addrs().values()
    return {a.address for addresses in interfaces for a in addresses if a.family == socket.AF_INET}


@contextlib.contextmanager
def tidemill_server(database_url: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """`tidemill <args>` (the installed command) in a process of its own, until it serves."""
    command = [str(Path(sys.executable).with_name("tidemill")), *args]
    env = {**os.environ, "TIDEMILL_DATABASE_URL": database_url, "COLUMNS": "200"}
    env.pop("TIDEMILL_HOST", None)
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)
        assert process.stdout is not None
        process.stdout.close()


def _wait_until_serving(process: subprocess.Popen[str], url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise AssertionError("the server did not start")


@pytest.mark.parametrize(
    "command", [["serve"], ["demo", "--customers", "3"]], ids=["serve", "demo"]
)
async def test_the_cli_bound_to_every_interface_demands_a_key(
    engine: AsyncEngine, database_url: str, command: list[str]
) -> None:
    port = _free_port()
    args = [*command, "--host", "0.0.0.0", "--port", str(port)]
    async with engine.begin() as connection:  # a rate there: start-up skips loading the ECB's
        await connection.execute(
            sa.insert(fx_rate).values(currency="EUR", day=date(2024, 1, 1), rate=1, source="user")
        )
    before = await table_counts(engine)
    with tidemill_server(database_url, *args) as process:
        await asyncio.to_thread(_wait_until_serving, process, f"http://127.0.0.1:{port}/healthz")
        after_start = await table_counts(engine)
        for address in _addresses_of_this_machine():
            for operation in ("query", "mutation"):
                url = f"http://{address}:{port}/graphql"
                response = await asyncio.to_thread(
                    httpx.post, url, json=OPERATIONS_OF_THE_REAL_SCHEMA[operation], timeout=30
                )
                assert response.status_code == 401, (address, operation, response.text)
                assert codes(response.json()) == ["UNAUTHENTICATED"]
    assert await table_counts(engine) == after_start  # the mutation did not run
    async with engine.connect() as connection:  # and the attribute it would create is absent
        tier = await connection.scalar(
            sa.select(sa.func.count()).select_from(attribute).where(attribute.c.key == "tier")
        )
    assert tier == 0
    assert before["attribute"] == 0


OPERATIONS_OF_THE_REAL_SCHEMA = {
    "query": {"query": "{ metrics { name } }"},
    "mutation": {
        "query": 'mutation { createAttribute(key: "tier", label: "Tier", type: STRING) { key } }'
    },
}


async def test_start_up_says_how_requests_get_in(
    engine: AsyncEngine, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tidemill.server"):
        async with serving(real_app(database_url)):
            pass
        async with serving(real_app(database_url, host="0.0.0.0")):
            pass
        await new_key(engine, "read")
        async with serving(real_app(database_url)):
            pass
    messages = [r.getMessage() for r in caplog.records if r.name == "tidemill.server"]
    files = len(list(QUERIES_DIR.glob("*.graphql")))
    assert messages[0] == f"{files} persisted queries registered from queries/"
    assert messages[1].startswith("keyless access: no API key exists and the server binds to")
    assert "every request is refused until you create one" in messages[3]
    assert messages[5] == "API keys required (Authorization: Bearer tm_...)"


# --- the CLI -------------------------------------------------------------------------------------


def _tidemill(database_url: str, *args: str) -> Any:
    env = {"TIDEMILL_DATABASE_URL": database_url, "COLUMNS": "200"}
    return CliRunner().invoke(tidemill_cli, list(args), env=env)


async def tidemill(database_url: str, *args: str) -> Any:
    return await asyncio.to_thread(_tidemill, database_url, *args)


@pytest.mark.usefixtures("engine")
async def test_keys_commands(database_url: str) -> None:
    created = await tidemill(
        database_url, "keys", "create", "--name", "dashboard", "--scope", "read"
    )
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("tm_")
    listed = await tidemill(database_url, "keys", "list", "-f", "json")
    [row] = json.loads(listed.stdout)
    assert (row["name"], row["scopes"], row["last used"], row["revoked"]) == (
        "dashboard",
        "read",
        "never",
        "",
    )
    assert key not in listed.output
    table = await tidemill(database_url, "keys", "list")
    assert "dashboard" in table.output
    assert key not in table.output
    revoked = await tidemill(database_url, "keys", "revoke", "dashboard")
    assert revoked.exit_code == 0
    assert "revoked key 'dashboard'" in revoked.output
    again = await tidemill(database_url, "keys", "revoke", "nobody")
    assert again.exit_code == 1
    assert "no API key named (or with id) 'nobody'" in again.output


@pytest.mark.usefixtures("engine")
async def test_keys_create_explains_bad_scopes(database_url: str) -> None:
    result = await tidemill(database_url, "keys", "create", "--name", "x", "--scope", "god")
    assert result.exit_code == 1
    assert "unknown scope 'god'; valid: read, write, admin, partner" in result.output
    assert "Traceback" not in result.output


async def test_the_cli_explains_a_missing_key(engine: AsyncEngine, database_url: str) -> None:
    await new_key(engine, "read")
    with running(real_app(database_url)) as server:
        result = await cli(server, "", "mrr")
    assert result.exit_code == 1
    assert "[UNAUTHENTICATED] this server needs an API key" in one_line(result.output)
    assert "set TIDEMILL_API_KEY (or api_key in .tidemill.toml)" in one_line(result.output)
    assert "Traceback" not in result.output


async def test_the_cli_explains_a_missing_scope(
    engine: AsyncEngine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(security, "load_documents", dict)  # the CLI's documents are not theirs
    key = await new_key(engine, "partner")
    with running(real_app(database_url)) as server:
        result = await cli(server, key, "mrr")
    assert result.exit_code == 1
    assert "[FORBIDDEN] partner keys may run only the registered" in one_line(result.output)
    assert "the API key's scopes do not allow this" in one_line(result.output)


async def test_the_cli_explains_a_refusal_that_is_not_graphql() -> None:
    async def refuse(_: Request) -> Response:
        return PlainTextResponse("no", status_code=403)

    with running(Starlette(routes=[Route("/graphql", refuse, methods=["POST"])])) as server:
        result = await cli(server, "tm_whatever", "mrr")
    assert result.exit_code == 1
    assert f"the server at {server}/graphql refused the request (HTTP 403)" in one_line(
        result.output
    )


def one_line(output: str) -> str:
    return " ".join(output.split())
