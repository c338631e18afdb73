"""The inbox worker: claim due events (`FOR UPDATE SKIP LOCKED`, so several workers share the
inbox), store the object states they carry, rebuild every affected customer from all of its
states (so any delivery order gives the same rows), recompute those customers, mark the events.

A customer whose rebuild fails (something it needs is not known yet, or a bad payload) marks
its events `failed` with the error and a backoff; the others go through. A later successful
rebuild of that customer applies those events too. An event whose data the database refuses
(a value out of a column's range, a data exception) fails alone as well: the batch is applied
again in halves without it. Losing the database is no event's failure: the batch is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.ingest.apply import bundle_problem, source_key, store_bundles
from app.ingest.objects import Json, Observed
from app.ingest.recompute import create_touched_table, recompute_touched
from app.ingest.recordset import insert_rows
from app.ingest.secrets import SecretKeyError, Vault
from app.ingest.subscriptions import refresh_statistics
from app.ingest.translator import TRANSLATION_ERRORS, Lookup, Translator
from app.tables import raw_event, source, source_object

log = logging.getLogger("tidemill.worker")
Keys = Callable[[], Vault]  # the keys of the sources' secrets, read when first needed
BATCH = 500  # events per transaction while the inbox keeps up
MOST = 4_000  # ... doubled after each full batch (a backlog) up to this
MAX_ATTEMPTS = 8
BACKOFF = timedelta(seconds=30)  # doubled after each failed attempt, up to 2^7 = about 1 h
REASON_CHARACTERS = 2_000  # an event's `last_error` is cut to this length
# SQLSTATE classes of errors that an event's data causes, whatever the database's state:
# 22 data exception (a number out of its column's range), 54 program limit exceeded (a value
# too large for an index)
DATA_ERROR_CLASSES = ("22", "54")


def backoff(attempts: int) -> timedelta:
    return BACKOFF * int(2 ** min(attempts - 1, 7))


def unreadable(error: Exception) -> str:
    """The reason of a translator's error (a ValueError names the problem itself)."""
    return str(error) if isinstance(error, ValueError) and str(error) else f"unreadable: {error!r}"


def data_error(error: Exception) -> bool:
    """Whether the database refused a statement for the values it was given (so the event
    that brought them fails), not for its own state: a lost connection, a deadlock or a
    timeout is retried."""
    if not isinstance(error, sa.exc.DBAPIError) or error.connection_invalidated:
        return False
    state = getattr(error.orig, "sqlstate", None)
    if state:
        return str(state)[:2] in DATA_ERROR_CLASSES
    # refused before it was sent: a value the driver cannot encode (asyncpg's DataError)
    return error.orig is not None and isinstance(error.orig.__cause__, ValueError)


def _refusal(error: Exception) -> str:
    if isinstance(error, sa.exc.DBAPIError):
        return f"unstorable event: {error.orig!r}"
    return unreadable(error)


def _reason(text: str) -> str:
    """A failure's reason as stored: text PostgreSQL accepts, of a bounded length."""
    clean = text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode()
    return clean if len(clean) <= REASON_CHARACTERS else clean[: REASON_CHARACTERS - 1] + "…"


# the ids first (an index scan in event order that stops at the limit), then their rows: the
# payloads are never sorted
_CLAIM = """
WITH claimed AS (
    SELECT id FROM raw_event
    WHERE status IN ('received', 'pending', 'failed')
      AND (status <> 'failed' OR (next_attempt_at <= :now AND attempts < :max_attempts))
    ORDER BY occurred_at, id
    LIMIT :limit
    FOR UPDATE SKIP LOCKED)
SELECT e.id, e.source_id, e.event_id, e.payload, e.attempts, s.kind
FROM claimed c JOIN raw_event e ON e.id = c.id JOIN source s ON s.id = e.source_id
"""


@dataclass
class _Claimed:
    id: int
    source_id: int
    event_id: str
    payload: Json
    attempts: int
    kind: str


@dataclass
class _Batch:
    """What a claimed batch touches and how each event ends."""

    # each customer to rebuild, with the events of its own objects (they fail with it); an
    # object it only reads (a price) is applied to the other readers even if it fails
    customers: dict[tuple[int, str], list[int]] = field(default_factory=lambda: defaultdict(list))
    outcome: dict[int, tuple[str, str | None]] = field(default_factory=dict)
    states: dict[int, list[Observed]] = field(default_factory=lambda: defaultdict(list))

    def affect(self, source_id: int, customer: str, event: int | None) -> None:
        events = self.customers[(source_id, customer)]
        if event is not None:
            events.append(event)


def _state_row(source_id: int, state: Observed) -> dict[str, Any]:
    return {
        "source_id": source_id,
        "object_id": state.object_id,
        "observed_at": state.observed_at,
        "event_id": state.event_id,
        "object_type": state.object_type,
        "customer_ref": state.customer_ref,
        "refs": list(state.refs),
        "payload": state.payload,
    }


async def store_states(connection: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await connection.execute(insert_rows(source_object, rows).on_conflict_do_nothing())


_READERS = """
WITH RECURSIVE reader(object_id, customer_ref, depth) AS (
    SELECT object_id, customer_ref, 1 FROM source_object
    WHERE source_id = :source AND refs && CAST(:idents AS text[])
  UNION
    SELECT o.object_id, o.customer_ref, r.depth + 1 FROM source_object o
    JOIN reader r ON o.source_id = :source AND o.refs @> ARRAY[r.object_id]
    WHERE r.depth < 2)
SELECT DISTINCT customer_ref FROM reader WHERE customer_ref IS NOT NULL
"""


async def _customers_reading(
    connection: AsyncConnection, source_id: int, idents: Sequence[str]
) -> list[str]:
    """Customers whose objects read any of `idents` (prices, products, coupons), through one
    level of indirection (a product read by a price read by a subscription)."""
    found = await connection.execute(
        sa.text(_READERS), {"source": source_id, "idents": sorted(set(idents))}
    )
    return [row[0] for row in found]


def _read(event: _Claimed, translator: Translator, batch: _Batch) -> None:
    """Read one claimed event (no I/O): its outcome so far, its states."""
    try:
        read = translator.read_event(event.payload)
    except TRANSLATION_ERRORS as error:
        batch.outcome[event.id] = ("failed", unreadable(error))
        return
    batch.outcome[event.id] = ("processed", None) if read.handled else ("ignored", None)
    batch.states[event.id] = list(read.objects)


async def _store(
    connection: AsyncConnection, claimed: Mapping[int, _Claimed], batch: _Batch
) -> None:
    """Store the states of the batch in one statement (one per event if that fails, so a bad
    one fails alone)."""
    rows = {
        ident: [_state_row(claimed[ident].source_id, state) for state in states]
        for ident, states in batch.states.items()
    }
    try:
        async with connection.begin_nested():
            await store_states(connection, [row for group in rows.values() for row in group])
        return
    except sa.exc.DBAPIError:
        pass
    for ident, group in rows.items():
        try:
            async with connection.begin_nested():
                await store_states(connection, group)
        except sa.exc.DBAPIError as error:
            batch.outcome[ident] = ("failed", f"unstorable event: {error.orig!r}")
            batch.states.pop(ident)


async def _affected(
    connection: AsyncConnection, claimed: Mapping[int, _Claimed], batch: _Batch
) -> None:
    """The customers each stored event changes (an object of theirs, or one they read)."""
    read_by: dict[int, set[str]] = defaultdict(set)
    for ident, states in batch.states.items():
        source_id = claimed[ident].source_id
        for state in states:
            if state.customer_ref is None:
                read_by[source_id].add(state.object_id)
            elif state.object_type in ("customer", "subscription", "discount", "invoice"):
                batch.affect(source_id, state.customer_ref, ident)
    for source_id, objects in read_by.items():
        for customer in await _customers_reading(connection, source_id, sorted(objects)):
            batch.affect(source_id, customer, None)


CATALOG_LOCK = 0x636174 << 32  # "cat": plus the source id, a one-key advisory lock


async def _lock_catalog(
    connection: AsyncConnection, claimed: Mapping[int, _Claimed], batch: _Batch
) -> None:
    """Concurrent workers and the objects customers read (prices, products, coupons): a batch
    that changes one of a source's takes the source's catalog lock exclusively before finding
    its readers, every other batch shares it before reading. So a batch changing a price
    finds the readers a concurrent batch has stored (it waits for that batch's commit), or
    that batch reads the new price (it waits for this one's): never neither."""
    changing: dict[int, bool] = {event.source_id: False for event in claimed.values()}
    for ident, states in batch.states.items():
        if any(state.customer_ref is None for state in states):
            changing[claimed[ident].source_id] = True
    for source_id, exclusive in sorted(changing.items()):
        function = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        await connection.execute(
            sa.text(f"SELECT {function}(:key)"), {"key": CATALOG_LOCK + source_id}
        )


def _observed(row: Any) -> Observed:
    return Observed(
        object_type=row.object_type,
        object_id=row.object_id,
        observed_at=row.observed_at,
        event_id=row.event_id,
        payload=row.payload,
        customer_ref=row.customer_ref,
        refs=tuple(row.refs),
    )


async def _latest(
    connection: AsyncConnection, source_id: int, idents: set[str]
) -> dict[str, Observed]:
    rows = await connection.execute(
        sa.select(source_object)
        .where(source_object.c.source_id == source_id, source_object.c.object_id.in_(idents))
        .order_by(
            source_object.c.object_id,
            source_object.c.observed_at.desc(),
            source_object.c.event_id.desc(),
        )
        .ext(distinct_on(source_object.c.object_id))
    )
    return {row.object_id: _observed(row) for row in rows}


async def _referenced(
    connection: AsyncConnection, source_id: int, owned: Sequence[Observed]
) -> dict[str, Json]:
    """The latest state of everything these objects read (two levels deep)."""
    found: dict[str, Observed] = {}
    wanted = {ref for state in owned for ref in state.refs}
    wanted |= {s.object_id for s in owned if s.object_type == "discount"}
    for _depth in range(3):
        wanted -= found.keys()
        if not wanted:
            break
        latest = await _latest(connection, source_id, wanted)
        found |= latest
        wanted = {ref for state in latest.values() for ref in state.refs}
    return {ident: state.payload for ident, state in found.items()}


Key = tuple[str, datetime, str]  # a state's (object_id, observed_at, event_id)


def _key(state: Observed) -> Key:
    return (state.object_id, state.observed_at, state.event_id)


async def _owned_states(
    connection: AsyncConnection,
    source_id: int,
    customers: Sequence[str],
    known: Mapping[Key, Observed],
) -> dict[str, list[Observed]]:
    """Every state of these customers' objects. The payloads of the states this batch has just
    stored (`known`) are not read back: only the others' travel and are decoded."""
    fresh = sa.bindparam("fresh", sorted({s.event_id for s in known.values()}), ARRAY(sa.Text))
    payload = sa.case(
        (source_object.c.event_id == sa.any_(fresh), sa.null()), else_=source_object.c.payload
    )
    of_source = source_object.c.source_id == source_id
    rows = await connection.execute(
        sa.select(
            *(c for c in source_object.c if c.name != "payload"), payload.label("payload")
        ).where(of_source, source_object.c.customer_ref.in_(customers))
    )
    owned: dict[str, list[Observed]] = defaultdict(list)
    unknown: list[Key] = []
    for row in rows:
        key = (row.object_id, row.observed_at, row.event_id)
        if row.payload is not None:
            owned[row.customer_ref].append(_observed(row))
        elif key in known:
            owned[row.customer_ref].append(known[key])
        else:  # stored by an earlier delivery of one of these events, under another key
            unknown.append(key)
    if unknown:
        keys = sa.tuple_(
            source_object.c.object_id, source_object.c.observed_at, source_object.c.event_id
        )
        rows = await connection.execute(
            sa.select(source_object).where(of_source, keys.in_(unknown))
        )
        for row in rows:
            owned[row.customer_ref].append(_observed(row))
    return owned


def _incomplete(translator: Translator, states: Sequence[Observed], lookup: Lookup) -> set[str]:
    """What these states read that their events did not give in full; a state that cannot be
    read adds nothing (its customer's rebuild then fails with the reason)."""
    try:
        return translator.incomplete(states, lookup)
    except TRANSLATION_ERRORS:
        wanted: set[str] = set()
        for state in states:
            with contextlib.suppress(*TRANSLATION_ERRORS):
                wanted |= translator.incomplete([state], lookup)
        return wanted


async def _retrieve(
    connection: AsyncConnection,
    source_id: int,
    translator: Translator,
    states: Sequence[Observed],
    referenced: dict[str, Json],
    keys: Keys,
) -> dict[str, str]:
    """Retrieve from the source's API the objects these states read but the events did not
    give in full (a tiered price without its tiers), store them as states observed now and
    add them to `referenced`; the error of each one that could not be retrieved."""
    wanted = _incomplete(translator, states, referenced.get)
    if not wanted:
        return {}
    found = (
        await connection.execute(
            sa.select(source.c.secrets, source.c.settings).where(source.c.id == source_id)
        )
    ).one()
    try:
        secrets, settings = keys().open(bytes(found.secrets)), found.settings or {}
    except SecretKeyError as error:
        return {ident: f"retrieving {ident}: {error}" for ident in sorted(wanted)}
    errors, rows = {}, []
    for ident in sorted(wanted):
        try:
            state = await asyncio.to_thread(translator.retrieve, ident, secrets, settings)
        except ValueError as error:
            errors[ident] = str(error)
            continue
        rows.append(_state_row(source_id, state))
        referenced[ident] = state.payload
    await store_states(connection, rows)
    return errors


async def rebuild_customers(
    connection: AsyncConnection,
    source_id: int,
    kind: str,
    customers: Sequence[str],
    translator: Translator,
    known: Mapping[Key, Observed] | None = None,
    keys: Keys | None = None,
) -> dict[str, str]:
    """Rebuild customers of one source from all their states; the error of each that failed.
    `known`: states already in memory (those the batch stored), by their key. With `keys`,
    what the events did not give in full is retrieved from the source's API first."""
    # one rebuild of a customer at a time (until commit): a second worker then reads the
    # states the first one stored; customers are locked in sorted order, so no deadlock
    ordered = sorted(set(customers))
    await connection.execute(
        sa.text(
            "SELECT pg_advisory_xact_lock(CAST(:source AS int), hashtext(c)) "
            "FROM unnest(CAST(:customers AS text[])) WITH ORDINALITY AS t(c, n) ORDER BY n"
        ),
        {"source": source_id, "customers": ordered},
    )
    owned = await _owned_states(connection, source_id, ordered, known or {})
    everything = [state for states in owned.values() for state in states]
    referenced = await _referenced(connection, source_id, everything)

    def lookup(ident: str) -> Json | None:
        return referenced.get(ident)

    unretrieved: dict[str, str] = {}
    if keys is not None:
        unretrieved = await _retrieve(
            connection, source_id, translator, everything, referenced, keys
        )
    bundles, failures = [], {}
    for customer in ordered:
        try:
            bundle = translator.customer_bundle(customer, owned[customer], lookup)
        except TRANSLATION_ERRORS as error:
            incomplete = _incomplete(translator, owned[customer], lookup)
            causes = [unretrieved[i] for i in sorted(incomplete) if i in unretrieved]
            failures[customer] = "; ".join([f"customer {customer}: {unreadable(error)}", *causes])
            continue
        problem = bundle_problem(bundle)
        if problem is None:
            bundles.append(bundle)
        else:
            failures[customer] = f"customer {customer}: {problem}"
    await store_bundles(connection, source_key(kind, source_id), bundles)
    return failures


async def _rebuild(
    connection: AsyncConnection,
    claimed: Mapping[int, _Claimed],
    batch: _Batch,
    translators: Mapping[str, Translator],
    keys: Keys | None,
) -> None:
    kinds = {event.source_id: event.kind for event in claimed.values()}
    by_source: dict[int, list[str]] = defaultdict(list)
    for source_id, customer in batch.customers:
        by_source[source_id].append(customer)
    for source_id, customers in sorted(by_source.items()):
        kind = kinds[source_id]
        known = {
            _key(state): state
            for ident, states in batch.states.items()
            if claimed[ident].source_id == source_id
            for state in states
        }
        failures = await rebuild_customers(
            connection, source_id, kind, customers, translators[kind], known, keys
        )
        for customer, message in failures.items():
            for event in batch.customers[(source_id, customer)]:
                batch.outcome[event] = ("failed", message)
        rebuilt = sorted(set(customers) - failures.keys())
        await _settle_earlier_failures(connection, source_id, rebuilt)


async def _settle_earlier_failures(
    connection: AsyncConnection, source_id: int, customers: Sequence[str]
) -> None:
    """Events of these customers that failed before are applied by this rebuild."""
    if not customers:
        return
    await connection.execute(
        sa.text(
            "UPDATE raw_event SET status = 'processed', processed_at = now(), last_error = NULL,"
            " next_attempt_at = NULL WHERE id IN (SELECT id FROM raw_event"
            "  WHERE source_id = :source AND status = 'failed'"
            "  AND event_id IN (SELECT event_id FROM source_object"
            "   WHERE source_id = :source AND customer_ref = ANY(CAST(:customers AS text[])))"
            "  FOR UPDATE SKIP LOCKED)"  # one another worker has claimed: it applies it
        ),
        {"source": source_id, "customers": list(customers)},
    )


async def _fail(connection: AsyncConnection, event: _Claimed, reason: str, now: datetime) -> None:
    attempts = event.attempts + 1
    log.warning("event %s failed: %s", event.event_id, reason)
    await connection.execute(
        sa.update(raw_event)
        .where(raw_event.c.id == event.id)
        .values(
            status="failed",
            last_error=_reason(reason),
            attempts=attempts,
            next_attempt_at=now + backoff(attempts),
        )
    )


async def _mark(
    connection: AsyncConnection, claimed: Mapping[int, _Claimed], batch: _Batch, now: datetime
) -> None:
    done: dict[str, list[int]] = defaultdict(list)
    for ident, (status, error) in batch.outcome.items():
        if status != "failed":
            done[status].append(ident)
            continue
        await _fail(connection, claimed[ident], error or "failed", now)
    for status, idents in done.items():
        await connection.execute(
            sa.update(raw_event)
            .where(raw_event.c.id.in_(idents))
            .values(status=status, last_error=None, processed_at=now, next_attempt_at=None)
        )


async def process_batch(
    engine: AsyncEngine,
    translators: Mapping[str, Translator],
    limit: int = BATCH,
    now: datetime | None = None,
    keys: Keys | None = None,
) -> int:
    """Apply up to `limit` due events in one transaction; how many were taken. `keys` open
    the sources' secrets, to retrieve what events leave out (None: nothing is retrieved)."""
    now = now or datetime.now(UTC)
    async with engine.begin() as connection:
        found = await connection.execute(
            sa.text(_CLAIM), {"now": now, "limit": limit, "max_attempts": MAX_ATTEMPTS}
        )
        claimed = {row.id: _Claimed(*row) for row in found}
        if not claimed:
            return 0
        await _apply_isolating(connection, claimed, translators, now, keys)
    return len(claimed)


async def _apply_isolating(
    connection: AsyncConnection,
    claimed: Mapping[int, _Claimed],
    translators: Mapping[str, Translator],
    now: datetime,
    keys: Keys | None,
) -> None:
    """Apply claimed events (in a savepoint). When the database refuses the data of one of
    them, or a translator fails unexpectedly, each half is applied again the same way, so
    every such event ends up alone, failed with the error; the others are applied."""
    try:
        async with connection.begin_nested():
            await _apply(connection, claimed, translators, now, keys)
        return
    except (sa.exc.DBAPIError, *TRANSLATION_ERRORS) as error:
        if isinstance(error, sa.exc.DBAPIError) and not data_error(error):
            raise  # the database away, a deadlock: the whole batch is retried
        if len(claimed) == 1:
            [event] = claimed.values()
            await _fail(connection, event, _refusal(error), now)
            return
    idents = list(claimed)
    for part in (idents[: len(idents) // 2], idents[len(idents) // 2 :]):
        await _apply_isolating(connection, {i: claimed[i] for i in part}, translators, now, keys)


async def _apply(
    connection: AsyncConnection,
    claimed: Mapping[int, _Claimed],
    translators: Mapping[str, Translator],
    now: datetime,
    keys: Keys | None,
) -> None:
    await create_touched_table(connection)
    await connection.execute(sa.text("DELETE FROM touched_customer"))  # an earlier part's
    batch = _Batch()
    for event in claimed.values():
        _read(event, translators[event.kind], batch)
    await _store(connection, claimed, batch)
    await _lock_catalog(connection, claimed, batch)
    await _affected(connection, claimed, batch)
    await _rebuild(connection, claimed, batch, translators, keys)
    await connection.execute(sa.text("ANALYZE touched_customer"))
    await recompute_touched(connection)
    await _mark(connection, claimed, batch, now)


def next_limit(limit: int, taken: int) -> int:
    """A backlog (a full batch) doubles the next batch up to MOST: a statement's fixed cost
    is shared by more events; once the inbox keeps up, batches are small again."""
    return min(2 * limit, MOST) if taken >= limit else BATCH


# What a batch reads and grows. A new source fills them from nothing faster than autovacuum
# refreshes their statistics, and a plan made for empty tables scans every row per batch.
STATISTICS_TABLES = (
    "raw_event",
    "source_object",
    "customer",
    "subscription",
    "subscription_version",
    "subscription_item",
    "mrr_change",
    "movement",
    "movement_scope",
    "rollup",
    "cohort_rollup",
)
_STALE = """
SELECT relname FROM pg_stat_user_tables
WHERE relname = ANY(CAST(:tables AS text[])) AND n_mod_since_analyze > 500 + n_live_tup / 5
"""


async def keep_statistics(engine: AsyncEngine) -> None:
    """Refresh the statistics of those tables that changed by a fifth since their last: one
    table per transaction, so a worker waiting for one holds no lock on another."""
    async with engine.connect() as connection:
        found = await connection.execute(sa.text(_STALE), {"tables": list(STATISTICS_TABLES)})
        stale = [str(row[0]) for row in found]
    for table in stale:
        await refresh_statistics(engine, [table])


async def _drain_one(
    engine: AsyncEngine,
    translators: Mapping[str, Translator],
    now: datetime | None,
    progress: Callable[[int], None] | None,
    keys: Keys | None,
) -> int:
    total, limit = 0, BATCH
    while taken := await process_batch(engine, translators, limit, now, keys):
        total += taken
        if progress is not None:
            progress(taken)
        await keep_statistics(engine)
        limit = next_limit(limit, taken)
    return total


async def drain(
    engine: AsyncEngine,
    translators: Mapping[str, Translator],
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
    concurrency: int = 1,
    keys: Keys | None = None,
) -> int:
    """Process until nothing is due; how many events were taken (`progress` gets each
    batch's count). `concurrency` workers share the inbox, as separate workers do."""
    workers = (_drain_one(engine, translators, now, progress, keys) for _ in range(concurrency))
    return sum(await asyncio.gather(*workers))


async def _run_one(
    engine: AsyncEngine,
    translators: Mapping[str, Translator],
    stop: asyncio.Event,
    idle: float,
    keys: Keys | None,
) -> None:
    limit = BATCH
    while not stop.is_set():
        try:
            taken = await process_batch(engine, translators, limit, keys=keys)
            if taken:
                await keep_statistics(engine)
        except Exception as error:  # the database away, or a bug: log, wait, go on
            log.warning("worker: %r", error)
            taken = 0
        limit = next_limit(limit, taken)
        if not taken:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), idle)


async def run(
    engine: AsyncEngine,
    translators: Mapping[str, Translator],
    stop: asyncio.Event,
    idle_seconds: float = 0.5,
    concurrency: int = 1,
    keys: Keys | None = None,
) -> None:
    """The worker loop (inside `serve`, or `tidemill worker`): `concurrency` of them."""
    await asyncio.gather(
        *(_run_one(engine, translators, stop, idle_seconds, keys) for _ in range(concurrency))
    )
