"""Load canonical subscription periods: stage (upserting customers, plans and subscriptions
batch by batch), validate, replace the periods that changed, recompute.

A file of up to `chunk_rows` rows is imported in one transaction: a file that fails any check
leaves the database as it was, and re-running an interrupted import simply does it again
(imports are idempotent). A larger one goes through app/ingest/chunked.py: the same
statements, a chunk of customers per transaction, resumable.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.errors import MAX_REPORTED, BadLines, ImportFailed
from app.ingest.bulk import filled_in_bulk
from app.ingest.recompute import create_touched_table, recompute_touched
from app.ingest.rows import PeriodRow, period_problem
from app.metrics.rollup import kept

if TYPE_CHECKING:
    from app.ingest.staging import PartedSource
from app.tables import import_run

BATCH = 5_000
REANALYZE_AFTER = 1_000  # customers recomputed
DERIVED_TABLES = ("customer", "mrr_change", "movement", "movement_scope", "trial")
# what a first chunked import grows: its statistics are refreshed as it goes
GROWING_TABLES = ("customer", "subscription", "subscription_version", *DERIVED_TABLES[1:])
STAGE_COLUMNS = PeriodRow._fields
_AMOUNT = STAGE_COLUMNS.index("amount")


def as_record(row: PeriodRow) -> tuple[object, ...]:
    """A COPY record; the amount travels as text (asyncpg's binary numeric encoder is the
    slowest part of staging) and is cast to numeric by the server."""
    return (*row[:_AMOUNT], str(row.amount), *row[_AMOUNT + 1 :])


Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class ImportResult:
    rows: int
    changed_subscriptions: int
    changed_customers: int


def _noop(_stage: str, _count: int) -> None:
    return None


def rollup_progress(progress: Progress) -> Callable[[int, int], None]:
    """A rollup rebuild's (customers done, of) as the import's stages: `rollups` with the
    total first, then `rollup` with each chunk's customers."""

    def report(done: int, total: int) -> None:
        progress("rollups" if done == 0 else "rollup", total if done == 0 else done)

    return report


STAGE_COLUMNS_DDL = """
    line integer, subscription_id text, customer_id text, valid_from date, valid_to date,
    status text, plan text, quantity integer, amount text, billing_interval text,
    interval_count integer, currency text, mrr bigint, trial_start date, trial_end date,
    customer_name text, email text, country text, pricing_model text
"""
NEW_VERSION_DDL = """
    CREATE TEMP TABLE new_version (
        subscription_id bigint, valid_from date, valid_to date, status text, plan_id bigint,
        quantity integer, amount numeric, billing_interval text, interval_count integer,
        currency text, mrr bigint, trial_start date, trial_end date, pricing_model text
    ) ON COMMIT DROP
"""
_STAGE_DDL = [
    f"CREATE TEMP TABLE stage_period ({STAGE_COLUMNS_DDL}) ON COMMIT DROP",
    f"CREATE TEMP TABLE stage_batch ({STAGE_COLUMNS_DDL}) ON COMMIT DROP",
    NEW_VERSION_DDL,
]

CHECKS = {
    "overlaps another period of subscription {2} (line {0})": """
        SELECT least(line, previous_line), greatest(line, previous_line), subscription_id,
               count(*) OVER () FROM (
            SELECT line, subscription_id, valid_from,
                   lag(line) OVER w AS previous_line,
                   lag(valid_from) OVER w AS previous_from,
                   lag(valid_to) OVER w AS previous_to
            FROM stage_period WINDOW w AS (PARTITION BY subscription_id ORDER BY valid_from, line)
        ) ordered
        WHERE previous_from IS NOT NULL AND (previous_to IS NULL OR previous_to > valid_from)
        ORDER BY 2 LIMIT :reported""",
    # The subscriptions of two customers first (usually none), then only if there are any,
    # the lines of theirs (a one-time filter): with the planner left to estimate them (a
    # third of the file), a million customers' file was sorted whole for the window and
    # spilled to disk, 6.3 s where finding none takes 2.9 (a chunked import runs this one on
    # the whole file).
    "subscription {2} already belongs to another customer in this file (line {0})": """
        WITH shared AS MATERIALIZED (
            SELECT subscription_id FROM stage_period
            GROUP BY 1 HAVING min(customer_id) <> max(customer_id))
        SELECT first_line, line, subscription_id, count(*) OVER () FROM (
            SELECT line, subscription_id, customer_id,
                   first_value(line) OVER w AS first_line,
                   first_value(customer_id) OVER w AS first_customer
            FROM stage_period
            WHERE EXISTS (SELECT FROM shared)
              AND subscription_id IN (SELECT subscription_id FROM shared)
            WINDOW w AS (PARTITION BY subscription_id ORDER BY line)
        ) ranked WHERE customer_id <> first_customer ORDER BY line LIMIT :reported""",
    # One currency per customer (as Stripe enforces): FX then never mixes inside a customer.
    "customer {2} is billed in another currency on line {0}; a customer has one currency": """
        SELECT first_line, line, customer_id, count(*) OVER () FROM (
            SELECT line, customer_id, currency,
                   first_value(line) OVER w AS first_line,
                   first_value(currency) OVER w AS first_currency
            FROM stage_period WHERE customer_id IN (
                SELECT customer_id FROM stage_period
                GROUP BY 1 HAVING min(currency) <> max(currency))
            WINDOW w AS (PARTITION BY customer_id ORDER BY line)
        ) ranked WHERE currency <> first_currency ORDER BY line LIMIT :reported""",
    # per (customer, currency) of the file: its stored customer and that customer's periods
    # of other subscriptions, by index (LIMIT keeps the planner from hashing whole tables
    # instead, as it did joining every line with every stored period of its customer)
    "customer {2} already has subscriptions in another currency; a customer has one currency": """
        SELECT min(st.line), min(st.line), st.customer_id, count(*) OVER ()
        FROM (
            SELECT customer_id, currency, min(line) AS line FROM stage_period GROUP BY 1, 2
        ) st
        JOIN LATERAL (
            SELECT c.id FROM customer c WHERE c.source = :source AND c.external_id = st.customer_id
            LIMIT 1
        ) c ON true
        JOIN LATERAL (
            SELECT FROM subscription s JOIN subscription_version v ON v.subscription_id = s.id
            WHERE s.customer_id = c.id AND v.currency <> st.currency
              AND s.external_id NOT IN (SELECT subscription_id FROM stage_period)
            LIMIT 1
        ) other ON true
        GROUP BY st.customer_id ORDER BY 1 LIMIT :reported""",
}

# Run on each COPY batch (stage_batch, in file order) while the next one is parsed: the same
# result as running them once on the whole file. A customer keeps the last name, email and
# country the file gives; a bad file is refused by the checks afterwards, rolling this back.
PER_BATCH = [
    # Each customer is looked up once by the unique index: a known one is updated only when the
    # file changes its name, email or country, an unknown one inserted. Only those inserts
    # draw an id (an upsert draws one for every row it proposes, conflict or not: each
    # re-import of a million customers would move the ids on by a million). ON CONFLICT is
    # there for an insert racing
    # with another import of the same source. New customers get their ids in the order of
    # their external ids, as the sorted grouping gave them before (and whatever the plan: a
    # hashed join would return the customers it did not find in no set order).
    """
    WITH filed AS (
        SELECT g.customer_id, g.name, g.email, g.country, c.id, c.name AS stored_name,
               c.email AS stored_email, c.country AS stored_country
        FROM (
            SELECT customer_id,
                   (array_agg(customer_name ORDER BY line DESC)
                        FILTER (WHERE customer_name IS NOT NULL))[1] AS name,
                   (array_agg(email ORDER BY line DESC) FILTER (WHERE email IS NOT NULL))[1]
                       AS email,
                   (array_agg(country ORDER BY line DESC) FILTER (WHERE country IS NOT NULL))[1]
                       AS country
            FROM stage_batch GROUP BY customer_id
        ) g
        LEFT JOIN LATERAL (
            SELECT c.id, c.name, c.email, c.country FROM customer c
            WHERE c.source = :source AND c.external_id = g.customer_id
            LIMIT 1  -- (kept a subquery: a probe of the unique index per customer, not a join)
        ) c ON true
    ), changed AS (
        UPDATE customer c SET
            name = COALESCE(f.name, f.stored_name),
            email = COALESCE(f.email, f.stored_email),
            country = COALESCE(f.country, f.stored_country)
        FROM filed f
        WHERE f.id = c.id  -- the changed ones found by their ids, not by a join with every row
          AND c.id = ANY(ARRAY(
              SELECT d.id FROM filed d
              WHERE (d.stored_name, d.stored_email, d.stored_country) IS DISTINCT FROM
                    (COALESCE(d.name, d.stored_name), COALESCE(d.email, d.stored_email),
                     COALESCE(d.country, d.stored_country))))
    )
    INSERT INTO customer (source, external_id, name, email, country)
    SELECT :source, f.customer_id, f.name, f.email, f.country FROM filed f WHERE f.id IS NULL
    ORDER BY f.customer_id
    ON CONFLICT (source, external_id) DO UPDATE SET
        name = COALESCE(EXCLUDED.name, customer.name),
        email = COALESCE(EXCLUDED.email, customer.email),
        country = COALESCE(EXCLUDED.country, customer.country)
    WHERE (customer.name, customer.email, customer.country) IS DISTINCT FROM
          (COALESCE(EXCLUDED.name, customer.name), COALESCE(EXCLUDED.email, customer.email),
           COALESCE(EXCLUDED.country, customer.country))
    """,
    """
    INSERT INTO plan (source, external_id, name)
    SELECT DISTINCT :source, st.plan, st.plan FROM stage_batch st
    WHERE st.plan IS NOT NULL
      AND NOT EXISTS (SELECT FROM plan p WHERE p.source = :source AND p.external_id = st.plan)
    ON CONFLICT (source, external_id) DO NOTHING
    """,
    # A subscription that moved to another customer touches both customers. Each pair of the
    # batch (a chunk: hundreds of thousands of lines) is looked up once, by the unique indexes
    # (scalar subqueries): joined line by line, the planner hashed the whole customer and
    # subscription tables for every chunk.
    """
    INSERT INTO touched_customer
    SELECT unnest(ARRAY[m.stored, m.filed]) FROM (
        SELECT (SELECT s.customer_id FROM subscription s
                WHERE s.source = :source AND s.external_id = x.subscription_id) AS stored,
               (SELECT c.id FROM customer c
                WHERE c.source = :source AND c.external_id = x.customer_id) AS filed
        FROM (SELECT DISTINCT subscription_id, customer_id FROM stage_batch) x
    ) m
    WHERE m.stored <> m.filed
    ON CONFLICT DO NOTHING
    """,
    # one customer per subscription (a file giving two is refused by the checks): its first
    # line's, looked up once per subscription, as is the subscription; a known one updated
    # only when it moved to another customer, an unknown one inserted (drawing an id, as the
    # customers above)
    """
    WITH filed AS (
        SELECT x.subscription_id,
               (SELECT c.id FROM customer c
                WHERE c.source = :source AND c.external_id = x.customer_id) AS customer_id,
               s.id, s.customer_id AS stored_customer
        FROM (
            SELECT DISTINCT ON (subscription_id) subscription_id, customer_id FROM stage_batch
            ORDER BY subscription_id, line
        ) x
        LEFT JOIN LATERAL (
            SELECT s.id, s.customer_id FROM subscription s
            WHERE s.source = :source AND s.external_id = x.subscription_id
            LIMIT 1  -- (as the customers' above)
        ) s ON true
    ), moved AS (
        UPDATE subscription s SET customer_id = f.customer_id
        FROM filed f
        WHERE f.id = s.id  -- (as the customers' above)
          AND s.id = ANY(ARRAY(SELECT m.id FROM filed m WHERE m.stored_customer <> m.customer_id))
    )
    INSERT INTO subscription (source, external_id, customer_id)
    SELECT :source, f.subscription_id, f.customer_id FROM filed f WHERE f.id IS NULL
    ORDER BY f.subscription_id
    ON CONFLICT (source, external_id) DO UPDATE SET customer_id = EXCLUDED.customer_id
    WHERE subscription.customer_id <> EXCLUDED.customer_id
    """,
    """
    INSERT INTO new_version
    SELECT s.id, st.valid_from, st.valid_to, st.status, p.id, st.quantity, st.amount::numeric,
           st.billing_interval, st.interval_count, st.currency, st.mrr, st.trial_start,
           st.trial_end, st.pricing_model
    FROM stage_batch st
    JOIN subscription s ON s.source = :source AND s.external_id = st.subscription_id
    LEFT JOIN plan p ON p.source = :source AND p.external_id = st.plan
    """,
    "INSERT INTO stage_period SELECT * FROM stage_batch",
    "TRUNCATE stage_batch",
]

_CHANGES = [
    # both sides are unique on (subscription_id, valid_from) (the overlap check), so a
    # subscription changed when one of its periods is missing on either side or differs
    """
    CREATE TEMP TABLE changed_subscription ON COMMIT DROP AS
    SELECT DISTINCT coalesce(n.subscription_id, o.subscription_id) AS subscription_id
    FROM new_version n FULL JOIN (
        SELECT * FROM subscription_version
        WHERE subscription_id IN (SELECT subscription_id FROM new_version)
    ) o ON o.subscription_id = n.subscription_id AND o.valid_from = n.valid_from
    WHERE n.subscription_id IS NULL OR o.subscription_id IS NULL
       OR (n.valid_to, n.status, n.plan_id, n.quantity, n.amount, n.billing_interval,
           n.interval_count, n.currency, n.mrr, n.trial_start, n.trial_end, n.pricing_model)
          IS DISTINCT FROM
          (o.valid_to, o.status, o.plan_id, o.quantity, o.amount, o.billing_interval,
           o.interval_count, o.currency, o.mrr, o.trial_start, o.trial_end, o.pricing_model)
    """,
    """
    INSERT INTO touched_customer
    SELECT DISTINCT s.customer_id FROM changed_subscription c
    JOIN subscription s ON s.id = c.subscription_id
    ON CONFLICT DO NOTHING
    """,
]

_REPLACE = [
    """
    DELETE FROM subscription_version
    WHERE subscription_id IN (SELECT subscription_id FROM changed_subscription)
    """,
    """
    INSERT INTO subscription_version (subscription_id, valid_from, valid_to, status, plan_id,
        quantity, amount, billing_interval, interval_count, currency, mrr, trial_start,
        trial_end, pricing_model)
    SELECT * FROM new_version
    WHERE subscription_id IN (SELECT subscription_id FROM changed_subscription)
    """,
]


@dataclass
class Records:
    """The COPY records of a row stream, checked against the limits every source is held to;
    bad lines are collected on the way (after the first, the rest of the stream is only read
    for more of them, and counted; not at all when `first_only`)."""

    rows: Iterable[PeriodRow | tuple[int, str]]
    problems: BadLines
    count: int = 0
    first_only: bool = False

    def __iter__(self) -> Iterator[tuple[object, ...]]:
        for row in self.rows:
            self.count += 1
            if isinstance(row, PeriodRow):
                problem = period_problem(row)
                if problem is None:
                    if not self.problems:
                        yield as_record(row)
                    continue
                row = (row.line, problem)
            self.problems.add(*row)
            if self.first_only:
                return


async def per_batch_script(
    connection: AsyncConnection, source: str, table: str | None = None
) -> str:
    """PER_BATCH as one script (one round trip), the source quoted by the server; with a
    `table`, its upserts from that table (a chunk) instead of the batch."""
    literal = await connection.scalar(sa.text("SELECT quote_literal(:source)"), {"source": source})
    statements = PER_BATCH if table is None else PER_BATCH[:-2]
    script = ";".join(statements).replace(":source", str(literal))
    return script if table is None else script.replace("stage_batch", table)


def batches(records: Iterable[tuple[object, ...]]) -> Iterator[list[tuple[object, ...]]]:
    rows = iter(records)
    while batch := list(itertools.islice(rows, BATCH)):
        yield batch


async def _settle(task: asyncio.Task[str]) -> None:
    """Let a task finish after an error elsewhere (the connection is busy until then); that
    error is the one to report."""
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()


async def _stage(
    connection: AsyncConnection,
    rows: Iterable[PeriodRow | tuple[int, str]],
    filename: str,
    source: str,
    progress: Progress,
) -> int:
    """Stage the good rows batch by batch; collect bad lines and fail with them.

    The server applies one batch while this thread parses the next: here, not in a worker
    thread, so the event loop never waits for the GIL to send the next statement."""
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    script = await per_batch_script(connection, source)
    await kept(connection)  # before customers are written (rollup_delta.stage_moved_customers)
    records = Records(rows, BadLines(filename))
    applying: asyncio.Task[str] | None = None
    try:
        for batch in batches(records):
            if applying:
                await applying
            await driver.copy_records_to_table("stage_batch", records=batch, columns=STAGE_COLUMNS)
            applying = asyncio.create_task(driver.execute(script))
            await asyncio.sleep(0)  # the task sends the script, then waits for the server
            progress("read", len(batch))
        if applying:
            await applying
    finally:
        if applying and not applying.done():
            await _settle(applying)
    records.problems.check()
    return records.count


async def _check(connection: AsyncConnection, filename: str, source: str) -> None:
    problems: list[tuple[int, str]] = []
    total = 0
    for message, query in CHECKS.items():
        found = (
            await connection.execute(sa.text(query), {"source": source, "reported": MAX_REPORTED})
        ).all()
        total += found[0][3] if found else 0
        problems.extend((line, message.format(first, line, key)) for first, line, key, _ in found)
    if problems:
        listed = sorted(problems)[:MAX_REPORTED]
        raise ImportFailed(filename, listed, total - len(listed))


async def apply_changes(
    connection: AsyncConnection,
    *,
    fresh: bool = False,
    bulk: bool = True,
    defer_rollups: bool = False,
    currencies: bool = True,
    upkeep: bool = True,
    progress: Progress = _noop,
) -> tuple[int, int, bool]:
    """Replace the changed subscriptions' periods (new_version) and recompute their customers:
    (subscriptions changed, customers recomputed, whether the rollups need a full rebuild);
    `fresh`: the derived tables held nothing of them; `bulk`: empty tables may be filled
    without their indexes (one transaction only); `defer_rollups`: a full rebuild of the
    rollups is left to the caller; `currencies`: the ledger's currencies are recorded here
    (else by the caller, app.ingest.recompute.record_currencies); `upkeep`: the rollups are
    kept here (else by the caller: app.ingest.recompute.keep_rollups)."""
    for statement in _CHANGES:
        await connection.execute(sa.text(statement))
    touched = await connection.scalar(sa.text("SELECT count(*) FROM touched_customer"))
    async with filled_in_bulk(connection, ["subscription_version"], touched if bulk else 0):
        for statement in _REPLACE:
            await connection.execute(sa.text(statement))
    # the temp table has no statistics: with them the recompute joins it by hash, not by a
    # nested loop of index probes
    await connection.execute(sa.text("ANALYZE touched_customer"))
    rebuild = await recompute_touched(
        connection,
        fresh=fresh,
        bulk=bulk,
        defer_rollups=defer_rollups,
        currencies=currencies,
        upkeep=upkeep,
        progress=rollup_progress(progress),
    )
    changed = await connection.scalar(sa.text("SELECT count(*) FROM changed_subscription"))
    touched = await connection.scalar(sa.text("SELECT count(*) FROM touched_customer"))
    return int(changed or 0), int(touched or 0), rebuild


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


async def load_periods(
    engine: AsyncEngine,
    rows: Iterable[PeriodRow | tuple[int, str]],
    *,
    filename: str,
    sha256: str,
    source: str = "csv",
    progress: Progress = _noop,
    expected_rows: int = 0,
    chunk_rows: int = 0,
    parted: PartedSource | None = None,
) -> ImportResult:
    """Import a stream of periods (or bad lines): in one transaction, or in chunks of about
    `chunk_rows` rows (default app.ingest.chunked.CHUNK_ROWS) when the caller expects more
    (`expected_rows`, an estimate) or an interrupted chunked import of this file (same source
    and sha256) is waiting to be resumed; a file chunked so and readable in parts (`parted`)
    is staged by several processes (app.ingest.staging)."""
    from app.ingest import chunked  # (it builds on this module)

    with driver_errors_wrapped():
        job = await chunked.unfinished_job(engine, source, sha256)
        chunk_rows = chunk_rows or chunked.CHUNK_ROWS
        if job is not None or expected_rows > chunk_rows:
            return await chunked.load_periods_chunked(
                engine,
                rows,
                filename=filename,
                sha256=sha256,
                source=source,
                chunks=chunked.chunk_count(expected_rows, chunk_rows),
                progress=progress,
                job=job,
                parted=parted,
            )
        await chunked.abandon(engine, source)  # another file's unfinished chunked import
        await chunked.build_deferred(engine, progress)  # the indexes it left out, if any
        return await _load_in_one_transaction(engine, rows, filename, sha256, source, progress)


@contextlib.contextmanager
def driver_errors_wrapped() -> Iterator[None]:
    """An error the server raised on what was sent through the driver itself (COPY, a script
    of statements) as SQLAlchemy's DBAPIError, which every other statement raises: a limit of
    the database met by a file (an index entry too large, ...) is then reported as any
    statement the database stopped (the CLI: `the database stopped the import (...)` and what
    was kept), not as a traceback. The transaction it was in is rolled back all the same."""
    try:
        yield
    except asyncpg.PostgresError as error:
        raise sa.exc.DBAPIError(None, None, error) from error


async def _load_in_one_transaction(
    engine: AsyncEngine,
    rows: Iterable[PeriodRow | tuple[int, str]],
    filename: str,
    sha256: str,
    source: str,
    progress: Progress,
) -> ImportResult:
    async with engine.begin() as connection:
        for statement in _STAGE_DDL:
            await connection.execute(sa.text(statement))
        await create_touched_table(connection)
        count = await _stage(connection, rows, filename, source, progress)
        await _check(connection, filename, source)
        progress("apply", 0)
        changed, touched, _ = await apply_changes(connection, progress=progress)
        await connection.execute(
            sa.insert(import_run).values(
                kind="subscriptions",
                filename=filename,
                sha256=sha256,
                row_count=count,
                changed_customers=touched,
            )
        )
    if touched >= REANALYZE_AFTER:
        await settle(engine, progress)
    return ImportResult(rows=count, changed_subscriptions=changed, changed_customers=touched)


async def settle(engine: AsyncEngine, progress: Progress = _noop) -> None:
    """After a large change, VACUUM (ANALYZE) the derived tables: their planner statistics,
    and their visibility map, so that a cut period's movements are read from the day indexes
    alone (index-only scans) at once, not after autovacuum's next round (or never, where it is
    off). VACUUM reads only the pages changed since its last run; it runs outside a
    transaction, and without the requests' statement timeout (minutes at 1M customers)."""
    progress("settle", 0)
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(sa.text("SET statement_timeout = 0"))
        await connection.execute(sa.text("SET default_statistics_target = 10"))
        try:
            await connection.execute(sa.text(f"VACUUM (ANALYZE) {', '.join(DERIVED_TABLES)}"))
            if await spread_customers(connection):
                await connection.execute(sa.text("ANALYZE mrr_change"))
        finally:
            await connection.execute(sa.text("RESET statement_timeout"))
            await connection.execute(sa.text("RESET default_statistics_target"))


async def spread_customers(connection: AsyncConnection) -> bool:
    """Tell the planner how many customers the ledger's rows belong to (as a fraction of its
    rows, so it stays right as both grow); whether it was set (the next ANALYZE applies it).

    ANALYZE's estimate from its sample is far off here: the ledger is stored customer by
    customer, so the sampled pages hold few customers (at a million customers it estimated
    15,613). A page of movements derived for the customers who changed on one day then read
    the whole ledger by hashing, expecting 480 rows per customer where they have 18, instead of
    each customer's rows by its index: 1.6 s against 0.45 s for a year's first page of churn
    on monthly plans."""
    customers, rows = (await connection.execute(_SPREAD)).one()
    if not customers or not rows or rows <= 0:
        return False
    fraction = min(customers / rows, 1.0)
    await connection.execute(
        sa.text(
            f"ALTER TABLE mrr_change ALTER COLUMN customer_id SET (n_distinct = {-fraction:.10g})"
        )
    )
    return True


_SPREAD = sa.text(
    "SELECT (SELECT count(*) FROM customer), "
    "(SELECT reltuples FROM pg_class WHERE oid = 'mrr_change'::regclass)"
)


async def refresh_statistics(engine: AsyncEngine, tables: Iterable[str] = DERIVED_TABLES) -> None:
    """Planner statistics for the derived tables after a large change, so the next metric
    query gets good plans at once instead of after autovacuum's next round."""
    async with engine.connect() as connection:
        # a small sample is enough for the row counts and distributions these plans need
        await connection.execute(sa.text("SET default_statistics_target = 10"))
        await connection.execute(sa.text(f"ANALYZE {', '.join(tables)}"))
        await connection.execute(sa.text("RESET default_statistics_target"))
        await connection.commit()
