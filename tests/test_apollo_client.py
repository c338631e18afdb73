"""A real client: Apollo Client with its persisted-queries link (tests/apollo/run-query.mjs, run
by Node) against a real server. Skipped, with the reason, only where `node` is missing."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import QUERIES_DIR
from app.security.persisted import sha256_hex
from tests.conftest import PLAYBOOK, import_text
from tests.edge import new_key, real_app, running

APOLLO = Path(__file__).resolve().parent / "apollo"
SNAPSHOT = (QUERIES_DIR / "MrrSnapshot.graphql").read_text()
ADHOC = "query Plans { metrics { name unit } }"


@pytest.fixture(scope="module")
def node() -> str:
    """Node, with the locked npm dependencies installed (`npm ci`) on first use."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("`node` is not installed: the Apollo Client check needs Node.js 20+")
    if not (APOLLO / "node_modules").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("`npm` is not installed: it installs the Apollo Client check's packages")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=APOLLO, check=True, timeout=600)
    return node


def _apollo(node: str, options: dict[str, Any]) -> dict[str, Any]:
    command = [node, "run-query.mjs", json.dumps(options)]
    done = subprocess.run(command, cwd=APOLLO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


async def apollo(node: str, server: str, key: str, document: str, **options: Any) -> Any:
    options = {"url": f"{server}/graphql", "key": key, "document": document} | options
    return await asyncio.to_thread(_apollo, node, options)


@pytest.fixture
async def playbook(engine: AsyncEngine) -> None:
    await import_text(engine, PLAYBOOK.read_text())


@pytest.mark.usefixtures("playbook")
async def test_a_partner_runs_a_registered_query_by_hash_post_and_get(
    node: str, engine: AsyncEngine, database_url: str
) -> None:
    key = await new_key(engine, "partner")
    with running(real_app(database_url)) as server:
        post = await apollo(node, server, key, SNAPSHOT, variables={"at": "2019-04-30"})
        get = await apollo(node, server, key, SNAPSHOT, variables={"at": "2019-04-30"}, get=True)
    for result, method in ((post, "POST"), (get, "GET")):
        assert result["errors"] is None, result
        snapshot = result["data"]["snapshot"]
        assert (snapshot["mrr"], snapshot["customers"], snapshot["__typename"]) == (
            89500,
            17,
            "Point",
        )
        [request] = result["requests"]  # the registered hash was enough: no document sent
        assert (request["method"], request["hashOnly"]) == (method, True)


async def test_a_read_key_registers_a_new_document_the_apq_way(
    node: str, engine: AsyncEngine, database_url: str
) -> None:
    key = await new_key(engine, "read")
    with running(real_app(database_url)) as server:
        first = await apollo(node, server, key, ADHOC, get=True)
        second = await apollo(node, server, key, ADHOC, get=True)
    assert first["data"] == second["data"]
    assert first["data"]["metrics"][0]["name"] == "mrr"
    assert [(r["method"], r["hashOnly"]) for r in first["requests"]] == [
        ("GET", True),  # PERSISTED_QUERY_NOT_FOUND
        ("POST", False),  # the document with its hash: registered, run
    ]
    assert [(r["method"], r["hashOnly"]) for r in second["requests"]] == [("GET", True)]
    assert first["requests"][0]["hash"] != sha256_hex(ADHOC)  # Apollo added __typename


async def test_a_partner_cannot_run_an_ad_hoc_document(
    node: str, engine: AsyncEngine, database_url: str
) -> None:
    key = await new_key(engine, "partner")
    with running(real_app(database_url)) as server:
        result = await apollo(node, server, key, ADHOC)
    assert result["data"] is None
    assert [e["extensions"]["code"] for e in result["errors"]] == ["FORBIDDEN"]
    assert [r["hashOnly"] for r in result["requests"]] == [True, False]
