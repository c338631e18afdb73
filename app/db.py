"""Database connection: an explicit URL, or the embedded PostgreSQL (pgserver) in the data dir."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import socket
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app.config import Settings
from app.errors import UserError

log = logging.getLogger(__name__)
EMBEDDED_DATABASE = "tidemill"
_embedded_servers: dict[Path, Any] = {}


class BadDatabaseUrl(UserError):
    """A configured database URL that is not a PostgreSQL URL."""


def asyncpg_url(url: str) -> URL:
    """Any `postgresql://` URL as an asyncpg URL (the only driver Tidemill uses)."""
    expected = "expected postgresql://user:password@host:port/database"
    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        raise BadDatabaseUrl(f"not a database URL: {url!r} ({expected})") from None
    if parsed.get_backend_name() != "postgresql":
        shown = parsed.render_as_string(hide_password=True)
        raise BadDatabaseUrl(f"not a PostgreSQL URL: {shown!r} ({expected})")
    return parsed.set(drivername="postgresql+asyncpg")


def start_embedded(data_dir: Path) -> URL:
    """Start (or join) the embedded server in `data_dir/pg` and ensure the tidemill database."""
    pg_dir = data_dir / "pg"
    if pg_dir not in _embedded_servers:
        pg_dir.mkdir(parents=True, exist_ok=True)
        # platformdirs warns when XDG_RUNTIME_DIR is unset, on pgserver's import and use
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from pgserver.postgres_server import get_server  # only the embedded default

            server = get_server(str(pg_dir), cleanup_mode="stop")
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{EMBEDDED_DATABASE}';")
        if "(1 row)" not in exists:
            server.psql(f"CREATE DATABASE {EMBEDDED_DATABASE};")
        _embedded_servers[pg_dir] = server
    uri = _embedded_servers[pg_dir].get_uri(EMBEDDED_DATABASE)
    return asyncpg_url(uri)


def database_url(settings: Settings) -> URL:
    if settings.database_url:
        return asyncpg_url(settings.database_url)
    return start_embedded(settings.data_dir)


# Metric queries are a few big aggregations: give them memory to hash and sort in, parallel
# workers, and no JIT (its compile time dwarfs these queries, and their estimates often trip
# its cost threshold).
SESSION_SETTINGS = {
    "jit": "off",
    "work_mem": "64MB",
    # let the two passes over the movement table run in parallel workers
    "parallel_setup_cost": "100",
    "parallel_tuple_cost": "0.001",
    "min_parallel_table_scan_size": "0",
    # metric statements are few and parameter-sensitive (date ranges, intervals): plan each
    # execution for its values instead of falling back to a generic plan
    "plan_cache_mode": "force_custom_plan",
}


CONNECT_TIMEOUT_S = 10  # a database host that does not answer is an outage, not a hang
POOL_SIZE, POOL_OVERFLOW = 5, 5


_PING = contextvars.ContextVar("ping_on_checkout", default=True)


@contextlib.contextmanager
def unpinged() -> Iterator[None]:
    """Connections taken from a pool in this block are not pinged first (a round trip saved on
    each): for work that is safe to run again, and is, by its caller, when a connection turns
    out dead (`connection_lost`)."""
    token = _PING.set(False)
    try:
        yield
    finally:
        _PING.reset(token)


def connection_lost(error: BaseException | None) -> bool:
    """Whether `error` comes from a pooled connection found dead (its pool is then renewed)."""
    return any(
        isinstance(cause, exc.DBAPIError) and cause.connection_invalidated
        for cause in causes(error)
    )


def _ping_on_checkout(engine: AsyncEngine) -> None:
    """SQLAlchemy's pre-ping, except inside `unpinged()`: a pooled connection is checked before
    use; a dead one renews the pool (every connection older than it is replaced)."""
    dialect = engine.dialect

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def ping(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if not _PING.get():
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                raise exc.InvalidatePoolError() from error
            raise


def create_engine(settings: Settings, url: URL | None = None, **kwargs: Any) -> AsyncEngine:
    """The engine of a server or command: a pool of POOL_SIZE (+ POOL_OVERFLOW) connections,
    each checked before use (so a restarted database is reconnected to; not in `unpinged()`),
    and a bounded wait (`pool_timeout_ms`) for one. `url`: another server than the settings'
    (a replica)."""
    connect_args = {
        "server_settings": {
            **SESSION_SETTINGS,
            "statement_timeout": str(settings.statement_timeout_ms),
        },
        "timeout": CONNECT_TIMEOUT_S,
    }
    options: dict[str, Any] = {
        "pool_size": POOL_SIZE,
        "max_overflow": POOL_OVERFLOW,
        "pool_timeout": settings.pool_timeout_ms / 1000,
        "pool_pre_ping": True,
        "connect_args": connect_args,
    }
    options.update(kwargs)
    ping = options.pop("pool_pre_ping")
    engine = create_async_engine(url or database_url(settings), **options)
    if ping:
        _ping_on_checkout(engine)
    return engine


# SQLSTATEs of a server that is going away or full: class 08 (connection exception) by prefix
OUTAGE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
UNREACHABLE = "the database cannot be reached"
BUSY = "every database connection is busy"


def causes(error: BaseException | None) -> Iterator[BaseException]:
    """`error` and what caused it, through SQLAlchemy's (`orig`) and Python's chaining."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        yield error
        seen.add(id(error))
        context = None if error.__suppress_context__ else error.__context__
        error = getattr(error, "orig", None) or error.__cause__ or context


def _outage(error: BaseException) -> str | None:
    if isinstance(error, exc.TimeoutError):  # the pool's wait (pool_timeout) ran out
        return BUSY
    if isinstance(error, ConnectionError | TimeoutError | socket.gaierror):
        return UNREACHABLE
    sqlstate = str(getattr(error, "sqlstate", None) or "")
    if sqlstate.startswith("08") or sqlstate in OUTAGE_SQLSTATES:
        return UNREACHABLE
    return UNREACHABLE if getattr(error, "connection_invalidated", False) else None


def outage(error: BaseException | None) -> str | None:
    """Why the database could not serve a statement (unreachable, shutting down, every pooled
    connection busy), or None when `error` is no outage (a bug, a cancelled statement, ...).
    An outage is temporary: the pool reconnects on the next checkout once the server is back."""
    return next(filter(None, map(_outage, causes(error))), None)


# SQLSTATEs of a connection refused by the server: no such database (3D000), a login refused
# (class 28: a wrong password, a role that does not exist or may not connect)
REFUSED_SQLSTATES = frozenset({"3D000"})


def connection_refused(error: BaseException | None) -> str | None:
    """Why a connection could not be made or used, in the server's words (the database does
    not exist, the password is wrong, nothing listens there, ...), or None when `error` is not
    about the connection."""
    chain = list(causes(error))

    def refused(cause: BaseException) -> bool:
        sqlstate = str(getattr(cause, "sqlstate", None) or "")
        return sqlstate in REFUSED_SQLSTATES or sqlstate.startswith("28") or bool(_outage(cause))

    if not any(map(refused, chain)):
        return None
    innermost = chain[-1]  # the driver's or the socket's own words, not a wrapper's
    text = str(innermost).strip() or type(innermost).__name__
    return text.splitlines()[0]


class Database(Protocol):
    """What the services ask of an engine: a connection to read, a transaction to write."""

    def connect(self) -> AbstractAsyncContextManager[AsyncConnection]: ...
    def begin(self) -> AbstractAsyncContextManager[AsyncConnection]: ...


class SharedTransaction:
    """A `Database` over one connection in one open transaction: every service called through
    it works in that transaction (one GraphQL mutation operation, resolvers/context.py).
    `begin()` is a savepoint, so a step that fails leaves the connection usable, as a failed
    `engine.begin()` would; whoever opened the transaction commits or rolls back the whole.
    Uses are taken in turn (a lock), as one connection runs one statement at a time; a task
    may nest them. `after_commit` holds work to run once the transaction has committed, on
    other connections (a usage rollup's build, app/usage/builds.py)."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection
        self.after_commit: list[Callable[[], Awaitable[object]]] = []
        self._lock = asyncio.Lock()
        self._holder: asyncio.Task[Any] | None = None

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        task = asyncio.current_task()
        if task is not None and task is self._holder:
            yield self.connection
            return
        async with self._lock:
            self._holder = task
            try:
                yield self.connection
            finally:
                self._holder = None

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        async with self.connect() as connection, connection.begin_nested():
            yield connection


async def ping(connection: AsyncConnection) -> None:
    await connection.execute(sa.text("SELECT 1"))


def run_blocking(coro: Any) -> Any:
    """Run a coroutine from synchronous code (the CLI)."""
    return asyncio.run(coro)
