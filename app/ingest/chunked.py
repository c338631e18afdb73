"""Import a large subscription-periods file in chunks of customers, each committed, resumable.

1. **Stage and validate the whole file** (nothing canonical is written yet): the rows are
   COPYed into an unlogged table hash-partitioned by customer id (one partition per chunk),
   checked line by line as they are parsed (a large CSV file by two processes, one half
   each: app.ingest.staging), then (committed, the job still `staging`)
   checked across lines partition by partition, two queries at a time (and across partitions
   for subscriptions that change customer). A bad file fails here, leaving the database as it
   was; an interruption here stages the file again on the next run.
2. **Apply chunk by chunk**: each partition (the whole history of its customers) is upserted,
   compared with what is stored, replaced where it changed, and its customers' derived rows
   recomputed, in one transaction that also advances the job's `done_chunks`. Every customer
   is therefore always either in its previous state or in the file's, never half-way.
   A chunk that would rebuild the rollups in full (a first import, or one touching at least
   half of the customers) only marks them behind (readers scan meanwhile).
   A first import of the source (no subscription of it yet, empty derived tables) applies
   CONCURRENT_CHUNKS chunks side by side, one connection each (the server works on each core;
   no two chunks share a customer, a subscription or, written first, a plan or the rollups'
   mark), each staging its customers' contribution to the rollups; they still commit in chunk
   order (a chunk done early waits for the one before it to commit), so the committed chunks
   are always the first `done_chunks`. Such a chunk is applied from its own rows only
   (`_FIRST`): its subscriptions are all new, so nothing is compared with stored periods and
   its ledger is derived from its staged periods, not read back from `subscription_version`;
   no statement of it joins a whole growing table (those joins made each chunk slower than
   the one before at a million customers).
   Another import's chunks (a corrected file, a resumed import) are applied side by side too
   (`_concurrent_again`): each recomputes its own customers, stages its net change to the
   rollups, and adds it once the chunk before it committed. A chunk that would move a
   subscription to another customer (whose former customer two chunks could then both
   recompute) rolls back instead, and the rest goes one chunk after the other.
   Such an import also drops the indexes no chunk reads (`deferred_indexes`: the day indexes
   a cut period reads, the trials' index, the data span's, the customers' name and search
   indexes) and builds each once when every chunk is in:
   rows land all over a day index, so keeping it row by row cost more than building it.
3. **Finish**: the deferred indexes built where missing (also after a resumed or abandoned
   import); the rollups, when marked behind, are made once: the sum of the chunks' staged
   contributions (a first import applied side by side), else rebuilt
   (app.metrics.rollup.rebuild, customer slice by slice); the import is recorded in
   `import_run`, the staging tables dropped, planner statistics refreshed.

The job (`import_job`) remembers where it is: running the same file again (same source and
sha256) after an interruption continues after the last committed chunk (restaging first when
the unlogged staging table did not survive a server crash; chunks are a hash of the customer
id, so they are the same chunks again), two chunks at a time as any import that is not a
first one, then rebuilds the rollups. No statement touches more than one chunk's rows except
the COPY batches, the across-partition check, the file's plans written before chunks applied
side by side (one pass over the staged file) and the sum of the chunks' contributions to the
rollups (a few thousand rows per chunk), so none runs near the statement timeout. The
across-partition check (one grouping of every staged line) and the deferred indexes run like
a migration's statements or the settling VACUUM: the job's work, without the requests'
statement timeout (tens of seconds each at a million customers on a slow machine: the check
passed 30 s on a machine of speed index 1.9 µs with our tests running beside it).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.errors import MAX_REPORTED, BadLines, ImportFailed
from app.ingest import staging
from app.ingest import subscriptions as single
from app.ingest.recompute import (
    TOUCHED,
    create_touched_table,
    keep_rollups,
    recompute_touched,
    record_currencies,
)
from app.ingest.rows import PeriodRow
from app.metrics import rollup, rollup_delta
from app.tables import (
    CUSTOMER_SEARCH_DDL,
    CUSTOMER_SEARCH_INDEX,
    import_job,
    import_run,
    metadata,
    rollup_rebuild,
    subscription,
)

CHUNK_ROWS = 250_000  # rows per chunk (TIDEMILL_IMPORT_CHUNK_ROWS); about 25,000 customers
MAX_CHUNKS = 1_024
CONCURRENT_CHUNKS = 2  # chunks of a first import applied side by side (one per core)
# Chunks applied side by side write the data version and the customer tally in slots of their
# own, past the backends' (pid % 64): CONCURRENT_CHUNKS consecutive chunks are in flight, so
# theirs differ. Sharing a slot, the first chunk would wait for the second's slot row while the
# second waits for the first to commit (migration 0027).
CHUNK_SLOTS = 64
UNFINISHED = ("staging", "applying", "finishing")
# Indexes no statement of a first import's chunk reads (each chunk reads the derived tables by
# customer): dropped while such chunks are applied, built once at the end (`build_deferred`).
DEFERRED_INDEXES = (
    "mrr_change_day_idx",
    "movement_day_idx",
    "movement_scope_dimension_day_idx",
    "subscription_version_trialing_idx",
    "subscription_version_valid_from_idx",
    "subscription_version_last_change_idx",
    "customer_name_sort_idx",
    "customer_since_sort_idx",
)


async def deferred_indexes(connection: AsyncConnection) -> tuple[str, ...]:
    """DEFERRED_INDEXES, and where the database has pg_trgm the customers' search index
    (app.tables.CUSTOMER_SEARCH_INDEX: chunks write customers, none searches them; kept row by
    row it cost a 100k import about 6 %, built once at the end 1 %)."""
    trigrams = await connection.scalar(
        sa.text("SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_trgm')")
    )
    return (*DEFERRED_INDEXES, CUSTOMER_SEARCH_INDEX) if trigrams else DEFERRED_INDEXES


@dataclass
class Job:
    id: int
    state: str
    chunks: int
    done_chunks: int
    row_count: int

    @property
    def stage(self) -> str:
        return f"import_stage_{self.id}"

    def partition(self, chunk: int) -> str:
        return f"import_stage_{self.id}_{chunk}"

    @property
    def rollup(self) -> str:
        """Each chunk's contribution to the rollups (chunks applied side by side)."""
        return f"import_rollup_{self.id}"

    @property
    def cohorts(self) -> str:
        """Each chunk's contribution to the cohort rollups (chunks applied side by side)."""
        return f"import_cohorts_{self.id}"


def _drop_stage(ident: int) -> str:
    """The statement dropping a job's staging tables."""
    tables = (f"import_stage_{ident}", f"import_rollup_{ident}", f"import_cohorts_{ident}")
    return f"DROP TABLE IF EXISTS {', '.join(tables)}"


def chunk_count(expected_rows: int, chunk_rows: int) -> int:
    """Chunks of at most about `chunk_rows` rows, a multiple of CONCURRENT_CHUNKS when more
    than one (a first import applies that many at a time: none is left to run alone)."""
    chunks = math.ceil(expected_rows / max(1, chunk_rows))
    if chunks > 1:
        chunks = math.ceil(chunks / CONCURRENT_CHUNKS) * CONCURRENT_CHUNKS
    return max(1, min(MAX_CHUNKS, chunks))


def estimated_rows(path: Path, sample: int = 1 << 16) -> int:
    """The rows of a file, from its size and the length of its first lines (chunks need only
    be about the right size)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(sample)
    lines = head.count(b"\n")
    if lines <= 1 or len(head) >= size:
        return max(0, lines - 1 if len(head) >= size else lines)
    return int(size / (len(head) / lines))


async def unfinished_job(engine: AsyncEngine, source: str, sha256: str) -> Job | None:
    """The interrupted import of this very file, if any."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                sa.select(
                    import_job.c.id,
                    import_job.c.state,
                    import_job.c.chunks,
                    import_job.c.done_chunks,
                    import_job.c.row_count,
                )
                .where(
                    import_job.c.kind == "subscriptions",
                    import_job.c.source == source,
                    import_job.c.sha256 == sha256,
                    import_job.c.state.in_(UNFINISHED),
                )
                .order_by(import_job.c.id.desc())
                .limit(1)
            )
        ).first()
    return Job(*row) if row else None


async def _abandon(connection: AsyncConnection, source: str) -> None:
    """The unfinished imports of `source` (another file is imported): their committed chunks
    stay (each customer consistent), their staging tables go."""
    abandoned = await connection.scalars(
        sa.update(import_job)
        .where(
            import_job.c.kind == "subscriptions",
            import_job.c.source == source,
            import_job.c.state.in_(UNFINISHED),
        )
        .values(state="failed", updated_at=sa.func.now())
        .returning(import_job.c.id)
    )
    for ident in abandoned.all():
        await connection.exec_driver_sql(_drop_stage(ident))


async def abandon(engine: AsyncEngine, source: str) -> None:
    """Abandon the unfinished imports of `source` (`_abandon`), before a file imported in one
    transaction."""
    async with engine.begin() as connection:
        await _abandon(connection, source)


async def _start(engine: AsyncEngine, source: str, sha256: str, filename: str, chunks: int) -> Job:
    """A new job; the unfinished ones of the same source (another file) are abandoned."""
    async with engine.begin() as connection:
        await _abandon(connection, source)
        ident = await connection.scalar(
            sa.insert(import_job)
            .values(
                kind="subscriptions",
                source=source,
                filename=filename,
                sha256=sha256,
                state="staging",
                chunks=chunks,
            )
            .returning(import_job.c.id)
        )
    assert ident is not None
    return Job(int(ident), "staging", chunks, 0, 0)


async def _fail(engine: AsyncEngine, job: Job) -> None:
    async with engine.begin() as connection:
        await connection.exec_driver_sql(_drop_stage(job.id))
        await connection.execute(
            sa.update(import_job)
            .where(import_job.c.id == job.id)
            .values(state="failed", updated_at=sa.func.now())
        )


async def _create_stage(connection: AsyncConnection, job: Job) -> None:
    await connection.exec_driver_sql(f"DROP TABLE IF EXISTS {job.stage}")
    await connection.exec_driver_sql(
        f"CREATE UNLOGGED TABLE {job.stage} ({single.STAGE_COLUMNS_DDL})"
        " PARTITION BY HASH (customer_id)"
    )
    for chunk in range(job.chunks):
        await connection.exec_driver_sql(
            f"CREATE UNLOGGED TABLE {job.partition(chunk)} PARTITION OF {job.stage}"
            f" FOR VALUES WITH (MODULUS {job.chunks}, REMAINDER {chunk})"
        )


async def _copy(
    connection: AsyncConnection,
    job: Job,
    rows: Iterable[PeriodRow | tuple[int, str]],
    filename: str,
    progress: single.Progress,
) -> int:
    """COPY the good rows into the staging table (app.ingest.staging.copy_records)."""
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    records = single.Records(rows, BadLines(filename))

    def read(count: int) -> None:
        progress("read", count)

    await staging.copy_records(driver, job.stage, records, single.STAGE_COLUMNS, read)
    records.problems.check()
    return records.count


async def _check(engine: AsyncEngine, job: Job, filename: str, source: str) -> None:
    """single.CHECKS: partition by partition (a customer's rows, so each of its
    subscriptions', are in one), except the subscription-of-two-customers check, which looks
    across them; CONCURRENT_CHUNKS queries at a time, each on its own connection (the staged
    file is committed). A subscription an existing customer no longer has in its partition
    counts as no longer in the file (it may have moved to a customer of another chunk):
    stricter than an unchunked import only for a subscription that moves to another customer
    and currency."""
    queries = []
    for message, query in single.CHECKS.items():
        whole = "already belongs to another customer" in message
        tables = [job.stage] if whole else [job.partition(k) for k in range(job.chunks)]
        queries += [(whole, message, query.replace("stage_period", table)) for table in tables]
    # the whole file's first: the longest, while the partitions' share the other connection
    pending = iter(sorted(queries, key=lambda q: not q[0]))
    problems: list[tuple[int, str]] = []
    total = 0

    async def worker() -> None:
        nonlocal total
        for whole, message, query in pending:
            async with engine.begin() as connection:
                # its sorts and hashes (a partition's, or the whole file's) in memory
                await connection.execute(
                    sa.select(sa.func.set_config("work_mem", rollup.WORK_MEM, True))
                )
                if whole:  # one pass over every line: the job's, not a request's, time limit
                    await connection.execute(sa.text("SET LOCAL statement_timeout = 0"))
                parameters = {"source": source, "reported": MAX_REPORTED}
                found = (await connection.execute(sa.text(query), parameters)).all()
            total += found[0][3] if found else 0
            problems.extend(
                (line, message.format(first, line, key)) for first, line, key, _ in found
            )

    await _side_by_side(worker)
    if problems:
        listed = sorted(problems)[:MAX_REPORTED]
        raise ImportFailed(filename, listed, total - len(listed))


async def _copy_in_parts(
    engine: AsyncEngine, job: Job, parted: staging.PartedSource, progress: single.Progress
) -> int | None:
    """The file staged by several processes (app.ingest.staging) when it is large enough to
    gain from them: its rows, or None when it was not (or a part had a bad line)."""
    if parted.processes < 2:
        return None
    parts = parted.parts(parted.processes)
    if len(parts) < 2 or parts[-1][1] - parts[0][0] < staging.MIN_BYTES:
        return None
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    return await staging.stage_in_parts(url, job.stage, parted, parts, progress)


async def _stage(
    engine: AsyncEngine,
    job: Job,
    rows: Iterable[PeriodRow | tuple[int, str]],
    filename: str,
    source: str,
    progress: single.Progress,
    parted: staging.PartedSource | None = None,
) -> Job:
    """Stage the file (committed: the job stays `staging` until the checks pass, so an
    interrupted run stages it again), by several processes when it can be read in parts
    (else, or when a part has a bad line, from `rows`), then check it."""
    try:
        async with engine.begin() as connection:
            await _create_stage(connection, job)
        count = await _copy_in_parts(engine, job, parted, progress) if parted else None
        if count is None:  # (not in parts, or a part had a bad line: reported as ever)
            async with engine.begin() as connection:
                await connection.exec_driver_sql(f"TRUNCATE {job.stage}")
                count = await _copy(connection, job, rows, filename, progress)
        progress("check", 0)
        await _check(engine, job, filename, source)
        async with engine.begin() as connection:
            await connection.execute(
                sa.update(import_job)
                .where(import_job.c.id == job.id)
                .values(state="applying", row_count=count, updated_at=sa.func.now())
            )
    except ImportFailed:
        await _fail(engine, job)
        raise
    return Job(job.id, "applying", job.chunks, job.done_chunks, count)


async def _stage_intact(engine: AsyncEngine, job: Job) -> bool:
    """The staging table holds the whole file (an unlogged table is emptied by a crash)."""
    async with engine.connect() as connection:
        exists = await connection.scalar(sa.select(sa.func.to_regclass(job.stage)))
        if exists is None:
            return False
        count = await connection.scalar(sa.text(f"SELECT count(*) FROM {job.stage}"))
    return int(count or 0) == job.row_count


async def _derived_empty(engine: AsyncEngine) -> bool:
    async with engine.connect() as connection:
        found = await connection.scalar(sa.text("SELECT EXISTS (SELECT FROM mrr_change)"))
    return found is False


async def _apply_chunk(
    engine: AsyncEngine,
    job: Job,
    chunk: int,
    source: str,
    fresh: bool,
    progress: single.Progress,
    after: asyncio.Event | None = None,
) -> tuple[int, int]:
    """One chunk in one transaction; with `after` (concurrent chunks), its work done, it waits
    for that event (the previous chunk committed) before it takes the rows every chunk
    writes (the ledger's currencies, the job's and, outside a first import, the rollups' net
    change or their mark) and commits: chunks commit in order, so
    `done_chunks` stays the number of chunks committed. Meanwhile it holds no row the chunk
    before it writes (its own customers, subscriptions and slots: CHUNK_SLOTS)."""
    async with engine.begin() as connection:
        # its sorts and hashes (tens of thousands of customers' rows) in memory
        await connection.execute(sa.select(sa.func.set_config("work_mem", rollup.WORK_MEM, True)))
        if after is not None:  # the data version's and customer tally's rows of its own
            slot = str(CHUNK_SLOTS + chunk % CONCURRENT_CHUNKS)
            await connection.execute(sa.select(sa.func.set_config("tidemill.slot", slot, True)))
        await connection.exec_driver_sql(single.NEW_VERSION_DDL)
        await create_touched_table(connection)
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        first = after is not None and fresh  # a first import's chunk, side by side
        rebuild = True
        if first:
            changed, touched = await _apply_first(connection, driver, job.partition(chunk), source)
            await _stage_contribution(connection, job)
        else:  # (side by side: the rollups and the currencies once the chunk before committed)
            script = await single.per_batch_script(connection, source, job.partition(chunk))
            await rollup.kept(connection)  # before customers are written (as single._stage)
            await driver.execute(script)
            if after is not None and await _moves_subscriptions(connection):
                raise MovedSubscription(chunk)  # (before it writes another chunk's rows)
            changed, touched, rebuild = await single.apply_changes(
                connection,
                fresh=fresh,
                bulk=False,
                defer_rollups=True,
                currencies=after is None,
                upkeep=after is None,
            )
        if after is not None:
            await after.wait()
            if not first:
                await keep_rollups(connection, rebuild)
            await record_currencies(connection)
        await connection.execute(
            sa.update(import_job)
            .where(import_job.c.id == job.id)
            .values(
                done_chunks=chunk + 1,
                changed_subscriptions=import_job.c.changed_subscriptions + changed,
                changed_customers=import_job.c.changed_customers + touched,
                updated_at=sa.func.now(),
            )
        )
        progress("chunk", chunk + 1)  # (inside: a failure here rolls the chunk back)
    return changed, touched


# A chunk of a first import (`_concurrent`: no subscription of the source yet, so every one
# of the chunk's is created here, and its periods are all new): its customers upserted as
# app.ingest.subscriptions does; then, each statement reading only the chunk's rows (no join
# of the growing tables, whose size would make every chunk slower than the one before), its
# subscriptions created, its periods stored, its customers touched. A subscription of the
# source created meanwhile by anyone else makes the chunk fail (its INSERT has no ON
# CONFLICT), never lose rows; the same file then resumes one chunk after the other.
_FIRST = [
    single.PER_BATCH[0],
    # the chunk's customers' ids: one index probe each
    """
    CREATE TEMP TABLE chunk_customer ON COMMIT DROP AS
    SELECT x.customer_id AS external_id,
           (SELECT c.id FROM customer c
            WHERE c.source = :source AND c.external_id = x.customer_id) AS id
    FROM (SELECT DISTINCT customer_id FROM stage_batch) x
    """,
    """
    CREATE TEMP TABLE chunk_subscription (id bigint, external_id text, customer_id bigint)
    ON COMMIT DROP
    """,
    # one customer per subscription (the checks refused a file giving two)
    """
    WITH created AS (
        INSERT INTO subscription (source, external_id, customer_id)
        SELECT :source, st.subscription_id, min(c.id)
        FROM stage_batch st JOIN chunk_customer c ON c.external_id = st.customer_id
        GROUP BY st.subscription_id
        RETURNING id, external_id, customer_id
    )
    INSERT INTO chunk_subscription SELECT * FROM created
    """,
    """
    INSERT INTO new_version
    SELECT s.id, st.valid_from, st.valid_to, st.status, p.id, st.quantity, st.amount::numeric,
           st.billing_interval, st.interval_count, st.currency, st.mrr, st.trial_start,
           st.trial_end, st.pricing_model
    FROM stage_batch st
    JOIN chunk_subscription s ON s.external_id = st.subscription_id
    LEFT JOIN plan p ON p.source = :source AND p.external_id = st.plan
    """,
    """
    INSERT INTO subscription_version (subscription_id, valid_from, valid_to, status, plan_id,
        quantity, amount, billing_interval, interval_count, currency, mrr, trial_start,
        trial_end, pricing_model)
    SELECT * FROM new_version
    """,
    "INSERT INTO touched_customer SELECT DISTINCT customer_id FROM chunk_subscription",
    "ANALYZE touched_customer, chunk_subscription, new_version",
]


async def _apply_first(
    connection: AsyncConnection, driver: Any, partition: str, source: str
) -> tuple[int, int]:
    """A chunk of a first import (`_FIRST`), its customers recomputed (their ledger from the
    chunk's periods): (its subscriptions, its customers), all changed."""
    literal = await connection.scalar(sa.text("SELECT quote_literal(:source)"), {"source": source})
    script = ";".join(_FIRST).replace(":source", str(literal))
    await driver.execute(script.replace("stage_batch", partition))
    await recompute_touched(
        connection, fresh=True, bulk=False, defer_rollups=True, currencies=False, new=True
    )
    changed = await connection.scalar(sa.text("SELECT count(*) FROM chunk_subscription"))
    touched = await connection.scalar(sa.text("SELECT count(*) FROM touched_customer"))
    return int(changed or 0), int(touched or 0)


async def _stage_contribution(connection: AsyncConnection, job: Job) -> None:
    """The chunk's customers' contribution to the rollups (app.metrics.rollup_delta), kept
    with the job until every chunk's is summed into the rollups (`_merge_rollups`). Read by
    customer id range and then membership: a bounded index range of the growing tables."""
    low, high = (
        await connection.execute(
            sa.text("SELECT min(customer_id), max(customer_id) FROM touched_customer")
        )
    ).one()
    if low is None:
        return

    def members(column: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
        return sa.and_(column.between(low, high), column.in_(sa.select(TOUCHED.c.customer_id)))

    await rollup_delta.stage(connection, members, 1)
    await connection.exec_driver_sql(f"INSERT INTO {job.rollup} SELECT * FROM rollup_delta")
    await connection.exec_driver_sql(f"INSERT INTO {job.cohorts} SELECT * FROM cohort_rollup_delta")


async def _merge_rollups(engine: AsyncEngine, job: Job, progress: single.Progress) -> None:
    """The rollups of a first import applied side by side: the sum of every chunk's
    contribution (the rows a rebuild makes: each rollup column is a sum over customers), in
    one transaction that also clears their mark (app.metrics.rollup.rebuild's result)."""
    progress("rollups", 1)
    async with engine.begin() as connection:
        await connection.execute(sa.text("TRUNCATE rollup, cohort_rollup"))
        await connection.execute(sa.delete(rollup_rebuild))
        await connection.execute(
            sa.text("CREATE TEMP TABLE rollup_delta ON COMMIT DROP AS SELECT * FROM " + job.rollup)
        )
        await connection.execute(
            sa.text(
                "CREATE TEMP TABLE cohort_rollup_delta ON COMMIT DROP AS SELECT * FROM "
                + job.cohorts
            )
        )
        await rollup_delta.apply(connection)
    progress("rollup", 1)


async def _concurrent(engine: AsyncEngine, job: Job, source: str) -> bool:
    """Whether the chunks may be applied side by side (CONCURRENT_CHUNKS at a time): a first
    import of the source into empty derived tables (no subscription of the source yet, so
    none moves between customers, hence chunks: each chunk's rows are its own customers').
    Then what chunks would otherwise all write is written once first: the file's plans and
    the rollups marked behind (each such chunk would mark them: a first import rebuilds
    them in full at the end), so that no chunk waits for another's row locks."""
    if CONCURRENT_CHUNKS < 2 or job.chunks - job.done_chunks < 2:
        return False
    async with engine.begin() as connection:
        known = await connection.scalar(
            sa.select(sa.exists().where(subscription.c.source == source))
        )
        if known:
            return False
        await _write_plans(connection, job, source)
        await rollup.request_rebuild(connection)
        for name in await deferred_indexes(connection):
            await connection.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
        for table, like in ((job.rollup, "rollup"), (job.cohorts, "cohort_rollup")):
            await connection.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
            await connection.exec_driver_sql(f"CREATE UNLOGGED TABLE {table} (LIKE {like})")
    return True


class MovedSubscription(Exception):
    """A chunk applied side by side found a subscription of its own that the file gives to
    another customer than the stored one: that customer, perhaps another chunk's, would be
    recomputed by two chunks at once. The chunk rolls back (it has written nothing of another
    chunk's yet), and the import goes on one chunk after the other."""

    def __init__(self, chunk: int) -> None:
        super().__init__(f"chunk {chunk} moves a subscription to another customer")


async def _moves_subscriptions(connection: AsyncConnection) -> bool:
    """After a chunk's upserts (single.PER_BATCH), before its changes are compared: only a
    subscription moved to another customer has touched a customer yet (both of them)."""
    return bool(await connection.scalar(sa.text("SELECT EXISTS (SELECT FROM touched_customer)")))


async def _concurrent_again(engine: AsyncEngine, job: Job, source: str) -> bool:
    """Whether the chunks of an import that is not a first one (a corrected file, a resumed
    import) may be applied side by side; then the file's new plans are written first
    (`_write_plans`). Each chunk recomputes only its own customers (one that would recompute
    another's stops the side-by-side run: MovedSubscription); the rows chunks share are
    written in chunk order (the rollups' net change or mark, the ledger's currencies, the
    job's)."""
    if CONCURRENT_CHUNKS < 2 or job.chunks - job.done_chunks < 2:
        return False
    async with engine.begin() as connection:
        await _write_plans(connection, job, source)
    return True


async def _done_chunks(engine: AsyncEngine, job: Job) -> int:
    async with engine.connect() as connection:
        done = await connection.scalar(
            sa.select(import_job.c.done_chunks).where(import_job.c.id == job.id)
        )
    return int(done or 0)


async def _write_plans(connection: AsyncConnection, job: Job, source: str) -> None:
    """The staged file's new plans, before any chunk (each would otherwise write those it
    names, and wait for another's uncommitted ones); those stored already are left out
    before the insert, which would draw an id for each (single.PER_BATCH)."""
    literal = await connection.scalar(sa.text("SELECT quote_literal(:source)"), {"source": source})
    await connection.exec_driver_sql(
        "INSERT INTO plan (source, external_id, name)"
        f" SELECT DISTINCT {literal}, st.plan, st.plan FROM {job.stage} st"
        " WHERE st.plan IS NOT NULL AND NOT EXISTS"
        f" (SELECT FROM plan p WHERE p.source = {literal} AND p.external_id = st.plan)"
        " ORDER BY 2 ON CONFLICT (source, external_id) DO NOTHING"
    )


async def _apply_concurrently(
    engine: AsyncEngine, job: Job, source: str, progress: single.Progress, fresh: bool
) -> None:
    """The chunks, CONCURRENT_CHUNKS in flight at a time (the server derives one chunk's rows
    on each core; this process only waits), committed in order; `fresh`: a first import's
    (`_concurrent`), else another import's (`_concurrent_again`)."""
    committed = {chunk: asyncio.Event() for chunk in range(job.done_chunks - 1, job.chunks)}
    committed[job.done_chunks - 1].set()
    pending = iter(range(job.done_chunks, job.chunks))

    async def worker() -> None:
        for chunk in pending:
            await _apply_chunk(engine, job, chunk, source, fresh, progress, committed[chunk - 1])
            committed[chunk].set()
            if fresh and (chunk + 1) & chunk == 0:  # 1, 2, 4, 8... chunks into an empty database
                await single.refresh_statistics(engine, single.GROWING_TABLES)

    await _side_by_side(worker)


async def _side_by_side(worker: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """CONCURRENT_CHUNKS runs of `worker` at a time; the first failure is raised as it is,
    once the others are cancelled (each rolls its transaction back)."""
    workers = [asyncio.create_task(worker()) for _ in range(CONCURRENT_CHUNKS)]
    try:
        await asyncio.gather(*workers)
    except BaseException:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise


def _create_index(name: str) -> sa.Executable:
    """The statement building a deferred index as app.tables defines it."""
    if name == CUSTOMER_SEARCH_INDEX:
        return sa.text(CUSTOMER_SEARCH_DDL)
    found = [index for table in metadata.tables.values() for index in table.indexes]
    return sa.schema.CreateIndex(next(i for i in found if i.name == name), if_not_exists=True)


# the deferred indexes from the longest to build to the shortest (at a million customers: the
# scoped movements' 15 s, the customers' search 12 s, ...), so that the two built side by side
# end together; one not listed comes last
LONGEST_FIRST = (
    "movement_scope_dimension_day_idx",
    CUSTOMER_SEARCH_INDEX,
    "mrr_change_day_idx",
    "movement_day_idx",
)


async def build_deferred(engine: AsyncEngine, progress: single.Progress) -> None:
    """Build the deferred indexes (`deferred_indexes`) that are missing (a first import
    dropped them), each as app.tables defines it, in a transaction of its own, CONCURRENT_CHUNKS
    at a time (one connection each: the search index's GIN build has no parallel workers,
    and the B-trees' parallel build leaves a core idle while it merges); nothing when all are
    there. Indexes of the same table may be built side by side (each takes a SHARE lock)."""
    async with engine.connect() as connection:
        found = await connection.scalars(
            sa.text(
                "SELECT name FROM unnest(CAST(:names AS text[])) name"
                " WHERE to_regclass(name) IS NULL"
            ),
            {"names": list(await deferred_indexes(connection))},
        )
        missing = list(found)
    if not missing:
        return
    progress("indexes", len(missing))
    rank = {name: n for n, name in enumerate(LONGEST_FIRST)}
    pending = iter(sorted(missing, key=lambda name: rank.get(name, len(rank))))

    async def worker() -> None:
        async with engine.connect() as connection:
            for name in pending:
                async with connection.begin():
                    # (the server's maintenance_work_mem: at a million customers 256MB built
                    # the largest, 12.5 million rows, in 15 s against 12 s with the default
                    # 64MB)
                    await connection.execute(sa.text("SET LOCAL statement_timeout = 0"))
                    await connection.execute(_create_index(name))
                progress("index", 1)

    await _side_by_side(worker)


async def _build_rollups(engine: AsyncEngine, progress: single.Progress) -> None:
    """The rollups, once, when the chunks left them behind (a first import, or one touching
    most customers): each chunk only marked them so (its readers scan meanwhile)."""
    async with engine.connect() as connection:
        behind = await connection.scalar(sa.select(sa.exists().select_from(rollup_rebuild)))
    if not behind:
        return
    await single.refresh_statistics(engine)  # the rebuild reads every customer's movements
    async with engine.begin() as connection:
        await rollup.rebuild_if_requested(connection, single.rollup_progress(progress))


async def _finish(engine: AsyncEngine, job: Job, filename: str, sha256: str) -> single.ImportResult:
    async with engine.begin() as connection:
        totals = (
            await connection.execute(
                sa.update(import_job)
                .where(import_job.c.id == job.id)
                .values(state="done", updated_at=sa.func.now())
                .returning(import_job.c.changed_subscriptions, import_job.c.changed_customers)
            )
        ).one()
        await connection.execute(
            sa.insert(import_run).values(
                kind="subscriptions",
                filename=filename,
                sha256=sha256,
                row_count=job.row_count,
                changed_customers=totals.changed_customers,
            )
        )
        await connection.exec_driver_sql(_drop_stage(job.id))
    return single.ImportResult(
        rows=job.row_count,
        changed_subscriptions=int(totals.changed_subscriptions),
        changed_customers=int(totals.changed_customers),
    )


async def load_periods_chunked(
    engine: AsyncEngine,
    rows: Iterable[PeriodRow | tuple[int, str]],
    *,
    filename: str,
    sha256: str,
    source: str,
    chunks: int,
    progress: single.Progress,
    job: Job | None = None,
    parted: staging.PartedSource | None = None,
) -> single.ImportResult:
    """Import (or resume, given the unfinished `job` of this file) in `chunks` chunks; the
    file staged by several processes when it can be read in parts (`parted`)."""
    if job is None:
        job = await _start(engine, source, sha256, filename, chunks)
    else:
        progress("chunks", job.chunks)
        progress("resume", job.done_chunks)
    if job.state == "staging" or not await _stage_intact(engine, job):
        job = await _stage(engine, job, rows, filename, source, progress, parted)
    progress("apply", 0)
    fresh = job.done_chunks == 0 and await _derived_empty(engine)
    if fresh and await _concurrent(engine, job, source):
        await _apply_concurrently(engine, job, source, progress, fresh=True)
        await _merge_rollups(engine, job, progress)
    else:
        done = job.done_chunks
        if not fresh and await _concurrent_again(engine, job, source):
            try:
                await _apply_concurrently(engine, job, source, progress, fresh=False)
                done = job.chunks
            except MovedSubscription:  # the chunks committed so far stay
                done = await _done_chunks(engine, job)
        for chunk in range(done, job.chunks):
            await _apply_chunk(engine, job, chunk, source, fresh, progress)
            if fresh and (chunk + 1) & chunk == 0:  # 1, 2, 4, 8... chunks into an empty database
                await single.refresh_statistics(engine, single.GROWING_TABLES)
    await build_deferred(engine, progress)
    await _build_rollups(engine, progress)
    result = await _finish(engine, job, filename, sha256)
    if result.changed_customers >= single.REANALYZE_AFTER:
        await single.settle(engine, progress)
    return result
