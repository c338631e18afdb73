"""`tidemill import events FILE`: NDJSON or CSV usage events in bulk, resumable.

- **Formats.** NDJSON (one event object per line) or, for a `.csv` file, CSV with a header
  holding `id, customer, name, timestamp` and optionally `properties` (a JSON object) and
  `product`; any other column is a property (a value that reads as a number is one). Each
  column is named once; a property both in `properties` and a column rejects its line. A CSV
  record must fit on one line.
- **Chunks.** Lines are checked and stored CHUNK at a time through the ingest path
  (app/usage/ingest.py: COPY into a staging table, one statement to store and roll up), the
  next chunk read and checked (in a thread) while the previous one is stored. A bad
  line is rejected with its reason (the first MAX_REPORTED are listed) and the others go on.
- **Definitions changing meanwhile.** A chunk checked by metric definitions that changed before
  it was stored (app/usage/ingest.py, `RulesChanged`) is not stored: the file is read again
  from the last committed chunk, by the current definitions.
- **Resuming.** Each chunk commits with the file's byte offset in `usage_import` (keyed by the
  file's sha256): an import that stops (Ctrl-C, a crash) starts again after the last committed
  chunk; a finished file is not read again. Events are unique per (source, id) anyway, so even
  a chunk read twice is never applied twice.
"""

from __future__ import annotations

import asyncio
import csv
import datetime
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.errors import MAX_REPORTED, UserError
from app.ingest.csvfile import separator_problem
from app.ingest.subscriptions import file_sha256
from app.tables import usage_import
from app.usage.events import TOO_DEEP, Rejected, Unreadable, loads
from app.usage.ingest import (
    DEFAULT_SOURCE,
    Batch,
    IngestResult,
    Rules,
    RulesChanged,
    check,
    ensure_partitions,
    fewer_collections,
    rules,
    source_name,
    store,
)

CHUNK = 50_000
ANALYZE_FROM = 10_000  # events imported from which the tables' statistics are refreshed
# the columns whose statistics plans use: the events are chosen by customer, name and time;
# `properties` is read through expressions, which have none (and sorting a sample of JSON
# documents by value was two thirds of the ANALYZE: 2.7 s against 1.0 s at 1M events)
ANALYZED_COLUMNS = "customer_id, name, ts"
REQUIRED = ("id", "customer", "name", "timestamp")
KNOWN = (*REQUIRED, "properties", "product")
Progress = Callable[[int], None]  # bytes of the file read so far


@dataclass
class ImportSummary:
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    reasons: list[Rejected] = field(default_factory=list)
    resumed_at: int = 0  # the byte offset the import started from
    already_done: bool = False

    def add(self, lines: int, result: IngestResult) -> None:
        self.lines += lines
        self.accepted += result.accepted
        self.duplicates += result.duplicates
        self.rejected += len(result.rejected)
        room = MAX_REPORTED - len(self.reasons)
        self.reasons += result.rejected[: max(room, 0)]


class Reader:
    """Raw events (dicts, or a reason string) of an NDJSON or CSV file, from a byte offset."""

    def __init__(self, handle: BinaryIO, is_csv: bool) -> None:
        self.handle = handle
        self.header: list[str] | None = None
        if is_csv:
            self.header = self._header()

    def _header(self) -> list[str]:
        line = self.handle.readline()
        try:
            first = line.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise UserError(
                f"the CSV header (line 1) is not UTF-8 text (byte 0x{line[error.start]:02x} at "
                f"column {error.start + 1}): save the file as UTF-8"
            ) from None
        fields = _csv_fields(first)
        if isinstance(fields, Unreadable):
            raise UserError(f"the CSV header (line 1): {fields.reason}")
        header = [name.strip() for name in fields]
        if problem := separator_problem(header):
            raise UserError(problem)
        missing = [name for name in REQUIRED if name not in header]
        if missing:
            raise UserError(
                f"the CSV header lacks {', '.join(missing)}; it needs {', '.join(REQUIRED)} "
                "and may have properties (a JSON object), product and property columns"
            )
        unnamed = [str(number) for number, name in enumerate(header, 1) if not name]
        if unnamed:
            raise UserError(
                f"the CSV header has no name for column {', '.join(unnamed)}; every column "
                "is named once (a property column by its property)"
            )
        twice = sorted({name for name in header if header.count(name) > 1})
        if twice:
            raise UserError(
                f"the CSV header names {', '.join(twice)} more than once; every column is "
                "named once"
            )
        return header

    def start(self, offset: int) -> None:
        if offset > self.handle.tell():
            self.handle.seek(offset)

    def lines(self) -> Iterator[bytes]:
        """The non-empty lines from where the file stands."""
        for line in iter(self.handle.readline, b""):
            if line.strip():
                yield line

    def parse(self, line: bytes) -> object:
        if self.header is None:
            try:
                return loads(line)
            except UnicodeDecodeError:
                return Unreadable("the line is not UTF-8")
            except ValueError as error:
                return Unreadable(f"the line is not JSON: {error}")
            except RecursionError:
                return Unreadable(f"the line is {TOO_DEEP}")
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            return Unreadable("the line is not UTF-8")
        return _csv_event(self.header, text)


def _scalar(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if number == number and abs(number) != float("inf") else text


def _csv_fields(text: str) -> list[str] | Unreadable:
    """The fields of one CSV line; a carriage return inside it (outside quotes) is refused, as
    the csv module refuses it."""
    try:
        return next(csv.reader([text]), [])
    except csv.Error as error:
        if "new-line character" in str(error):
            return Unreadable("the line holds a carriage return (\\r) outside quotes")
        return Unreadable(f"the line is not CSV: {error}")


def _csv_event(header: list[str], text: str) -> object:
    values = _csv_fields(text)
    if isinstance(values, Unreadable):
        return values
    if len(values) != len(header):
        return Unreadable(f"the line has {len(values)} fields; the header has {len(header)}")
    row = dict(zip(header, values, strict=True))
    raw: dict[str, Any] = {name: row[name] for name in REQUIRED}
    properties: dict[str, Any] = {}
    if row.get("properties"):
        try:
            properties = json.loads(row["properties"])
        except ValueError:
            return Unreadable("properties is not a JSON object")
        if not isinstance(properties, dict):
            return Unreadable("properties is not a JSON object")
    for name, value in row.items():
        if name not in KNOWN and value != "":
            if name in properties:
                return Unreadable(f"property {name!r} is both in properties and a column")
            properties[name] = _scalar(value)
    raw["properties"] = properties
    raw["product"] = row.get("product") or None
    return raw


async def _progress_row(connection: AsyncConnection, sha256: str) -> Any:
    query = sa.select(usage_import).where(usage_import.c.sha256 == sha256)
    return (await connection.execute(query)).one_or_none()


def _save(sha256: str, filename: str, source: str, offset: int, summary: ImportSummary) -> Any:
    values = {
        "sha256": sha256,
        "filename": filename,
        "source": source,
        "committed_bytes": offset,
        "lines": summary.lines,
        "accepted": summary.accepted,
        "duplicates": summary.duplicates,
        "rejected": summary.rejected,
    }
    insert = postgresql.insert(usage_import).values(values)
    return insert.on_conflict_do_update(
        index_elements=["sha256"], set_={**values, "updated_at": sa.func.now()}
    )


@dataclass(frozen=True)
class Chunk:
    """Up to CHUNK lines, checked: the events to store, the rest counted."""

    batch: Batch
    result: IngestResult
    lines: int
    end: int  # the byte offset after its last line


def read_chunk(reader: Reader, found: Rules, first: int) -> Chunk | None:
    """The next chunk of the file (None at its end); CPU work, run in a thread."""
    raw: list[object] = []
    for line in reader.lines():
        raw.append(reader.parse(line))
        if len(raw) >= CHUNK:
            break
    if not raw:
        return None
    events, result = check(raw, found, datetime.datetime.now(datetime.UTC), first)
    return Chunk(Batch.of(events), result, len(raw), reader.handle.tell())


@dataclass
class _Import:
    engine: AsyncEngine
    sha256: str
    filename: str
    source: str
    summary: ImportSummary
    customers: dict[str, int] = field(default_factory=dict)
    stored_to: int = 0  # the byte offset committed so far

    async def rules(self) -> Rules:
        async with self.engine.connect() as connection:
            return await rules(connection)

    async def store(self, chunk: Chunk, found: Rules) -> None:
        """Store one chunk; commit it with the offset after its last line. The commit does
        not wait for the WAL to reach the disk: a chunk lost to a crash is read again when
        the import resumes from the offset committed with it."""
        await ensure_partitions(self.engine, chunk.batch.months)
        result = chunk.result
        async with self.engine.begin() as connection:
            await connection.exec_driver_sql("SET LOCAL synchronous_commit = off")
            stored = await store(connection, chunk.batch, self.source, found, self.customers)
            result.accepted = stored
            result.duplicates += chunk.batch.size - stored
            self.summary.add(chunk.lines, result)
            await connection.execute(
                _save(self.sha256, self.filename, self.source, chunk.end, self.summary)
            )
        self.stored_to = chunk.end


async def import_events(
    engine: AsyncEngine,
    path: Path,
    source: str = DEFAULT_SOURCE,
    progress: Progress = lambda _done: None,
) -> ImportSummary:
    """Import the events of `path` (module doc); resumes a file it has begun."""
    source = source_name(source)
    sha256 = file_sha256(path)
    summary, offset = ImportSummary(), 0
    async with engine.connect() as connection:
        done = await _progress_row(connection, sha256)
    if done is not None:
        summary = ImportSummary(done.lines, done.accepted, done.duplicates, done.rejected)
        summary.resumed_at = offset = done.committed_bytes
        summary.already_done = done.finished_at is not None
        if summary.already_done:
            return summary
    job = _Import(engine, sha256, str(path), source, summary)
    with path.open("rb") as handle, fewer_collections():
        reader = Reader(handle, path.suffix.lower() == ".csv")
        reader.start(offset)
        await _run(job, reader, progress)
    async with engine.begin() as connection:
        await connection.execute(
            sa.update(usage_import)
            .where(usage_import.c.sha256 == sha256)
            .values(finished_at=sa.func.now())
        )
        if summary.accepted >= ANALYZE_FROM:  # the series' plans need current statistics
            await connection.exec_driver_sql(f"ANALYZE usage_event ({ANALYZED_COLUMNS})")
            await connection.exec_driver_sql("ANALYZE usage_rollup")
    return summary


async def _run(job: _Import, reader: Reader, progress: Progress) -> None:
    """Read and check the next chunk (in a thread) while the previous one is stored."""
    first = job.summary.lines + 1
    job.stored_to = reader.handle.tell()  # where this run starts: a resumed offset, a header
    pending: asyncio.Task[None] | None = None
    while True:
        found = await job.rules()
        chunk = await asyncio.to_thread(read_chunk, reader, found, first)
        if pending is not None:
            try:
                await pending
            except RulesChanged:  # that chunk and this one were checked by old definitions
                pending = None
                reader.handle.seek(job.stored_to)
                first = job.summary.lines + 1
                continue
            progress(job.stored_to)
            pending = None
        if chunk is None:
            break
        first += chunk.lines
        pending = asyncio.create_task(job.store(chunk, found))
    if job.summary.lines == 0:  # an empty file: record it as imported all the same
        await job.store(Chunk(Batch.of([]), IngestResult(), 0, reader.handle.tell()), found)
