"""Test fixtures: a real PostgreSQL (TIDEMILL_TEST_DATABASE_URL, else an embedded pgserver),
one fresh migrated database per run, emptied before each test that uses it.

No test may depend on another having run (pytest-randomly shuffles them): whatever a test
needs it gets from its fixtures, after `clean` has emptied the database. Fixtures that hold
state observed from the database (a server, whose keyless-access check is remembered for its
life) are therefore function-scoped. The developer's own configuration (TIDEMILL_* variables,
`.tidemill.toml` here or in the home directory) is hidden from the whole run."""

from __future__ import annotations

import io
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from _pytest.nodeid import NodeId  # pytest >= 9.2: an item's structured id
from graphql import GraphQLFormattedError
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app import config, migrate
from app.db import SESSION_SETTINGS, asyncpg_url
from app.ingest import chunked
from app.ingest.subscriptions import ImportResult, load_periods
from app.metrics.service import MetricsEngine
from connectors.csv.subscriptions import read_periods
from resolvers.context import Context
from schema import schema

# A pytest-xdist worker starts with COLUMNS=80 and LINES=24 in its environment; the CLI's
# module-level rich consoles would fix their width from them when first imported, and the CLI
# tests, which pass COLUMNS=200 per command, would see lines wrapped at 80. Hide them before any
# test module imports the CLI, as a serial run does.
for _size in ("COLUMNS", "LINES"):
    os.environ.pop(_size, None)

# dbt Labs' mrr-playbook sample (MIT), shipped with its notice: see tests/data/mrr-playbook/README.md
PLAYBOOK = Path(__file__).resolve().parent / "data" / "mrr-playbook" / "subscription_periods.csv"
TABLES = (
    "movement",
    "mrr_change",
    "subscription_version",
    "subscription",
    "plan",
    "customer",
    "import_run",
    "raw_event",
    "fx_rate",
    "ledger_currency",
    "movement_scope",
    "trial",
    "customer_attribute",
    "attribute",
    "segment",
    "api_key",
    "persisted_query",
    "subscription_item",
    "source_object",
    "source",
    "usage_event",
    "usage_event_key",
    "usage_rollup_value",
    "usage_rollup_day",
    "usage_rollup",
    "usage_metric",
    "usage_import",
    "rollup",
    "cohort_rollup",
    "rollup_rebuild",
    "rollup_dimension",
    "rollup_build",
    "rollup_build_part",
    "import_job",
    "data_version",
    "customer_tally",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each of schemathesis' generated tests (tests/test_fuzz.py) its own node id.

    schemathesis names them `test_...[Query.series]`, but pytest 9.2 builds an item's id from
    its callspec, which they lack, so all 39 share the bare function's id. pytest-xdist schedules
    tests by id: it would run one of them and report that one alone. The id is set to the name
    pytest shows, as a parametrized test's is."""
    for item in items:
        wanted = f"{item.nodeid.rpartition('::')[0]}::{item.name}"
        if item.nodeid != wanted:
            item._id = NodeId.parse(wanted)


def _server_url() -> str:
    explicit = os.environ.get("TIDEMILL_TEST_DATABASE_URL")
    if explicit:
        return explicit
    from pgserver.postgres_server import get_server

    server = get_server(tempfile.mkdtemp(prefix="tidemill-test-pg-"), cleanup_mode="delete")
    return str(server.get_uri("postgres"))


@pytest.fixture(scope="session", autouse=True)
def no_user_configuration() -> Iterator[None]:
    """Settings come from defaults and what each test passes, never from the developer's
    environment or `.tidemill.toml` (an `api_key` there would be sent by every CLI test)."""
    with pytest.MonkeyPatch.context() as patch:
        for key in config.ENV_KEYS:
            patch.delenv(key, raising=False)
        patch.setattr(config, "CONFIG_FILES", ())
        yield


def session_engine(url: str | URL) -> AsyncEngine:
    """An engine on `url` whose connections have the session settings the server and the
    commands use (app.db.SESSION_SETTINGS), so tests run the statements as they run. JIT is off
    among them: on, it compiles for most of a second each statement whose estimate crosses its
    threshold, and a webhook's recompute took a second and a half instead of a tenth."""
    settings = {"server_settings": dict(SESSION_SETTINGS)}
    url = make_url(url).set(drivername="postgresql+asyncpg")
    return create_async_engine(url, connect_args=settings)


@pytest.fixture(scope="session")
def database() -> Iterator[str]:
    """A fresh database on the test server, dropped at the end of the run (its URL)."""
    import asyncio

    admin_url = asyncpg_url(_server_url())
    name = f"tidemill_test_{uuid.uuid4().hex[:8]}"

    async def admin(statement: str) -> None:
        engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as connection:
            await connection.execute(sa.text(statement))
        await engine.dispose()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name)
    yield url.render_as_string(hide_password=False)
    asyncio.run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
async def engine(database: str) -> AsyncIterator[AsyncEngine]:
    """The migrated test database."""
    engine = session_engine(database)
    await migrate.upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def database_url(database: str, engine: AsyncEngine) -> str:
    """The URL of the migrated test database, emptied for this test, for what connects by
    itself (a server, the CLI). Function-scoped, so nothing started from it outlives a test."""
    return database


@pytest.fixture(autouse=True)
async def clean(request: pytest.FixtureRequest) -> None:
    """Empty every table before a test that uses the database (through `engine` or its URL)."""
    if "engine" not in request.fixturenames:
        return
    engine: AsyncEngine = request.getfixturevalue("engine")
    async with engine.begin() as connection:
        await connection.execute(sa.text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY"))
        # an unfinished chunked import's staging tables (its job is gone with import_job)
        await connection.execute(sa.text(DROP_STAGING))
    # the indexes an interrupted first import left dropped (app.ingest.chunked), as migrated
    await chunked.build_deferred(engine, lambda _stage, _count: None)


DROP_STAGING = """
DO $$
DECLARE staged text;
BEGIN
    FOR staged IN SELECT relname FROM pg_class
                  WHERE relkind IN ('r', 'p') AND relname ~ '^import_(stage|rollup|cohorts)_[0-9]+$'
    LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I', staged);
    END LOOP;
END $$
"""


@pytest.fixture
def metrics(engine: AsyncEngine) -> MetricsEngine:
    return MetricsEngine(engine)


async def import_text(engine: AsyncEngine, text: str, name: str = "fixture.csv") -> ImportResult:
    """Import CSV text through the same parser and loader as `tidemill import subscriptions`."""
    header, rows = read_periods(io.StringIO(text), "USD")
    assert not header.problems(), header.problems()
    return await load_periods(engine, rows, filename=name, sha256="test")


async def execute(
    metrics: MetricsEngine, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run a GraphQL document on the real schema; fail on errors."""
    result = await schema.execute(
        query, variable_values=variables, context_value=Context(metrics=metrics)
    )
    assert result.errors is None, [error.message for error in result.errors]
    assert result.data is not None
    return result.data


async def execute_errors(
    metrics: MetricsEngine, query: str, variables: dict[str, Any] | None = None
) -> list[GraphQLFormattedError]:
    """Run a GraphQL document expected to fail; its errors as the client sees them."""
    result = await schema.execute(
        query, variable_values=variables, context_value=Context(metrics=metrics)
    )
    assert result.errors, "expected GraphQL errors"
    return [error.formatted for error in result.errors]


async def table_counts(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as connection:
        return {
            table: int(await connection.scalar(sa.text(f"SELECT count(*) FROM {table}")) or 0)
            for table in TABLES
        }
