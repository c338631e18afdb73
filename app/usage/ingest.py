"""Usage events in: check, resolve customers, store once per (source, id), keep rollups current.

One path for `POST /events`, the `ingestEvents` mutation and `tidemill import events`:

1. each event is checked (app/usage/events.py), and so is every property a numeric metric of
   its name reads: a bad event is rejected with its reason, the others go on;
2. a repeated (source, id) within the batch is a duplicate;
3. customers are matched by external id (in any source; the oldest customer when several
   sources share one), then by Tidemill id; an unknown customer is created bare (no name,
   no subscriptions) in the event's source with that external id;
4. the month partitions the batch needs are made (app/usage/partitions.py);
5. the batch is copied (COPY, text format) into a temporary table, and one statement
   stores the events whose key is new in `usage_event_key` (an id already
   stored is a duplicate, never applied twice) and adds exactly those to the rollup of every
   INDEXED metric, whatever day they fall on (late events update their past day).
   Most batches hold no stored id: the statement is first tried, in a savepoint, with a plain
   insert of every key (no conflict check per row, no join of the events with the keys
   inserted: about a third less work per event); a key already there (stored before, or by a
   concurrent ingest that commits) fails it with a unique violation, and the batch is then
   stored with `ON CONFLICT DO NOTHING`, keeping exactly the new events.

A batch is checked by the metric definitions read before its transaction, and stored under
the definitions' shared lock (app/usage/definitions.py): when they changed in between (a
metric created, made INDEXED, refiltered...), the store raises `RulesChanged` with the current
ones, and the batch is checked again by them and stored again. So no event is rolled up by a
definition that no longer holds, or missed by a rollup built while it was on its way.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from app.db import Database
from app.errors import UserError
from app.metrics.usage import NUMERIC, QueryType, UsageMetric, ValueType, rollup_upsert_ctes
from app.tables import customer, usage_event, usage_event_key
from app.usage import partitions
from app.usage.definitions import live_metrics
from app.usage.events import (
    Event,
    Invalid,
    Rejected,
    copy_line,
    months_of,
    parse_event,
    raw_id,
)
from app.usage.locks import lock_definitions

MAX_BATCH = 10_000
GC_THRESHOLD = 200_000  # allocations between collections of the youngest generation
DEFAULT_SOURCE = "events"
MAX_SOURCE = 100
# C0 and C1 control characters (NUL among them: PostgreSQL's text cannot hold it) and lone
# surrogates (a command line's bytes that are not UTF-8)
UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
STAGE = "usage_stage"
STAGE_COLUMNS = ("event_id", "customer", "name", "ts", "properties", "product")
UNIQUE_VIOLATION = "23505"
KEY_CONSTRAINT = "usage_event_key_pkey"
EVENT_COLUMNS = ("source", "event_id", "customer_id", "name", "ts", "properties", "product")


def source_name(source: str) -> str:
    """`source` when it can name the source events belong to; else a UserError naming it."""
    if not source.strip() or len(source) > MAX_SOURCE:
        raise UserError(f"source must be 1-{MAX_SOURCE} characters (default {DEFAULT_SOURCE!r})")
    if found := UNPRINTABLE.search(source):
        code = ord(found.group())
        kind = "a lone UTF-16 surrogate" if code >= 0xD800 else "a control character"
        raise UserError(
            f"source holds {kind} (U+{code:04X} at character {found.start() + 1}); a source is "
            f"1-{MAX_SOURCE} characters, none of them a control character (default "
            f"{DEFAULT_SOURCE!r})"
        )
    return source


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    def add(self, other: IngestResult) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected += other.rejected


@dataclass(frozen=True)
class Rules:
    """What the defined metrics ask of events: numeric properties, and INDEXED rollups."""

    metrics: tuple[UsageMetric, ...]
    numeric: dict[str, list[UsageMetric]] = field(default_factory=dict)  # by event name

    def __post_init__(self) -> None:
        checks: set[tuple[str, str, bool]] = set()
        for metric in self.metrics:
            if metric.event_name and metric.property and metric.aggregation in NUMERIC:
                # a check already made by an earlier metric (same property, same need of an
                # integer) cannot fail where that one passed: checked once, in the same order
                check = (metric.event_name, metric.property, metric.value_type is ValueType.INTEGER)
                if check not in checks:
                    checks.add(check)
                    self.numeric.setdefault(metric.event_name, []).append(metric)

    def stores_as(self, other: Rules) -> bool:
        """Whether events are checked and stored by `other` as by these (a rollup being
        built or not: a store adds its events to an INDEXED metric's rollup either way)."""
        return _unbuilt(self.metrics) == _unbuilt(other.metrics)

    @property
    def indexed(self) -> list[UsageMetric]:
        return [m for m in self.metrics if m.query_type is QueryType.INDEXED]

    def property_problem(self, event: Event) -> str | None:
        for metric in self.numeric.get(event.name, ()):
            value = event.properties.get(metric.property or "")
            if value is None or type(value) is int:  # no property, or any metric's number
                continue
            assert metric.aggregation is not None
            if isinstance(value, bool) or not isinstance(value, int | float):
                return (
                    f"property {metric.property!r} is {str(value)[:40]!r}, not a number; "
                    f"metric {metric.name!r} ({metric.aggregation.value}) reads it as one"
                )
            if metric.value_type is ValueType.INTEGER and value != int(value):
                return (
                    f"property {metric.property!r} is {value}, not an integer; "
                    f"metric {metric.name!r} is INTEGER"
                )
        return None


def _unbuilt(metrics: Iterable[UsageMetric]) -> tuple[UsageMetric, ...]:
    return tuple(replace(metric, rollup_build=None) for metric in metrics)


class RulesChanged(Exception):
    """The metric definitions changed after the batch was checked (module doc)."""

    def __init__(self, current: Rules) -> None:
        super().__init__("the usage metric definitions changed; check the batch again")
        self.current = current


async def rules(connection: AsyncConnection) -> Rules:
    metrics = (await live_metrics(connection)).values()
    return Rules(tuple(m for m in metrics if m.query_type is not QueryType.COMPOSITE))


def check(
    raw: Sequence[object], rules: Rules, now: datetime.datetime, first_index: int = 0
) -> tuple[list[Event], IngestResult]:
    """The valid events of a batch, each (source, id) once; the rest counted with reasons."""
    result, events, seen = IngestResult(), [], set()
    for index, item in enumerate(raw, first_index):
        try:
            event = parse_event(item, now)
            if problem := rules.property_problem(event):
                raise Invalid(problem)
        except Invalid as error:
            result.rejected.append(Rejected(index, raw_id(item), str(error)))
            continue
        if event.id in seen:
            result.duplicates += 1
            continue
        seen.add(event.id)
        events.append(event)
    return events, result


async def resolve_customers(
    connection: AsyncConnection, source: str, wanted: Iterable[str], known: dict[str, int]
) -> dict[str, int]:
    """Customer ids of `wanted` identifiers (module doc, 3), added to `known` (a cache)."""
    missing = sorted(set(wanted) - known.keys())
    if missing:
        by_external = (
            sa.select(customer.c.external_id, customer.c.id)
            .where(customer.c.external_id.in_(missing))
            .order_by(customer.c.external_id, customer.c.id)
            .ext(postgresql.distinct_on(customer.c.external_id))
        )
        known.update(dict((await connection.execute(by_external)).all()))
    numbers = [int(text) for text in missing if text not in known and _small_number(text)]
    if numbers:
        found = await connection.scalars(sa.select(customer.c.id).where(customer.c.id.in_(numbers)))
        known.update({str(ident): ident for ident in found})
    unknown = [text for text in missing if text not in known]
    if unknown:
        await _create_bare(connection, source, unknown, known)
    return known


def _small_number(text: str) -> bool:
    return text.isdigit() and len(text) <= 18


async def _create_bare(
    connection: AsyncConnection, source: str, unknown: list[str], known: dict[str, int]
) -> None:
    rows = [{"source": source, "external_id": text} for text in unknown]
    insert = postgresql.insert(customer).values(rows).on_conflict_do_nothing()
    await connection.execute(insert)
    found = sa.select(customer.c.external_id, customer.c.id).where(
        customer.c.source == source, customer.c.external_id.in_(unknown)
    )
    known.update(dict((await connection.execute(found)).all()))


@dataclass(frozen=True)
class Batch:
    """Checked events (distinct ids) as the rows of a COPY in text format (`copy_line`), with
    what storing them needs: their customers' identifiers, event names and months."""

    rows: bytes
    size: int
    customers: frozenset[str]
    names: frozenset[str]
    months: frozenset[datetime.date]

    @classmethod
    def of(cls, events: Sequence[Event]) -> Batch:
        return cls(
            "".join(map(copy_line, events)).encode(),
            len(events),
            frozenset(event.customer for event in events),
            frozenset(event.name for event in events),
            months_of(events),
        )


def _stage_table() -> sa.TableClause:
    return sa.table(
        STAGE,
        sa.column("event_id", sa.Text),
        sa.column("customer", sa.Text),
        sa.column("name", sa.Text),
        sa.column("ts", sa.DateTime(timezone=True)),
        sa.column("properties", postgresql.JSONB),
        sa.column("product", sa.Text),
    )


def store_statement(indexed: Sequence[UsageMetric], all_new: bool = False) -> sa.Select[Any]:
    """Insert the staged events whose key is new; add them to the INDEXED rollups; count.
    Binds `source` and the customers' identifiers with their ids (`keys`, `ids`).
    `all_new`: every staged key is inserted as it is, and every event stored; a key already
    stored fails the statement (a unique violation, `is_stored_key`)."""
    stage = _stage_table()
    source = sa.bindparam("source", type_=sa.Text)
    new_keys = sa.select(source, stage.c.event_id, stage.c.ts)
    insert_keys = postgresql.insert(usage_event_key).from_select(
        ["source", "event_id", "ts"], new_keys
    )
    if all_new:
        keys = insert_keys.cte("fresh_keys")  # run for its effect, whether read or not
    else:
        keys = (
            insert_keys.on_conflict_do_nothing()
            .returning(usage_event_key.c.event_id)
            .cte("fresh_keys")
        )
    customers = (
        sa.func.unnest(
            sa.bindparam("keys", type_=postgresql.ARRAY(sa.Text)),
            sa.bindparam("ids", type_=postgresql.ARRAY(sa.BigInteger)),
        )
        .table_valued("customer", "customer_id")
        .render_derived(name="customers")
    )
    fresh = sa.select(
        source,
        stage.c.event_id,
        customers.c.customer_id,
        stage.c.name,
        stage.c.ts,
        stage.c.properties,
        stage.c.product,
    )
    if all_new:
        fresh = fresh.join_from(stage, customers, customers.c.customer == stage.c.customer)
    else:
        fresh = fresh.join_from(stage, keys, keys.c.event_id == stage.c.event_id).join(
            customers, customers.c.customer == stage.c.customer
        )
    events = (
        sa.insert(usage_event)
        .from_select(list(EVENT_COLUMNS), fresh)
        .returning(*(usage_event.c[name] for name in EVENT_COLUMNS))
        .cte("fresh_events")
    )
    rollups = [
        cte
        for index, metric in enumerate(indexed)
        for cte in rollup_upsert_ctes(metric, events, True, f"rollup_{index}")
    ]
    counted = sa.select(sa.func.count()).select_from(events).add_cte(*rollups)
    return counted.add_cte(keys) if all_new else counted


def is_stored_key(error: sa.exc.IntegrityError) -> bool:
    """The error is an event key stored already (`store_statement(all_new=True)`)."""
    cause = error.orig.__cause__ if error.orig is not None else None
    return (
        getattr(error.orig, "sqlstate", None) == UNIQUE_VIOLATION
        and getattr(cause, "constraint_name", None) == KEY_CONSTRAINT
    )


async def store(
    connection: AsyncConnection,
    batch: Batch,
    source: str,
    checked: Rules,
    customers: dict[str, int],
) -> int:
    """Store a batch in one COPY and one statement; the number of its events stored (the
    others' ids were stored before). Its numeric properties were checked against `checked`,
    so the rollups cast them unchecked; `RulesChanged` when they are no longer the current
    definitions (module doc), before anything is written."""
    if not batch.size:
        return 0
    await lock_definitions(connection, shared=True)
    current = await rules(connection)
    if not current.stores_as(checked):
        raise RulesChanged(current)
    ids = await resolve_customers(connection, source, batch.customers, customers)
    await connection.exec_driver_sql(
        f'CREATE TEMP TABLE {STAGE} (event_id text COLLATE "C", customer text, name text, '
        "ts timestamptz, properties jsonb, product text) ON COMMIT DROP"
    )
    raw = await connection.get_raw_connection()
    driver: Any = raw.driver_connection
    # the rows as a buffer (bytes would be taken for a path), sent as they are: a file object
    # is read 512 KB at a time in the default executor's threads, through a class asyncpg
    # makes for each COPY, whose reference cycle kept the file, and so the rows, until the
    # cycle collector ran (4 MB more memory for each chunk of a bulk import, to its end)
    rows = memoryview(batch.rows)
    await driver.copy_to_table(STAGE, source=rows, columns=STAGE_COLUMNS, format="text")
    indexed = [m for m in checked.indexed if m.event_name in batch.names]
    wanted = sorted(batch.customers)
    parameters = {"source": source, "keys": wanted, "ids": [ids[key] for key in wanted]}
    try:
        async with connection.begin_nested():  # module doc, 5
            stored = int(await connection.scalar(store_statement(indexed, True), parameters) or 0)
    except sa.exc.IntegrityError as error:
        if not is_stored_key(error):
            raise
        stored = int(await connection.scalar(store_statement(indexed), parameters) or 0)
    await connection.exec_driver_sql(f"DROP TABLE {STAGE}")
    return stored


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Parsed events are a few containers each, alive until their batch is checked (a file's
    chunk: stored): at the default thresholds the cycle collector scans them again and again
    (up to a third of the parsing time), for garbage that has no cycles. Only around code
    that does not await (or a command's own process), as the thresholds are the process's."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], GC_THRESHOLD), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


async def ensure_partitions(database: Database, months: Iterable[datetime.date]) -> None:
    async with database.connect() as connection:
        needed = await partitions.missing(connection, months)
    if needed:
        async with database.begin() as connection:
            await partitions.create(connection, needed)


async def ingest(
    database: Database, raw: Sequence[object], source: str = DEFAULT_SOURCE
) -> IngestResult:
    """Ingest one batch (at most MAX_BATCH events; the caller refuses more)."""
    source = source_name(source)
    now = datetime.datetime.now(datetime.UTC)
    async with database.connect() as connection:
        found = await rules(connection)
    while True:
        with fewer_collections():  # no await inside
            events, result = check(raw, found, now)
            batch = Batch.of(events)
        if not events:
            return result
        await ensure_partitions(database, batch.months)
        try:
            async with database.begin() as connection:
                stored = await store(connection, batch, source, found, {})
        except RulesChanged as changed:  # checked again by the current definitions
            found = changed.current
            continue
        result.accepted = stored
        result.duplicates += batch.size - stored
        return result
