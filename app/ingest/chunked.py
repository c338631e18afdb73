"""Import a large subscription-periods file in chunks of customers, each committed, resumable.

1. **Stage and validate the whole file** (nothing canonical is written yet): the rows are
   COPYed into an unlogged table hash-partitioned by customer id (one partition per chunk),
   checked line by line as they are parsed, then checked across lines partition by partition
   (and across partitions for subscriptions that change customer). A bad file fails here,
   leaving the database as it was.
2. **Apply chunk by chunk**: each partition (the whole history of its customers) is upserted,
   compared with what is stored, replaced where it changed, and its customers' derived rows
   recomputed, in one transaction that also advances the job's `done_chunks`. Every customer
   is therefore always either in its previous state or in the file's, never half-way.
   A chunk that would rebuild the rollups in full (a first import, or one touching at least
   half of the customers) only marks them behind (readers scan meanwhile).
3. **Finish**: the rollups, when marked behind, are rebuilt once (app.metrics.rollup.rebuild,
   customer slice by slice); the import is recorded in `import_run`, the staging table
   dropped, planner statistics refreshed.

The job (`import_job`) remembers where it is: running the same file again (same source and
sha256) after an interruption continues after the last committed chunk (restaging first when
the unlogged staging table did not survive a server crash; chunks are a hash of the customer
id, so they are the same chunks again). No statement touches more than one chunk's rows except
the COPY batches and the across-partition check, so none runs near the statement timeout.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.errors import MAX_REPORTED, BadLines, ImportFailed
from app.ingest import subscriptions as single
from app.ingest.recompute import create_touched_table
from app.ingest.rows import PeriodRow
from app.metrics import rollup
from app.tables import import_job, import_run, rollup_rebuild

CHUNK_ROWS = 250_000  # rows per chunk (TIDEMILL_IMPORT_CHUNK_ROWS); about 25,000 customers
MAX_CHUNKS = 1_024
COPY_BATCHES = 40  # parsed batches (app.ingest.subscriptions.BATCH rows) per COPY statement
UNFINISHED = ("staging", "applying", "finishing")


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


def chunk_count(expected_rows: int, chunk_rows: int) -> int:
    return max(1, min(MAX_CHUNKS, math.ceil(expected_rows / max(1, chunk_rows))))


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


async def _start(engine: AsyncEngine, source: str, sha256: str, filename: str, chunks: int) -> Job:
    """A new job; the unfinished ones of the same source (another file) are abandoned: their
    committed chunks stay (each customer consistent), their staging tables go."""
    async with engine.begin() as connection:
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
            await connection.exec_driver_sql(f"DROP TABLE IF EXISTS import_stage_{ident}")
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
        await connection.exec_driver_sql(f"DROP TABLE IF EXISTS {job.stage}")
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
    """COPY the good rows into the staging table, COPY_BATCHES batches per statement (bounded
    statements), each fed as its rows are parsed: the server stores a batch while the next is
    read, so parsing and storing overlap."""
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    records = single.Records(rows, BadLines(filename))
    batches = single.batches(records)
    batch = next(batches, None)
    while batch is not None:
        fed: list[list[tuple[object, ...]] | None] = [batch]

        async def feed(
            fed: list[list[tuple[object, ...]] | None] = fed,
        ) -> AsyncIterator[tuple[object, ...]]:
            for _ in range(COPY_BATCHES):
                current = fed[0]
                if current is None:
                    return
                for record in current:
                    yield record
                progress("read", len(current))
                fed[0] = next(batches, None)

        await driver.copy_records_to_table(job.stage, records=feed(), columns=single.STAGE_COLUMNS)
        batch = fed[0]
    records.problems.check()
    return records.count


async def _check(connection: AsyncConnection, job: Job, filename: str, source: str) -> None:
    """single._CHECKS: partition by partition (a customer's rows, so each of its
    subscriptions', are in one), except the subscription-of-two-customers check, which looks
    across them. A subscription an existing customer no longer has in its partition counts as
    no longer in the file (it may have moved to a customer of another chunk): stricter than an
    unchunked import only for a subscription that moves to another customer and currency."""
    problems: list[tuple[int, str]] = []
    total = 0
    for message, query in single.CHECKS.items():
        whole = "already belongs to another customer" in message
        tables = [job.stage] if whole else [job.partition(k) for k in range(job.chunks)]
        for table in tables:
            found = (
                await connection.execute(
                    sa.text(query.replace("stage_period", table)),
                    {"source": source, "reported": MAX_REPORTED},
                )
            ).all()
            total += found[0][3] if found else 0
            problems.extend(
                (line, message.format(first, line, key)) for first, line, key, _ in found
            )
    if problems:
        listed = sorted(problems)[:MAX_REPORTED]
        raise ImportFailed(filename, listed, total - len(listed))


async def _stage(
    engine: AsyncEngine,
    job: Job,
    rows: Iterable[PeriodRow | tuple[int, str]],
    filename: str,
    source: str,
    progress: single.Progress,
) -> Job:
    try:
        async with engine.begin() as connection:
            await _create_stage(connection, job)
            count = await _copy(connection, job, rows, filename, progress)
            progress("check", 0)
            await _check(connection, job, filename, source)
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
) -> tuple[int, int]:
    async with engine.begin() as connection:
        await connection.exec_driver_sql(single.NEW_VERSION_DDL)
        await create_touched_table(connection)
        script = await single.per_batch_script(connection, source, job.partition(chunk))
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        await driver.execute(script)
        changed, touched = await single.apply_changes(
            connection, fresh=fresh, bulk=False, defer_rollups=True
        )
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
        await connection.exec_driver_sql(f"DROP TABLE IF EXISTS {job.stage}")
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
) -> single.ImportResult:
    """Import (or resume, given the unfinished `job` of this file) in `chunks` chunks."""
    if job is None:
        job = await _start(engine, source, sha256, filename, chunks)
    if job.state == "staging" or not await _stage_intact(engine, job):
        job = await _stage(engine, job, rows, filename, source, progress)
    progress("apply", 0)
    fresh = job.done_chunks == 0 and await _derived_empty(engine)
    for chunk in range(job.done_chunks, job.chunks):
        await _apply_chunk(engine, job, chunk, source, fresh, progress)
        if fresh and (chunk + 1) & chunk == 0:  # 1, 2, 4, 8... chunks into an empty database
            await single.refresh_statistics(engine, single.GROWING_TABLES)
    await _build_rollups(engine, progress)
    result = await _finish(engine, job, filename, sha256)
    if result.changed_customers >= single.REANALYZE_AFTER:
        await single.refresh_statistics(engine)
    return result
