"""COPY a large file's rows into a chunked import's staging table, with several processes.

Staging is bound by this process, not the server: parsing and checking a row and encoding it
for COPY cost about 5 µs of Python against about 1 µs of the server's (971,962 rows: 5.2 s of
this process's CPU, 0.9 s of the server's), so with one process the other core mostly waits.
A file that can be read in parts (`PartedSource`: a CSV file's rows after its header, split
on line starts outside quotes, app.ingest.csvfile.split_records) is read by several child
processes at once (TIDEMILL_IMPORT_PROCESSES, PROCESSES by default), each parsing its part
as the whole file would be parsed (the same line numbers) and COPYing it on a connection of
its own, in one transaction.

Only a good file is staged so: at its first bad line a part stops, the others are stopped,
and the caller stages the whole file again in one process (`None`), so a bad file is
reported exactly as before (every bad line, in order, the same count), whatever the split.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from typing import Any, Protocol

import asyncpg

from app.errors import BadLines, UserError
from app.ingest.csvfile import Part
from app.ingest.rows import PeriodRow

PROCESSES = 2  # by default (TIDEMILL_IMPORT_PROCESSES): one per core; the server's work fits
MIN_BYTES = 64 << 20  # smaller files (~500,000 rows) are staged by this process alone
COPY_BATCHES = 40  # parsed batches (app.ingest.subscriptions.BATCH rows) per COPY statement
POLL = 0.25  # seconds between looks at the children (progress, results)


class PartedSource(Protocol):
    """A file that can be read in parts, each by another process (so: picklable), by
    `processes` of them (1: not in parts)."""

    @property
    def processes(self) -> int: ...

    def parts(self, count: int) -> list[Part]: ...

    def read(self, part: Part) -> tuple[Iterator[PeriodRow | tuple[int, str]], Any]:
        """The part's rows (or bad lines) and an object whose `read_bytes` follows reading."""
        ...


class StagingFailed(UserError):
    """A staging process failed (not the file: the database, the machine); the message says
    why and how to go on (the CLI prints it, no traceback)."""

    code = "STAGING_FAILED"


async def copy_records(
    driver: asyncpg.Connection,
    table: str,
    records: Iterable[tuple[object, ...]],
    columns: Iterable[str],
    read: Callable[[int], None],
) -> None:
    """COPY `records` into `table`, COPY_BATCHES batches per statement (bounded statements),
    each fed as its rows are parsed: the server stores a batch while the next is read, so
    parsing and storing overlap. `read(n)` follows each batch of n records."""
    from app.ingest.subscriptions import batches  # (it imports this module)

    columns = list(columns)
    chunks = batches(records)
    batch = next(chunks, None)
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
                read(len(current))
                fed[0] = next(chunks, None)

        await driver.copy_records_to_table(table, records=feed(), columns=columns)
        batch = fed[0]


async def _copy_part(
    url: str, table: str, source: PartedSource, part: Part, read: Synchronized[int]
) -> tuple[str, int]:
    from app.ingest.subscriptions import STAGE_COLUMNS, Records

    rows, stream = source.read(part)
    records = Records(rows, BadLines(""), first_only=True)

    def progress(_: int) -> None:
        read.value = stream.read_bytes

    connection = await asyncpg.connect(url)
    try:
        async with connection.transaction():
            await copy_records(connection, table, records, STAGE_COLUMNS, progress)
            if records.problems:
                raise _BadPart
    except _BadPart:
        return "bad", 0
    finally:
        await connection.close()
    return "staged", records.count


class _BadPart(Exception):
    """A part holds a bad line (its rows are rolled back)."""


def _stage_part(
    url: str,
    table: str,
    source: PartedSource,
    part: Part,
    read: Synchronized[int],
    results: Connection,
) -> None:
    """A child process: one part staged; ("staged", rows), ("bad", 0) or ("failed", why)."""
    try:
        outcome = asyncio.run(_copy_part(url, table, source, part, read))
    except Exception as error:  # (reported to the parent, which raises it)
        results.send(("failed", f"{type(error).__name__}: {error}"))
    else:
        results.send(outcome)


@contextmanager
def _ctrl_c_ignored() -> Iterator[None]:
    """Within, this process ignores SIGINT, and so does for good a child started meanwhile
    (an ignored signal stays ignored across exec, and Python keeps it so). Ctrl-C is the
    parent's to handle (it stops the children): a child would otherwise print its own
    KeyboardInterrupt, wherever its start-up was. (Only the main thread may set a handler,
    and only it gets Ctrl-C: elsewhere, nothing to do.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


async def stage_in_parts(
    url: str,
    table: str,
    source: PartedSource,
    parts: list[Part],
    progress: Callable[[str, int], None],
) -> int | None:
    """Stage `parts` of `source` into `table` side by side, one child process each: the rows
    staged, or None when a part has a bad line (nothing of the file is left staged then by
    the parts; the caller empties the table for a serial run all the same). `progress`
    gets ("read_bytes", bytes of the file read so far)."""
    context = multiprocessing.get_context("spawn")  # (no fork of a process with an event loop)
    counters = [context.Value("q", 0, lock=False) for _ in parts]
    pipes = [context.Pipe(duplex=False) for _ in parts]
    children = [
        context.Process(
            target=_stage_part,
            args=(url, table, source, part, counter, sender),
            name=f"tidemill-stage-{number}",
            daemon=True,
        )
        for number, (part, counter, (_, sender)) in enumerate(
            zip(parts, counters, pipes, strict=True)
        )
    ]
    with _ctrl_c_ignored():
        for child in children:
            child.start()
    outcomes: dict[int, tuple[str, int | str]] = {}  # ("staged", rows), ("bad", 0), ("failed", why)
    try:
        while len(outcomes) < len(children):
            await asyncio.sleep(POLL)
            progress("read_bytes", parts[0][0] + sum(counter.value for counter in counters))
            for number, ((receiver, _), child) in enumerate(zip(pipes, children, strict=True)):
                if number in outcomes:
                    continue
                if receiver.poll():
                    outcomes[number] = receiver.recv()
                elif not child.is_alive() and not receiver.poll():
                    outcomes[number] = ("failed", f"exited with code {child.exitcode}")
            if any(kind != "staged" for kind, _ in outcomes.values()):
                break
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()
            child.join()
        for receiver, sender in pipes:
            receiver.close()
            sender.close()
    failed = [why for kind, why in outcomes.values() if kind == "failed"]
    if failed:
        raise StagingFailed(
            f"staging the file in parts failed: {failed[0]}; nothing of the file was applied: "
            "run the same command again, or with TIDEMILL_IMPORT_PROCESSES=1 to stage it in "
            "the importing process alone"
        )
    if any(kind == "bad" for kind, _ in outcomes.values()):
        return None
    return sum(rows for _, rows in outcomes.values() if isinstance(rows, int))
