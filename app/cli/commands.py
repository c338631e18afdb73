"""The `tidemill` command: server-side admin commands and GraphQL client commands."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.markup import escape

from app.cli.admin import keys, queries, rollups
from app.cli.common import Group, console, errors, fail
from app.cli.metrics import register
from app.cli.sources import sources, sync, worker_command
from app.config import Settings, environment, load_settings
from app.errors import ImportFailed, UserError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

_T = TypeVar("_T")

# Heavy modules (SQLAlchemy, Alembic, gql) are imported inside the commands that use them, so
# every command starts fast.

cli = typer.Typer(
    cls=Group, help="Tidemill: subscription-revenue metrics over GraphQL.", no_args_is_help=True
)
importer = typer.Typer(cls=Group, help="Import data files.", no_args_is_help=True)
cli.add_typer(importer, name="import")
fx = typer.Typer(
    cls=Group, help="Exchange rates (value of one unit in the base currency).", no_args_is_help=True
)
cli.add_typer(fx, name="fx")
cli.add_typer(keys, name="keys")
cli.add_typer(queries, name="queries")
cli.add_typer(rollups, name="rollups")
cli.add_typer(sources, name="sources")
cli.add_typer(sync, name="sync")
cli.command("worker")(worker_command)
register(cli)


# --- server side -----------------------------------------------------------------------------


def create_engine(settings: Settings) -> AsyncEngine:
    from app.db import create_engine as create

    return create(settings)


async def _migrated_engine(settings: Settings, *, rates: bool = False) -> AsyncEngine:
    """The configured database's engine, its schema upgraded first (any command that writes
    may be the first one run against a new database); `rates` (a server's start): on first
    use, the default FX table (ECB reference rates) loaded too."""
    from app import migrate
    from app.ingest.fx import ensure_ecb

    engine = create_engine(settings)
    try:
        await migrate.upgrade(engine)
        loaded = await ensure_ecb(engine, settings.base_currency) if rates else 0
    except BaseException:
        await engine.dispose()
        raise
    if loaded:
        console.print(f"loaded {loaded} ECB reference rates to {settings.base_currency}")
    return engine


async def _migrate(settings: Settings) -> None:
    """Upgrade the schema, load the default FX table on first use (see `_migrated_engine`)."""
    engine = await _migrated_engine(settings, rates=True)
    await engine.dispose()


@cli.command("migrate")
def migrate_command() -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    asyncio.run(_migrate(load_settings()))
    console.print("database schema is current")


def server_processes(settings: Settings) -> int:
    """`workers`, or one per core."""
    return settings.workers if settings.workers > 0 else max(1, os.cpu_count() or 1)


def _check_address(host: str, port: int) -> None:
    """Fail, saying why and what to change, when the server could not listen at host:port
    (taken by another server, or no such address here); uvicorn would say it in a log line."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = addresses[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as error:
        reason = error.strerror or str(error)
        raise fail(
            f"cannot listen on {host}:{port}: {reason.lower()} (another server there? "
            "choose another with --port / TIDEMILL_PORT, --host / TIDEMILL_HOST)"
        ) from None


def _serve(settings: Settings) -> None:
    import uvicorn

    from app.db import database_url

    _check_address(settings.host, settings.port)  # again: it may have been taken meanwhile

    # The app factory loads its settings again: it must see the address bound here, which
    # decides whether keyless access may be allowed at all.
    os.environ.update(environment(settings, "host", "port"))
    where = (settings.database_url and "TIDEMILL_DATABASE_URL") or f"embedded ({settings.data_dir})"
    if not settings.database_url:
        # started here, once: every server process connects to it (and none stops it)
        url = database_url(settings).render_as_string(hide_password=False)
        os.environ["TIDEMILL_DATABASE_URL"] = url
    workers = server_processes(settings)
    console.print(f"database: {where}; {workers} server process{'es' if workers > 1 else ''}")
    console.print(
        f"GraphQL (GraphiQL in a browser): http://{settings.host}:{settings.port}/graphql"
    )
    uvicorn.run(
        "schema.asgi:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
    )


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Server processes (default: TIDEMILL_WORKERS, else one per core). They share "
            "the port; results are cached per process, keyed by the data version."
        ),
    ] = None,
) -> None:
    """Migrate the database if needed and serve GraphQL at /graphql."""
    if workers is not None and workers < 1:
        raise fail(f"--workers must be at least 1, not {workers}")
    settings = load_settings(host=host, port=port, workers=workers)
    _check_address(settings.host, settings.port)  # before any work
    asyncio.run(_migrate(settings))
    _serve(settings)


DEMO_STAGES = {"read": "subscription periods", "apply": "deriving movements"}


@cli.command()
def demo(
    customers: Annotated[
        int,
        typer.Option(
            min=1, max=1_000_000, help="Customers signing up in the demo's first five years."
        ),
    ] = 300,
    seed: Annotated[int, typer.Option(help="Random seed (same seed and day, same company).")] = 7,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve")] = True,
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.")] = None,
) -> None:
    """Load the generated demo company, from 2022-01-01 up to today (idempotent), then serve it."""
    from app.demo import load_demo

    settings = load_settings(host=host, port=port)
    if serve_after:
        _check_address(settings.host, settings.port)  # before loading the demo

    async def load() -> Any:
        engine = await _migrated_engine(settings, rates=True)
        try:
            with count_progress() as progress:
                task = progress.add_task("demo company: subscription periods", total=None)

                def advance(stage: str, count: int) -> None:
                    label = DEMO_STAGES.get(stage, stage)
                    progress.update(task, advance=count, description=f"demo company: {label}")

                return await load_demo(engine, customers, seed, progress=advance)
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(load())
    except UserError as error:
        raise fail(str(error)) from None
    console.print(result.summary)
    for line in result.lines:
        console.print(f"  {line}")
    if serve_after:
        _serve(settings)


@importer.command("subscriptions")
def import_subscriptions(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV file.")],
    source: Annotated[str, typer.Option(help="Source name the ids belong to.")] = "csv",
) -> None:
    """Import a subscription-periods CSV (see README). Checked whole before anything is
    saved; a large file is applied in chunks of customers; re-running resumes or is a no-op."""
    from app.cli.progress import file_progress
    from app.ingest.chunked import chunk_count, estimated_rows
    from app.ingest.csvfile import TextLines
    from app.ingest.subscriptions import file_sha256, load_periods
    from connectors.csv.subscriptions import PeriodsFile, read_periods

    settings = load_settings()
    expected = estimated_rows(path)
    # chunks of the import (the job's own when one is resumed), and how many are committed
    done = {"chunks": chunk_count(expected, settings.import_chunk_rows), "applied": 0}

    def interrupted() -> str:
        if done["chunks"] == 1:  # one transaction
            return "nothing was saved"
        if done["applied"] == 0:
            return "no chunk was saved yet; run the same command again to resume"
        return (
            f"{done['applied']} of {done['chunks']} chunks were saved, each of their customers "
            "whole (the others as before); run the same command again to resume"
        )

    async def load() -> Any:
        engine = await _migrated_engine(settings)
        try:
            with path.open("rb") as handle, file_progress() as progress:
                lines = TextLines(handle)
                header, rows = read_periods(lines, settings.base_currency)
                if header.problems():
                    raise ImportFailed(str(path), [(1, problem) for problem in header.problems()])
                task = progress.add_task(f"importing {path.name}", total=path.stat().st_size)

                size = path.stat().st_size

                def advance(stage: str, count: int) -> None:
                    if stage == "chunks":
                        done["chunks"] = count
                    elif stage == "resume":
                        done["applied"] = count
                        console.print(
                            f"resuming the interrupted import of {path.name}: {count} of "
                            f"{done['chunks']} chunks were applied before"
                        )
                    elif stage == "read":
                        progress.update(task, completed=lines.consumed)
                    elif stage == "read_bytes":  # read in parts by several processes
                        progress.update(task, completed=count)
                    elif stage == "check":
                        progress.update(task, description="checking the whole file")
                    elif stage == "apply":
                        progress.update(task, description="applying changes", completed=size)
                    elif stage == "chunk":
                        done["applied"] = count
                        label = f"applied chunk {count} of {done['chunks']}"
                        progress.update(task, description=label, completed=size)
                    elif stage == "indexes":  # `count` indexes a first import deferred
                        progress.update(task, description="building indexes", total=count)
                        progress.update(task, completed=0)
                    elif stage == "index":
                        progress.advance(task, count)
                    elif stage == "rollups":  # a rebuild of `count` customers begins
                        progress.update(task, description="building rollups", total=count)
                        progress.update(task, completed=0)
                    elif stage == "rollup":
                        progress.advance(task, count)
                    elif stage == "settle":  # VACUUM (ANALYZE) of the derived tables
                        progress.update(task, description="vacuuming the derived tables")

                return await load_periods(
                    engine,
                    rows,
                    filename=str(path),
                    sha256=file_sha256(path),
                    source=source,
                    progress=advance,
                    expected_rows=expected,
                    chunk_rows=settings.import_chunk_rows,
                    parted=PeriodsFile(
                        path, header.names, settings.base_currency, settings.import_processes
                    ),
                )
        finally:
            await engine.dispose()

    result = _run_import(path, load, interrupted)
    console.print(
        f"imported {result.rows} rows: {result.changed_subscriptions} subscriptions changed, "
        f"{result.changed_customers} customers recomputed"
    )


def _run_import(
    path: Path,
    load: Callable[[], Coroutine[Any, Any, _T]],
    interrupted: Callable[[], str] = lambda: "nothing was saved",
) -> _T:
    """Run an import; a bad file exits 1 with `file, line N: reason` per bad line; Ctrl-C
    exits 130, and a statement the database stopped exits 1, each saying what was kept
    (`interrupted`) and how to go on."""
    from sqlalchemy.exc import DBAPIError

    from app.db import connection_refused

    try:
        return asyncio.run(load())
    except KeyboardInterrupt:
        errors.print(f"interrupted: {interrupted()}", soft_wrap=True)
        raise typer.Exit(code=130) from None
    except ImportFailed as error:
        raise fail("import failed, nothing was saved:\n  " + "\n  ".join(error.problems)) from None
    except UserError as error:
        raise fail(str(error)) from None
    except OSError as error:
        if error.filename is None:  # not the file (the database, say): not for this message
            raise
        raise fail(f"{path}: {error.strerror or error}") from None
    except DBAPIError as error:  # the server stopped a statement (a timeout, say)
        if connection_refused(error) is not None:  # the database cannot be used at all: said
            raise  # by the command's caller, with the URL and the setting to change
        said = str(error.orig or error).strip().splitlines()[0]
        raise fail(f"the database stopped the import ({said}): {interrupted()}") from None


@importer.command("attributes")
def import_attributes(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV file.")],
) -> None:
    """Import customer attribute values: first column the customer id or external id, one
    column per attribute key (define keys first). All or nothing; empty cells are skipped."""
    from app.attributes import SETTLE_AFTER, import_csv, settle
    from app.cli.progress import file_progress
    from app.ingest.csvfile import TextLines

    settings = load_settings()

    async def load() -> tuple[int, int]:
        engine = await _migrated_engine(settings)
        try:
            with path.open("rb") as handle, file_progress() as progress:
                lines = TextLines(handle)
                task = progress.add_task(f"importing {path.name}", total=path.stat().st_size)
                rows, values = await import_csv(
                    engine,
                    lines,
                    str(path),
                    lambda _line: progress.update(task, completed=lines.consumed),
                )
            if values >= SETTLE_AFTER:
                with console.status("vacuuming the attribute values"):
                    await settle(engine)
            return rows, values
        finally:
            await engine.dispose()

    rows, values = _run_import(path, load)
    console.print(f"imported {values} attribute values for {rows} customers")


@importer.command("events")
def import_events(
    path: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="NDJSON, or CSV (.csv) file.")
    ],
    source: Annotated[str, typer.Option(help="Source the event ids belong to.")] = "events",
) -> None:
    """Import usage events: NDJSON (one {id, customer, name, timestamp, properties} per line)
    or CSV (columns id, customer, name, timestamp, optionally properties and product, any
    other column a property; each named once). Bad lines are reported and skipped; an
    interrupted import resumes."""
    from app.cli.progress import file_progress
    from app.usage.bulk import ImportSummary
    from app.usage.bulk import import_events as load_events

    settings = load_settings()

    async def load() -> ImportSummary:
        engine = await _migrated_engine(settings)
        try:
            with file_progress() as progress:
                task = progress.add_task(f"importing {path.name}", total=path.stat().st_size)
                return await load_events(
                    engine, path, source, lambda done: progress.update(task, completed=done)
                )
        finally:
            await engine.dispose()

    result = _run_import(path, load, lambda: EVENTS_INTERRUPTED)
    if result.already_done:
        console.print(f"{path} was imported before: nothing to do")
        return
    if result.resumed_at:
        console.print(f"resumed {path} at byte {result.resumed_at:,}")
    console.print(
        f"{result.lines:,} events read: {result.accepted:,} stored, "
        f"{result.duplicates:,} duplicates, {result.rejected:,} rejected"
    )
    for item in result.reasons:
        console.print(f"  event {item.index} ({item.id or 'no id'}): {item.reason}")
    if result.rejected > len(result.reasons):
        console.print(f"  ... and {result.rejected - len(result.reasons):,} more rejected")


EVENTS_INTERRUPTED = (
    "the events stored so far are kept; run the same command again to resume where it stopped"
)


@fx.command("load")
def fx_load() -> None:
    """(Re)load the ECB reference rates shipped with Tidemill; your own rates are kept."""
    from app.ingest.fx import load_ecb

    settings = load_settings()

    async def load() -> int:
        engine = await _migrated_engine(settings)
        try:
            return await load_ecb(engine, settings.base_currency)
        finally:
            await engine.dispose()

    count = asyncio.run(load())
    console.print(f"loaded {count} ECB reference rates to {settings.base_currency}")


@fx.command("import")
def fx_import(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV file.")],
) -> None:
    """Load or override rates from a CSV with columns date,currency,rate (all or nothing)."""
    from app.ingest.csvfile import TextLines
    from app.ingest.fx import import_rates, parse_rates

    settings = load_settings()

    async def load() -> int:
        with path.open("rb") as handle:
            rates = parse_rates(TextLines(handle), str(path))
        engine = await _migrated_engine(settings)
        try:
            return await import_rates(engine, rates)
        finally:
            await engine.dispose()

    count = _run_import(path, load)
    console.print(f"imported {count} rates from {path}")


def count_progress() -> Any:
    from app.cli.progress import count_progress as progress

    return progress()


def main() -> None:
    """`tidemill`: a bad setting, or a database that cannot be reached or refuses the
    connection, is the user's to fix, told as such (which database, the server's reason),
    not with a traceback."""
    from app.db import connection_refused

    try:
        cli()
    except UserError as error:  # one no command reported itself (a bad TIDEMILL_DATABASE_URL)
        errors.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True)
        raise SystemExit(1) from None
    except Exception as error:
        reason = connection_refused(error)
        if reason is None:
            raise
        errors.print(f"[red]error:[/red] {escape(_database_problem(reason))}", soft_wrap=True)
        raise SystemExit(1) from None


def _database_problem(reason: str) -> str:
    from sqlalchemy.engine import make_url

    settings = load_settings()
    if settings.database_url:
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        fix = "check TIDEMILL_DATABASE_URL (postgresql://user:password@host:port/database)"
    else:
        where = f"the embedded PostgreSQL in {settings.data_dir / 'pg'}"
        fix = "check that directory, or set TIDEMILL_DATABASE_URL to a PostgreSQL database"
    return f"cannot use the database {where}: {reason}; {fix}"


if __name__ == "__main__":
    main()
