"""Read replicas (TIDEMILL_READ_DATABASE_URLS): read-only GraphQL is answered by a streaming
replica, everything that writes by the primary; a write shows on the replica once replayed.
On a real primary + replica pair built from the machine's PostgreSQL (tests/replicas.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app import migrate
from app.datacache import read_version
from app.db import asyncpg_url
from tests.conftest import import_text
from tests.edge import real_app, serving
from tests.replicas import Pair, primary_and_replica

HEADER = "subscription_id,customer_id,start_date,end_date,monthly_amount\n"
DATA = HEADER + "s1,C1,2024-01-01,,100\ns2,C2,2024-02-01,,50\n"
SNAPSHOT = '{ snapshot(at: "2024-03-01") { mrr customers } }'
SEGMENTS = "{ segments { name } }"


def engine_of(url: str) -> AsyncEngine:
    return create_async_engine(make_url(str(asyncpg_url(url))))


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    with primary_and_replica() as built:
        admin = create_async_engine(asyncpg_url(built.primary()), isolation_level="AUTOCOMMIT")
        async with admin.connect() as connection:
            await connection.execute(sa.text("CREATE DATABASE tidemill"))
        await admin.dispose()
        yield built


async def replayed(primary: AsyncEngine, replica: AsyncEngine) -> None:
    """Wait until the replica has replayed everything the primary has committed."""
    async with primary.connect() as connection:
        target = await connection.scalar(sa.text("SELECT pg_current_wal_lsn()::text"))
    deadline = time.monotonic() + 60
    while True:
        try:
            async with replica.connect() as connection:
                done = await connection.scalar(
                    sa.text("SELECT pg_last_wal_replay_lsn() >= CAST(:target AS text)::pg_lsn"),
                    {"target": target},
                )
            if done:
                return
        except sa.exc.DBAPIError:  # the database may not exist there yet
            pass
        assert time.monotonic() < deadline, "the replica did not catch up"
        await asyncio.sleep(0.1)


async def post(client: httpx.AsyncClient, query: str) -> Any:
    """The answer without `extensions.plan` (rollup or scan: tests/test_rollups.py)."""
    answer = (await client.post("/graphql", json={"query": query})).json()
    answer.pop("extensions", None)
    return answer


async def test_reads_go_to_the_replica_and_writes_to_the_primary(pair: Pair) -> None:
    primary = engine_of(pair.primary("tidemill"))
    replica = engine_of(pair.replica("tidemill"))
    try:
        await migrate.upgrade(primary)
        await import_text(primary, DATA)
        await replayed(primary, replica)
        async with replica.connect() as connection:
            assert await connection.scalar(sa.text("SELECT pg_is_in_recovery()")) is True
        app = real_app(pair.primary("tidemill"), read_database_urls=pair.replica("tidemill"))
        async with serving(app) as client:
            assert await post(client, SNAPSHOT) == {
                "data": {"snapshot": {"mrr": 15000, "customers": 2}}
            }
            # the replica stops replaying: a write on the primary is not seen by the reads
            async with replica.connect() as connection:
                await connection.execute(sa.text("SELECT pg_wal_replay_pause()"))
            await import_text(primary, DATA.replace(",100\n", ",300\n"))
            assert await read_version(primary) != await read_version(replica)
            assert await post(client, SNAPSHOT) == {
                "data": {"snapshot": {"mrr": 15000, "customers": 2}}
            }
            # a mutation goes to the primary (a replica would refuse it: read-only)
            created = await post(
                client,
                'mutation { createSegment(name: "Pro", definition: {field: "plan", '
                'values: ["Pro"]}) { name } }',
            )
            assert created == {"data": {"createSegment": {"name": "Pro"}}}
            assert await post(client, SEGMENTS) == {"data": {"segments": []}}
            # replayed: the write is visible through the replica
            async with replica.connect() as connection:
                await connection.execute(sa.text("SELECT pg_wal_replay_resume()"))
            await replayed(primary, replica)
            assert await post(client, SNAPSHOT) == {
                "data": {"snapshot": {"mrr": 35000, "customers": 2}}
            }
            assert await post(client, SEGMENTS) == {"data": {"segments": [{"name": "Pro"}]}}
    finally:
        await primary.dispose()
        await replica.dispose()
