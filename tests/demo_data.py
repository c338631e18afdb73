"""The demo company in a database of its own, served by a real server, for the tests that run
the CLI and the README's examples on it. Its own database: the per-test truncation of
conftest.py never touches it, and nothing another test writes shows up in it."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from typer.testing import CliRunner, Result

from app import migrate
from app.cli import cli
from app.config import load_settings
from app.demo import DEMO_START, DemoResult, load_demo
from app.ingest.fx import ecb_rates, import_rates
from schema.asgi import create_app
from tests.conftest import session_engine
from tests.edge import running

PINNED = date(2026, 11, 30)  # the demo's "today" in these tests, so every run sees one company


async def _admin(url: str, statement: str) -> None:
    engine = create_async_engine(make_url(url).set(drivername="postgresql+asyncpg"))
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(sa.text(statement))
    await engine.dispose()


async def load_demo_rates(engine: AsyncEngine) -> None:
    """The shipped ECB rates of the demo's currencies over its span (what `tidemill demo`
    loads in full), so its EUR and GBP customers convert."""
    since = DEMO_START - timedelta(days=31)
    needed = {"EUR", "GBP"}
    await import_rates(
        engine, [r for r in ecb_rates("USD") if r.currency in needed and r.day >= since]
    )


async def _load(url: str, today: date) -> DemoResult:
    """Migrate, add the ECB rates of the demo's currencies, load the demo company."""
    engine = session_engine(url)
    try:
        await migrate.upgrade(engine)
        await load_demo_rates(engine)
        return await load_demo(engine, today=today)
    finally:
        await engine.dispose()


@contextlib.contextmanager
def demo_database(database_url: str, today: date = PINNED) -> Iterator[str]:
    """A new database on the test server holding the demo company at `today`; dropped after."""
    name = f"{make_url(database_url).database}_demo_{uuid.uuid4().hex[:6]}"
    url = make_url(database_url).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_admin(database_url, f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(_load(url, today))
        yield url
    finally:
        asyncio.run(_admin(database_url, f'DROP DATABASE "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def demo_server(database_url: str) -> Iterator[str]:
    """A real server (uvicorn on a free loopback port) over a fresh demo database."""
    with demo_database(database_url) as url:
        settings = load_settings(database_url=url, host="127.0.0.1", api_key="")
        with running(create_app(settings)) as server:
            yield server


def tidemill(server: str, *args: str, columns: int | None = 200) -> Result:
    """A `tidemill` command against `server`, in a console `columns` wide (None: no COLUMNS,
    as in a pipe). stdout and stderr are kept apart."""
    env: dict[str, Any] = {
        "TIDEMILL_URL": f"{server}/graphql",
        "TIDEMILL_API_KEY": "",
        "COLUMNS": None if columns is None else str(columns),
    }
    return CliRunner().invoke(cli, list(args), env=env)
