"""Persisted queries (Apollo's APQ protocol): the registered `queries/` set, hash-only requests
over POST and GET, APQ registration shared through the database, partner restrictions, and the
CLI's hash-first requests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.cli.client import persisted_requests
from app.config import QUERIES_DIR
from app.errors import UserError
from app.security import persisted
from app.security.persisted import (
    PersistedQueryNotFound,
    Registry,
    load_documents,
    sha256_hex,
)
from schema import security
from tests.conftest import PLAYBOOK, import_text
from tests.edge import Recorder, bearer, cli, codes, new_key, real_app, running, serving

DOCUMENTS = load_documents()
SNAPSHOT = next(d for d in DOCUMENTS.values() if d.name == "MrrSnapshot")
SERIES = next(d for d in DOCUMENTS.values() if d.name == "MrrSeries")  # `tidemill mrr --at`
AT = {"at": "2019-04-30"}
EXPECTED = {
    "snapshot": {"date": "2019-04-30", "mrr": 89500, "arr": 1074000, "customers": 17, "arpa": 5265}
}
ADHOC = "query Plans { metrics { name unit } }"


def apq(sha256: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256}}


def by_hash(sha256: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"extensions": apq(sha256), "variables": variables or {}}


def as_get(sha256: str, variables: dict[str, Any]) -> dict[str, str]:
    return {"extensions": json.dumps(apq(sha256)), "variables": json.dumps(variables)}


@pytest.fixture
async def playbook(engine: AsyncEngine) -> None:
    await import_text(engine, PLAYBOOK.read_text())


async def stored_hashes(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        return list(await connection.scalars(sa.text("SELECT sha256 FROM persisted_query")))


# --- the registry --------------------------------------------------------------------------------


def test_every_query_file_is_registered_under_the_sha256_of_its_canonical_text() -> None:
    names = sorted(path.stem for path in QUERIES_DIR.glob("*.graphql"))
    assert sorted({d.name for d in DOCUMENTS.values()}) == names
    for path in QUERIES_DIR.glob("*.graphql"):
        text = persisted.canonical(path.read_text())
        assert DOCUMENTS[sha256_hex(text)].text == text


def test_the_form_apollo_sends_is_registered_too() -> None:
    apollo = persisted.as_apollo_sends("query Q { snapshot { date mrr } metrics { name } }")
    assert apollo == (
        "query Q {\n  snapshot {\n    date\n    mrr\n    __typename\n  }\n"
        "  metrics {\n    name\n    __typename\n  }\n}"
    )
    assert sha256_hex(persisted.as_apollo_sends(SNAPSHOT.text)) in DOCUMENTS


def test_a_broken_query_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "Broken.graphql").write_text("query Broken { snapshot {")
    with pytest.raises(UserError, match=r"persisted query .*Broken.graphql: Syntax Error"):
        load_documents(tmp_path)


def test_the_persisted_query_extension_is_checked() -> None:
    assert persisted.requested_hash(None) is None
    assert persisted.requested_hash({"other": 1}) is None
    assert persisted.requested_hash(apq("a" * 64)) == "a" * 64
    for bad in ({"version": 2, "sha256Hash": "a" * 64}, {"version": 1, "sha256Hash": "xyz"}, "v1"):
        with pytest.raises(UserError):
            persisted.requested_hash({"persistedQuery": bad})


# --- over HTTP -----------------------------------------------------------------------------------

# the snapshot is one whole day: it reads the per-period aggregates (extensions.plan)
ANSWER = {"data": EXPECTED, "extensions": {"plan": "rollup"}}


@pytest.mark.usefixtures("playbook")
async def test_hash_only_over_post_and_get(engine: AsyncEngine, database_url: str) -> None:
    key = await new_key(engine, "read")
    async with serving(real_app(database_url)) as client:
        post = await client.post("/graphql", json=by_hash(SNAPSHOT.sha256, AT), headers=bearer(key))
        get = await client.get(
            "/graphql", params=as_get(SNAPSHOT.sha256, AT), headers=bearer(key) | {"accept": "*/*"}
        )
    assert post.json() == ANSWER
    assert get.json() == ANSWER  # a hash on GET is a query, never the GraphiQL page


async def test_unknown_hash_and_mismatched_hash(engine: AsyncEngine, database_url: str) -> None:
    key = await new_key(engine, "read")
    async with serving(real_app(database_url)) as client:
        unknown = await client.post("/graphql", json=by_hash("0" * 64), headers=bearer(key))
        mismatch = await client.post(
            "/graphql",
            json={"query": ADHOC, "extensions": apq(SNAPSHOT.sha256)},
            headers=bearer(key),
        )
    assert unknown.status_code == 200  # Apollo clients then resend with the document
    assert unknown.json()["errors"][0] == {
        "message": "PersistedQueryNotFound",
        "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"},
    }
    assert codes(mismatch.json()) == ["BAD_USER_INPUT"]
    assert "is not the sha256 of the query" in mismatch.text
    assert await stored_hashes(engine) == []


async def test_apq_registration_is_shared_by_every_server_process(
    engine: AsyncEngine, database_url: str
) -> None:
    key = await new_key(engine, "read")
    sha256 = sha256_hex(ADHOC)
    async with serving(real_app(database_url)) as first:
        missing = await first.post("/graphql", json=by_hash(sha256), headers=bearer(key))
        registered = await first.post(
            "/graphql", json={"query": ADHOC, "extensions": apq(sha256)}, headers=bearer(key)
        )
    async with serving(real_app(database_url)) as second:  # another process, same database
        get = await second.get("/graphql", params=as_get(sha256, {}), headers=bearer(key))
    assert codes(missing.json()) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert registered.json()["data"]["metrics"][0] == {"name": "mrr", "unit": "cents"}
    assert get.json() == registered.json()
    assert await stored_hashes(engine) == [sha256]


async def test_a_document_that_does_not_run_is_not_stored(
    engine: AsyncEngine, database_url: str
) -> None:
    key = await new_key(engine, "read")
    broken = "{ metrics { colour } }"
    async with serving(real_app(database_url)) as client:
        response = await client.post(
            "/graphql",
            json={"query": broken, "extensions": apq(sha256_hex(broken))},
            headers=bearer(key),
        )
    assert codes(response.json()) == ["BAD_USER_INPUT"]
    assert await stored_hashes(engine) == []


@pytest.mark.usefixtures("playbook")
async def test_partner_keys_run_only_the_registered_set(
    engine: AsyncEngine, database_url: str
) -> None:
    partner = await new_key(engine, "partner")
    reader = await new_key(engine, "read")
    stored = sha256_hex(ADHOC)
    async with serving(real_app(database_url)) as client:
        await client.post(
            "/graphql", json={"query": ADHOC, "extensions": apq(stored)}, headers=bearer(reader)
        )
        registered = await client.post(
            "/graphql", json=by_hash(SNAPSHOT.sha256, AT), headers=bearer(partner)
        )
        with_document = await client.post(
            "/graphql",
            json={"query": SNAPSHOT.text, "extensions": apq(SNAPSHOT.sha256), "variables": AT},
            headers=bearer(partner),
        )
        apq_stored = await client.post("/graphql", json=by_hash(stored), headers=bearer(partner))
        adhoc = await client.post("/graphql", json={"query": ADHOC}, headers=bearer(partner))
        adhoc_apq = await client.post(
            "/graphql", json={"query": ADHOC, "extensions": apq(stored)}, headers=bearer(partner)
        )
    assert registered.json() == ANSWER
    assert with_document.json() == ANSWER
    assert codes(apq_stored.json()) == ["PERSISTED_QUERY_NOT_FOUND"]  # not theirs to run
    for refused in (adhoc, adhoc_apq):
        assert refused.status_code == 403
        assert refused.json()["errors"][0] == {
            "message": "partner keys may run only the registered persisted queries",
            "extensions": {"code": "FORBIDDEN"},
        }


# --- the CLI client ------------------------------------------------------------------------------


def test_the_cli_hashes_what_gql_sends() -> None:
    hash_only, full = persisted_requests("MrrSnapshot", {"at": None})
    assert "query" not in hash_only.payload
    assert full.payload["query"] == SNAPSHOT.text
    assert hash_only.payload["extensions"] == apq(SNAPSHOT.sha256) == full.payload["extensions"]
    assert hashlib.sha256(full.payload["query"].encode()).hexdigest() == SNAPSHOT.sha256


def sent(recorder: Recorder) -> list[dict[str, Any]]:
    return [json.loads(body) for body in recorder.bodies if body]


@pytest.mark.usefixtures("playbook")
async def test_the_cli_sends_the_hash_alone_first(engine: AsyncEngine, database_url: str) -> None:
    key = await new_key(engine, "partner")
    recorder = Recorder(real_app(database_url))
    with running(recorder) as server:
        result = await cli(server, key, "mrr", "--at", "2019-04-30", "-f", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["mrr"] == 89500
    [request] = sent(recorder)
    assert "query" not in request
    assert request["extensions"] == apq(SERIES.sha256)


@pytest.mark.usefixtures("playbook")
async def test_the_cli_sends_the_document_when_the_server_lacks_it(
    engine: AsyncEngine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(security, "load_documents", dict)  # a server with other queries/
    key = await new_key(engine, "read")
    recorder = Recorder(real_app(database_url))
    with running(recorder) as server:
        result = await cli(server, key, "mrr", "--at", "2019-04-30", "-f", "json")
    assert result.exit_code == 0, result.output
    first, second = sent(recorder)
    assert "query" not in first
    assert second["query"] == SERIES.text
    assert await stored_hashes(engine) == [SERIES.sha256]


async def test_client_documents_are_capped_oldest_first(engine: AsyncEngine) -> None:
    registry = Registry(engine, {}, max_stored=2)
    texts = [f'{{ snapshot(at: "2024-01-0{day}") {{ mrr }} }}' for day in (1, 2, 3)]
    for text in texts:
        await registry.store(sha256_hex(text), text)
        await registry.store(sha256_hex(text), text)  # a repeat keeps the one stored
    assert [await registry.stored(sha256_hex(text)) for text in texts] == [None, *texts[1:]]
    with pytest.raises(PersistedQueryNotFound):
        await registry.resolve(None, sha256_hex(texts[0]), partner=False)
