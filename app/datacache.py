"""The data version, and the per-process caches keyed by it.

**The data version.** Every transaction that writes a table a query result may depend on sets
the slot of its backend in `data_version` (pid % 64, or the one the transaction names in
`tidemill.slot`: migration 0027) to a fresh number from a sequence, once, from statement
triggers (migration 0014; API keys bump it only when created or revoked, not when their last
use is recorded). A reader's version is `(sum, max)` of the slots as its
snapshot sees them. Every committed writer raises the sum, and on one server the snapshots
see the committed writers in one order, so two snapshots with the same version see the same
data. Writers in different slots never wait for each other (a single counter row would
serialize every write transaction, chunks of one import included).

**Why a counter and not pg's txid.** `pg_current_snapshot()` moves with every transaction
that takes an xid anywhere on the server (other databases, the inbox, the touch of a key's
last use): a cache keyed by it would rarely be hit. The counter moves only when data moves.

**One statement for many requests.** A request needs a version read that *started after it
arrived* (then every write committed before it arrived is counted). `SharedVersion` lets
requests that arrive while a read is under way share the next one: under load, one statement
answers a whole wave of requests instead of one each, and no request ever sees a version read
before it came in.

**Correct across worker processes and replicas.** Each process keeps its own caches, keyed by
the version read *on the server that then answers* (a primary or one replica), read *before*
the query: the result is at least as new as its key says, never older. A result cached under
a version is therefore served only to requests that see that very data (or, for requests that
started just before a commit, the data just after it: as if they had come a moment later).
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import Database

Version = tuple[int, int]
T = TypeVar("T")

_READ = sa.text("SELECT sum(version)::bigint, max(version) FROM data_version")


async def read_version(database: Database) -> Version | None:
    """The data version the next statements on this server will see at least (None: the
    version table is empty, which only a test's TRUNCATE leaves: then nothing is cached).
    Retried once on a pooled connection found dead (a restarted server)."""
    try:
        async with database.connect() as connection:
            return await version_on(connection)
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
    async with database.connect() as connection:
        return await version_on(connection)


async def version_on(connection: AsyncConnection) -> Version | None:
    total, latest = (await connection.execute(_READ)).one()
    return None if total is None else (int(total), int(latest))


class SharedVersion:
    """The data version of one server, read for many requests at once (see the module doc):
    `current()` waits for a read that starts after the call, shared by every caller waiting for
    it; at most one read runs at a time."""

    def __init__(self, read: Callable[[], Awaitable[Version | None]]) -> None:
        self._read = read
        self._running: asyncio.Future[Version | None] | None = None
        self._next: asyncio.Future[Version | None] | None = None
        self.reads = 0

    async def current(self) -> Version | None:
        if self._next is None:  # not started yet: it will read after this call
            self._next = asyncio.ensure_future(self._after(self._running))
        return await asyncio.shield(self._next)

    async def _after(self, previous: asyncio.Future[Version | None] | None) -> Version | None:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        self._running, self._next = self._next, None  # callers from now on wait for the next
        self.reads += 1
        return await self._read()


class LRU(Generic[T]):
    """A bounded map, least recently used out first (0 entries: caches nothing)."""

    def __init__(self, entries: int) -> None:
        self.entries = entries
        self._items: OrderedDict[Hashable, T] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, key: Hashable) -> T | None:
        found = self._items.get(key)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end(key)
        return found

    def put(self, key: Hashable, value: T) -> None:
        if self.entries <= 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.entries:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()


class VersionedMemo:
    """What does not change between writes (the attribute catalogue, the ledger's currencies,
    API keys), computed once per data version and process. Concurrent requests for the same
    missing entry share one computation."""

    def __init__(self, entries: int = 256, large_entries: int = 8) -> None:
        self._values: LRU[asyncio.Future[Any]] = LRU(entries)
        # values that may hold a million items (a segment's member ids): a few only
        self._large: LRU[asyncio.Future[Any]] = LRU(large_entries)

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        return await _shared(self._values, key, compute)

    async def get_large(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        """`get` for a value that may be large, kept among fewer."""
        return await _shared(self._large, key, compute)


async def _shared(
    values: LRU[asyncio.Future[Any]], key: Hashable, compute: Callable[[], Awaitable[T]]
) -> T:
    found = values.get(key)
    if found is None or (found.done() and found.exception() is not None):
        found = asyncio.ensure_future(compute())
        values.put(key, found)
    result: T = await asyncio.shield(found)
    return result


def result_key(
    target: str,
    version: Version,
    document: str,
    operation: str | None,
    variables: Any,
    scopes: str,
    today: str,
) -> Hashable | None:
    """The key of a query's result; None when its variables cannot be one (an upload)."""
    try:
        encoded = json.dumps(variables, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None
    return (target, version, document, operation, encoded, scopes, today)
