"""The result cache (app/datacache.py): a query's result is kept under (document, variables,
data version) and served again until any write transaction bumps the version."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.datacache import SharedVersion, read_version
from app.metrics.service import MetricsEngine
from app.metrics.usage import Aggregation
from app.reads import ReadRouter
from app.security import keys as auth
from app.usage import definitions
from app.usage.definitions import MetricInput, MetricUpdate
from app.usage.ingest import ingest
from tests.conftest import import_text
from tests.edge import _free_port as free_port
from tests.edge import bearer, new_key, real_app, serving

HEADER = "subscription_id,customer_id,start_date,end_date,monthly_amount\n"
DATA = HEADER + "s1,C1,2024-01-01,,100\ns2,C2,2024-02-01,,50\n"
DROP_C2 = (
    "DELETE FROM movement WHERE customer_id = (SELECT id FROM customer WHERE external_id = 'C2')"
)
SNAPSHOT = "query($at: Date!) { snapshot(at: $at) { mrr customers } }"


async def snapshot(client: httpx.AsyncClient, at: str, key: str | None = None) -> Any:
    response = await client.post(
        "/graphql", json={"query": SNAPSHOT, "variables": {"at": at}}, headers=bearer(key)
    )
    return without_plan(response.json())


def without_plan(body: Any) -> Any:
    """The answer without `extensions.plan` (rollup or scan: tests/test_rollups.py)."""
    body.pop("extensions", None)
    return body


async def write_unversioned(engine: AsyncEngine, statement: str) -> None:
    """A write the triggers do not see (replication role): what the cache would serve stale."""
    async with engine.begin() as connection:
        await connection.execute(sa.text("SET LOCAL session_replication_role = replica"))
        await connection.execute(sa.text(statement))


async def test_a_cached_result_is_served_until_a_write(
    engine: AsyncEngine, database_url: str
) -> None:
    await import_text(engine, DATA)
    # the write behind the version's back below drops movements: read them, not the rollups
    async with serving(real_app(database_url, rollups=False)) as client:
        first = await snapshot(client, "2024-03-01")
        assert first == {"data": {"snapshot": {"mrr": 15000, "customers": 2}}}
        # a customer's movements vanish behind the version's back: the cached result is served
        await write_unversioned(engine, DROP_C2)
        assert await snapshot(client, "2024-03-01") == first
        # other variables: another entry, computed now (without C2)
        assert (await snapshot(client, "2024-02-15"))["data"]["snapshot"] == {
            "mrr": 10000,
            "customers": 1,
        }
        # any write transaction bumps the version: the next request computes again
        version = await read_version(engine)
        await import_text(engine, DATA.replace(",100\n", ",300\n"))  # C1 only: C2 stays gone
        assert await read_version(engine) != version
        assert await snapshot(client, "2024-03-01") == {
            "data": {"snapshot": {"mrr": 30000, "customers": 1}}
        }


async def test_without_the_cache_every_request_is_computed(
    engine: AsyncEngine, database_url: str
) -> None:
    await import_text(engine, DATA)
    async with serving(real_app(database_url, result_cache_entries=0, rollups=False)) as client:
        first = await snapshot(client, "2024-03-01")
        await write_unversioned(engine, DROP_C2)
        assert await snapshot(client, "2024-03-01") != first


async def test_the_version_moves_once_per_write_transaction_and_not_for_reads(
    engine: AsyncEngine,
) -> None:
    await import_text(engine, DATA)
    before = await read_version(engine)
    async with engine.connect() as connection:
        await connection.execute(sa.text("SELECT count(*) FROM movement"))
    assert await read_version(engine) == before
    async with engine.begin() as connection:
        for value in ("a", "b", "c"):
            await connection.execute(
                sa.text("INSERT INTO plan (source, external_id, name) VALUES ('t', :v, :v)"),
                {"v": value},
            )
    after = await read_version(engine)
    assert before is not None
    assert after is not None
    assert after[0] > before[0]
    assert after[1] > before[1]
    # a failed (rolled back) write leaves it as it was
    async with engine.connect() as connection:
        transaction = await connection.begin()
        await connection.execute(sa.text("DELETE FROM plan WHERE source = 't'"))
        await transaction.rollback()
    assert await read_version(engine) == after


async def test_a_revoked_key_stops_at_once_despite_the_remembered_lookup(
    engine: AsyncEngine, database_url: str
) -> None:
    await import_text(engine, DATA)
    key = await new_key(engine, "read", name="dashboard")
    async with serving(real_app(database_url)) as client:
        assert "data" in await snapshot(client, "2024-03-01", key)
        assert "data" in await snapshot(client, "2024-03-01", key)  # remembered, and cached
        await auth.revoke_key(engine, "dashboard")
        refused = await snapshot(client, "2024-03-01", key)
        assert refused["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # recording a key's last use does not bump the version (it would empty every cache)
    version = await read_version(engine)
    async with engine.begin() as connection:
        await connection.execute(sa.text("UPDATE api_key SET last_used_at = now()"))
    assert await read_version(engine) == version


async def test_a_mutation_is_never_cached(engine: AsyncEngine, database_url: str) -> None:
    await import_text(engine, DATA)
    create = """mutation($name: String!) { createSegment(name: $name,
        definition: {field: "plan", values: ["x"]}) { id name } }"""
    async with serving(real_app(database_url)) as client:
        first = await client.post("/graphql", json={"query": create, "variables": {"name": "a"}})
        again = await client.post("/graphql", json={"query": create, "variables": {"name": "a"}})
    assert "data" in first.json(), first.json()
    assert again.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


def _serve_with_workers(database_url: str, port: int) -> subprocess.Popen[str]:
    command = [str(Path(sys.executable).with_name("tidemill")), "serve", "--workers", "2"]
    env = {**os.environ, "TIDEMILL_DATABASE_URL": database_url, "TIDEMILL_PORT": str(port)}
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _snapshots(url: str, count: int) -> list[Any]:
    """`count` requests on new connections (spread over the server's processes)."""
    body = {"query": SNAPSHOT, "variables": {"at": "2024-03-01"}}
    answers = [httpx.post(url, json=body, timeout=30).json() for _ in range(count)]
    return [without_plan(answer) for answer in answers]


async def test_server_processes_share_no_stale_result(
    engine: AsyncEngine, database_url: str
) -> None:
    await import_text(engine, DATA)
    port = free_port()
    process = _serve_with_workers(database_url, port)
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            with contextlib.suppress(httpx.TransportError):
                async with httpx.AsyncClient() as client:
                    health = await client.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                if health.status_code == 200:
                    break
            await asyncio.sleep(0.2)
        before = await asyncio.to_thread(_snapshots, url, 12)
        assert {str(result) for result in before} == {
            str({"data": {"snapshot": {"mrr": 15000, "customers": 2}}})
        }
        await import_text(engine, DATA.replace(",100\n", ",300\n"))  # by another process
        after = await asyncio.to_thread(_snapshots, url, 12)
        assert {str(result) for result in after} == {
            str({"data": {"snapshot": {"mrr": 35000, "customers": 2}}})
        }
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert output.count("Started server process") == 2, output


async def _kill_other_backends(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:  # every other backend of the database
        await connection.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    await engine.dispose()  # (this test's own pool lost its idle connections too)


@pytest.mark.parametrize("entries", [2_000, 0])
async def test_connections_killed_by_a_restart_are_replaced(
    engine: AsyncEngine, database_url: str, entries: int
) -> None:
    """With the cache (the answer is served again) and without: the query, which takes its
    connections unpinged, runs again on fresh ones."""
    await import_text(engine, DATA)
    async with serving(real_app(database_url, result_cache_entries=entries)) as client:
        assert "data" in await snapshot(client, "2024-03-01")
        await _kill_other_backends(engine)
        assert await snapshot(client, "2024-03-01") == {
            "data": {"snapshot": {"mrr": 15000, "customers": 2}}
        }
        await _kill_other_backends(engine)
        assert await snapshot(client, "2024-01-15") == {
            "data": {"snapshot": {"mrr": 10000, "customers": 1}}
        }


async def test_a_result_is_cached_per_caller(engine: AsyncEngine, database_url: str) -> None:
    first = await new_key(engine, "read", name="dashboard")
    second = await new_key(engine, "read", name="analyst")
    document = {"query": "{ viewer { name scopes } }"}
    async with serving(real_app(database_url)) as client:
        seen = await client.post("/graphql", json=document, headers=bearer(first))
        assert seen.json()["data"]["viewer"] == {"name": "dashboard", "scopes": ["read"]}
        # the same document at the same data version from another key: answered for that key
        again = await client.post("/graphql", json=document, headers=bearer(second))
        assert again.json()["data"]["viewer"] == {"name": "analyst", "scopes": ["read"]}


async def test_requests_that_arrive_during_a_version_read_share_the_next_one() -> None:
    started: list[int] = []
    running, release = asyncio.Event(), asyncio.Event()

    async def read() -> tuple[int, int]:
        started.append(len(started) + 1)
        number = len(started)
        if number == 1:
            running.set()
            await release.wait()
        return (number, number)

    shared = SharedVersion(read)
    first = asyncio.ensure_future(shared.current())
    await running.wait()  # the first read is under way (and blocked)
    later = [asyncio.ensure_future(shared.current()) for _ in range(5)]
    for _ in range(10):
        await asyncio.sleep(0)
    assert started == [1]  # they wait for the running read to end, then share one
    release.set()
    assert await first == (1, 1)
    # each arrived after read 1 had started: read 1 may miss a write committed before them
    assert await asyncio.gather(*later) == [(2, 2)] * 5
    assert shared.reads == 2
    assert await shared.current() == (3, 3)  # nothing under way: a read of its own


async def test_a_failed_version_read_fails_its_callers_and_not_the_next() -> None:
    calls: list[int] = []

    async def read() -> tuple[int, int]:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("gone")
        return (7, 7)

    shared = SharedVersion(read)
    with pytest.raises(OSError, match="gone"):
        await shared.current()
    assert await shared.current() == (7, 7)


async def test_a_cached_answer_is_the_same_bytes(engine: AsyncEngine, database_url: str) -> None:
    await import_text(engine, DATA)
    body = {"query": SNAPSHOT, "variables": {"at": "2024-03-01"}}
    async with serving(real_app(database_url)) as client:
        computed = await client.post("/graphql", json=body)
        served = [await client.post("/graphql", json=body) for _ in range(2)]
    assert computed.json()["data"] == {"snapshot": {"mrr": 15000, "customers": 2}}
    assert [answer.content for answer in served] == [computed.content] * 2
    assert {answer.headers["content-type"] for answer in served} == {"application/json"}


async def _two_clocks(engine: AsyncEngine) -> tuple[Any, Any]:
    """now() twice on one connection, 10 ms apart: equal inside a transaction block."""
    async with engine.connect() as connection:
        first = await connection.scalar(sa.text("SELECT now()"))
        await connection.execute(sa.text("SELECT pg_sleep(0.01)"))
        return first, await connection.scalar(sa.text("SELECT now()"))


async def test_queries_run_outside_a_transaction_block_and_writes_inside(
    engine: AsyncEngine,
) -> None:
    await engine.dispose()
    reader = ReadRouter(engine).primary.reader
    first, second = await _two_clocks(reader)
    assert second > first  # each statement its own transaction: no BEGIN, no ROLLBACK
    # the same pooled connection, back with the engine: a block again (writes rely on it)
    first, second = await _two_clocks(engine)
    assert second == first
    assert engine.pool.checkedin() == 1  # type: ignore[attr-defined]


async def test_identical_requests_arriving_together_share_one_computation(
    engine: AsyncEngine, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dashboard refreshed by many people at once (or a thundering herd after a write): the
    same query at the same version is computed once and every waiting request gets it; other
    variables are computed apart; without the cache, every request is computed."""
    await import_text(engine, DATA)
    computed: list[date] = []
    original = MetricsEngine.snapshot

    async def slow_snapshot(self: MetricsEngine, at: date, *args: Any) -> Any:
        computed.append(at)
        await asyncio.sleep(0.3)  # long enough for the others to arrive meanwhile
        return await original(self, at, *args)

    monkeypatch.setattr(MetricsEngine, "snapshot", slow_snapshot)
    async with serving(real_app(database_url)) as client:
        answers = await asyncio.gather(
            *(snapshot(client, "2024-03-01") for _ in range(6)),
            *(snapshot(client, "2024-01-15") for _ in range(3)),
        )
    assert sorted(computed) == [date(2024, 1, 15), date(2024, 3, 1)]
    assert answers[:6] == [{"data": {"snapshot": {"mrr": 15000, "customers": 2}}}] * 6
    assert answers[6:] == [{"data": {"snapshot": {"mrr": 10000, "customers": 1}}}] * 3
    computed.clear()
    async with serving(real_app(database_url, result_cache_entries=0)) as client:
        await asyncio.gather(*(snapshot(client, "2024-03-01") for _ in range(3)))
    assert len(computed) == 3


async def test_usage_events_and_definitions_move_the_version(
    engine: AsyncEngine, database_url: str
) -> None:
    """A cached usage value is computed again after events arrive (in a month whose partition
    the ingest creates then, too) and after its definition changes."""

    def call(ident: str, at: str, tokens: int) -> dict[str, Any]:
        return {
            "id": ident,
            "customer": "acme",
            "name": "api_call",
            "timestamp": at,
            "properties": {"tokens": tokens},
        }

    assert (await ingest(engine, [call("a", "2026-09-10T00:00:00Z", 5)])).accepted == 1
    metric = await definitions.create(
        engine, MetricInput("tokens", "api_call", Aggregation.SUM, "tokens")
    )
    query = 'query($id: ID!) { usageMetricValue(id: $id, customerId: "1") { value } }'

    async def tokens(client: httpx.AsyncClient) -> Any:
        body = {"query": query, "variables": {"id": str(metric.id)}}
        answer = (await client.post("/graphql", json=body)).json()
        return answer["data"]["usageMetricValue"]["value"]

    async with serving(real_app(database_url)) as client:
        assert await tokens(client) == 5
        before = await read_version(engine)
        assert (await ingest(engine, [call("b", "2026-11-10T00:00:00Z", 7)])).accepted == 1
        assert await read_version(engine) != before
        assert await tokens(client) == 12
        await definitions.update(engine, metric.id, MetricUpdate(property="missing"))
        assert await tokens(client) == 0


async def test_writers_wait_for_each_other_only_in_the_same_slot(engine: AsyncEngine) -> None:
    """The data version and the customer tally are kept in slots, the backend's pid % 64 or
    the one its transaction names (`tidemill.slot`, migration 0027): two open transactions
    in different slots write side by side; in the same one the second waits for the first
    (here: gives up after its lock timeout). Side-by-side chunks of an import rely on it."""

    async def insert_customer(connection: AsyncConnection, slot: int, name: str) -> None:
        await connection.execute(sa.select(sa.func.set_config("tidemill.slot", str(slot), True)))
        await connection.execute(sa.text("SET LOCAL lock_timeout = '300ms'"))
        await connection.execute(
            sa.text("INSERT INTO customer (source, external_id) VALUES ('t', :name)"),
            {"name": name},
        )

    async with engine.connect() as first, engine.connect() as second:
        await first.begin()
        await insert_customer(first, 70, "a")
        async with second.begin():
            await insert_customer(second, 71, "b")  # its own slot: no wait
        with pytest.raises(DBAPIError, match="lock timeout"):
            async with second.begin():
                await insert_customer(second, 70, "c")  # the first's slot: waits for it
        await first.commit()
    async with engine.connect() as connection:
        slots = "SELECT slot, customers FROM customer_tally WHERE slot >= 64 ORDER BY slot"
        assert [tuple(row) for row in await connection.execute(sa.text(slots))] == [
            (70, 1),
            (71, 1),
        ]
        versions = "SELECT slot FROM data_version WHERE slot >= 64 ORDER BY slot"
        assert list(await connection.scalars(sa.text(versions))) == [70, 71]
