"""Where read-only GraphQL goes: PostgreSQL streaming replicas (`TIDEMILL_READ_DATABASE_URLS`,
comma-separated, taken in turn), or the primary when there are none. Everything that writes
(mutations, imports, keys, the inbox) goes to the primary (`TIDEMILL_DATABASE_URL`).

A replica serves what it has replayed: a write shows there a moment after it commits on the
primary (usually milliseconds). A request reads the data version on the server that answers
it, so cached results follow each server's own progress (app/datacache.py).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.datacache import SharedVersion, read_version
from app.db import asyncpg_url, create_engine


@dataclass(frozen=True, eq=False)
class Target:
    name: str  # "primary", "replica 1", ...
    engine: AsyncEngine
    # where its data version is read: a pool without the pre-ping round trip (the version read
    # is one short statement, retried once on a connection found dead: app.datacache)
    versions: AsyncEngine | None = None
    # `engine` for queries: no transaction block (a BEGIN and a ROLLBACK, two round trips,
    # saved on each connection's use; at READ COMMITTED a block gives a query nothing more)
    reader: AsyncEngine = field(init=False)
    # its data version, one read shared by the requests that arrive while another runs
    version: SharedVersion = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "reader", autocommit(self.engine))
        read = functools.partial(read_version, self.version_engine)
        object.__setattr__(self, "version", SharedVersion(read))

    @property
    def version_engine(self) -> AsyncEngine:
        return self.versions or self.reader


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """`engine` (the same pool) running each statement on its own, without BEGIN/ROLLBACK."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def _target(name: str, engine: AsyncEngine, versions: AsyncEngine | None) -> Target:
    return Target(name, engine, versions)


class ReadRouter:
    def __init__(
        self,
        primary: AsyncEngine,
        replicas: list[AsyncEngine] | None = None,
        versions: list[AsyncEngine | None] | None = None,
    ) -> None:
        engines = [primary, *(replicas or [])]
        found = list(versions or []) + [None] * (len(engines) - len(versions or []))
        self.primary = _target("primary", primary, found[0])
        self.replicas = [
            _target(f"replica {n}", engine, found[n]) for n, engine in enumerate(engines[1:], 1)
        ]
        self._turns = itertools.cycle(self.replicas) if self.replicas else None

    def choose(self) -> Target:
        """The target of the next read-only operation."""
        return next(self._turns) if self._turns is not None else self.primary

    async def dispose(self) -> None:
        for target in [self.primary, *self.replicas]:
            if target.versions is not None:
                await target.versions.dispose()
        for target in self.replicas:
            await target.engine.dispose()


def read_urls(settings: Settings) -> list[str]:
    return [url.strip() for url in settings.read_database_urls.split(",") if url.strip()]


def read_router(settings: Settings, primary: AsyncEngine, **kwargs: Any) -> ReadRouter:
    """The router of a server: an engine (pool) per replica of `read_database_urls`."""
    urls = [asyncpg_url(url) for url in read_urls(settings)]
    replicas = [create_engine(settings, url=url, **kwargs) for url in urls]
    light = {"pool_pre_ping": False, "pool_size": 2, "max_overflow": 8, **kwargs}
    versions: list[AsyncEngine | None] = [
        autocommit(create_engine(settings, url=url, **light)) for url in [primary.url, *urls]
    ]
    return ReadRouter(primary, replicas, versions)
