"""The `tidemill` command: server-side admin commands and GraphQL client commands."""

from __future__ import annotations

import asyncio
import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from app.config import Settings, load_settings
from app.errors import UserError
from app.output import Format, cell, render

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

# Heavy modules (SQLAlchemy, Alembic, gql) are imported inside the commands that use them, so
# every command starts fast.

console = Console()
errors = Console(stderr=True)
cli = typer.Typer(help="Tidemill: subscription-revenue metrics over GraphQL.", no_args_is_help=True)
importer = typer.Typer(help="Import data files.", no_args_is_help=True)
cli.add_typer(importer, name="import")
fx = typer.Typer(
    help="Exchange rates (value of one unit in the base currency).", no_args_is_help=True
)
cli.add_typer(fx, name="fx")


class IntervalChoice(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


FormatOption = Annotated[Format, typer.Option("--format", "-f", help="table, json or csv")]
StartOption = Annotated[
    datetime.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="First day (YYYY-MM-DD).")
]
EndOption = Annotated[
    datetime.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Last day (YYYY-MM-DD).")
]
IntervalOption = Annotated[IntervalChoice, typer.Option(help="Period length of the series.")]
DimensionOption = Annotated[
    list[str] | None, typer.Option("--dimension", "-d", help="Break down by (repeatable).")
]
FilterOption = Annotated[
    list[str] | None, typer.Option("--filter", help="key=value or key=v1,v2 (repeatable).")
]


def fail(message: str) -> typer.Exit:
    errors.print(f"[red]error:[/red] {message}")
    return typer.Exit(code=1)


# --- server side -----------------------------------------------------------------------------


def create_engine(settings: Settings) -> AsyncEngine:
    from app.db import create_engine as create

    return create(settings)


async def _migrate(settings: Settings) -> None:
    """Upgrade the schema; on first use, load the default FX table (ECB reference rates)."""
    from app import migrate
    from app.ingest.fx import ensure_ecb

    engine = create_engine(settings)
    try:
        await migrate.upgrade(engine)
        loaded = await ensure_ecb(engine, settings.base_currency)
        if loaded:
            console.print(f"loaded {loaded} ECB reference rates to {settings.base_currency}")
    finally:
        await engine.dispose()


@cli.command("migrate")
def migrate_command() -> None:
    """Create or upgrade the database schema (Alembic migrations)."""
    asyncio.run(_migrate(load_settings()))
    console.print("database schema is current")


def _serve(settings: Settings) -> None:
    import uvicorn

    where = (settings.database_url and "TIDEMILL_DATABASE_URL") or f"embedded ({settings.data_dir})"
    console.print(f"database: {where}")
    console.print(
        f"GraphQL (GraphiQL in a browser): http://{settings.host}:{settings.port}/graphql"
    )
    uvicorn.run("schema.asgi:create_app", factory=True, host=settings.host, port=settings.port)


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.")] = None,
) -> None:
    """Migrate the database if needed and serve GraphQL at /graphql."""
    settings = load_settings(host=host, port=port)
    asyncio.run(_migrate(settings))
    _serve(settings)


@cli.command()
def demo(
    customers: Annotated[int, typer.Option(help="How many demo customers.")] = 300,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same company).")] = 7,
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve")] = True,
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.")] = None,
) -> None:
    """Load the generated demo company (idempotent), then serve it."""
    from app.demo import load_demo

    settings = load_settings(host=host, port=port)

    async def load() -> None:
        await _migrate(settings)
        engine = create_engine(settings)
        try:
            with count_progress() as progress:
                task = progress.add_task("demo company: loading subscription periods", total=None)

                def advance(stage: str, count: int) -> None:
                    progress.update(task, advance=count, description=f"demo company: {stage}")

                result = await load_demo(engine, customers, seed, advance)
        finally:
            await engine.dispose()
        console.print(
            f"demo company: {result.rows} periods, {result.changed_customers} customers updated"
        )

    asyncio.run(load())
    if serve_after:
        _serve(settings)


@importer.command("subscriptions")
def import_subscriptions(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV file.")],
    source: Annotated[str, typer.Option(help="Source name the ids belong to.")] = "csv",
) -> None:
    """Import a subscription-periods CSV (see README). All or nothing; re-running is safe."""
    from app.ingest.subscriptions import file_sha256, load_periods
    from app.progress import CountingLines, file_progress
    from connectors.csv.subscriptions import read_periods

    settings = load_settings()

    async def load() -> Any:
        engine = create_engine(settings)
        try:
            with path.open(newline="", encoding="utf-8") as handle, file_progress() as progress:
                lines = CountingLines(handle)
                header, rows = read_periods(lines, settings.base_currency)
                if header.problems():
                    raise UserError(f"{path}: " + "; ".join(header.problems()))
                task = progress.add_task(f"importing {path.name}", total=path.stat().st_size)

                def advance(stage: str, _count: int) -> None:
                    done = lines.consumed if stage == "read" else path.stat().st_size
                    label = "applying changes" if stage == "apply" else f"importing {path.name}"
                    progress.update(task, completed=done, description=label)

                return await load_periods(
                    engine,
                    rows,
                    filename=str(path),
                    sha256=file_sha256(path),
                    source=source,
                    progress=advance,
                )
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(load())
    except UserError as error:
        raise fail(str(error)) from None
    console.print(
        f"imported {result.rows} rows: {result.changed_subscriptions} subscriptions changed, "
        f"{result.changed_customers} customers recomputed"
    )


@fx.command("load")
def fx_load() -> None:
    """(Re)load the ECB reference rates shipped with Tidemill; your own rates are kept."""
    from app.ingest.fx import load_ecb

    settings = load_settings()

    async def load() -> int:
        engine = create_engine(settings)
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
    from app.ingest.fx import import_rates, parse_rates

    settings = load_settings()

    async def load() -> int:
        with path.open(newline="", encoding="utf-8") as handle:
            rates = parse_rates(handle, str(path))
        engine = create_engine(settings)
        try:
            return await import_rates(engine, rates)
        finally:
            await engine.dispose()

    try:
        count = asyncio.run(load())
    except UserError as error:
        raise fail(str(error)) from None
    console.print(f"imported {count} rates from {path}")


# --- client side -----------------------------------------------------------------------------


def _spec(dimensions: list[str] | None, filters: list[str] | None) -> dict[str, Any]:
    parsed = []
    for item in filters or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise fail(f"--filter {item!r} is not key=value")
        values = value.split(",")
        parsed.append({"field": key, "op": "IN" if len(values) > 1 else "EQ", "values": values})
    return {"dimensions": dimensions or [], "filters": parsed}


def _query(name: str, variables: dict[str, Any]) -> dict[str, Any]:
    from app.client import ClientError, run

    try:
        return run(load_settings(), name, variables)
    except ClientError as error:
        raise fail(str(error)) from None


def _day(value: datetime.datetime | None) -> str | None:
    return value.date().isoformat() if value else None


def _range(start: datetime.datetime | None, end: datetime.datetime | None) -> tuple[str, str]:
    today = datetime.datetime.now(datetime.UTC).date()
    last = end.date() if end else today
    first = start.date() if start else last.replace(day=1) - datetime.timedelta(days=365)
    return first.replace(day=first.day).isoformat(), last.isoformat()


def _metric_command(
    fields: list[str],
    at: datetime.datetime | None,
    start: datetime.datetime | None,
    end: datetime.datetime | None,
    interval: IntervalChoice,
    dimension: list[str] | None,
    filters: list[str] | None,
    fmt: Format,
) -> None:
    spec = _spec(dimension, filters)
    if start is None and end is None and not dimension:
        data = _query("MrrSnapshot", {"at": _day(at), "spec": spec})["snapshot"]
        render([{"date": data["date"], **{f: data[f] for f in fields if f in data}}], fmt)
        return
    first, last = _range(start, end)
    variables = {"start": first, "end": last, "interval": interval.name, "spec": spec}
    if dimension:
        series = _query("MrrBreakdown", variables)["series"]
        rows = [
            {"key": entry["label"], "date": p["date"], **{f: p[f] for f in fields}}
            for entry in series["breakdown"]
            for p in entry["points"]
        ]
    else:
        series = _query("MrrSeries", variables)["series"]
        rows = [{"date": p["date"], **{f: p[f] for f in fields}} for p in series["points"]]
    render(rows, fmt, currency=series["currency"])


MRR_FIELDS = [
    "mrr",
    "customers",
    "arpa",
    "new",
    "expansion",
    "contraction",
    "churn",
    "reactivation",
    "netNewMrr",
]


@cli.command()
def mrr(
    at: Annotated[
        datetime.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="MRR on this day.")
    ] = None,
    start: StartOption = None,
    end: EndOption = None,
    interval: IntervalOption = IntervalChoice.MONTH,
    dimension: DimensionOption = None,
    filters: FilterOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """MRR today (or --at a day), or a series with --start/--end [--interval]."""
    _metric_command(MRR_FIELDS, at, start, end, interval, dimension, filters, fmt)


@cli.command()
def arr(
    at: Annotated[
        datetime.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="ARR on this day.")
    ] = None,
    start: StartOption = None,
    end: EndOption = None,
    interval: IntervalOption = IntervalChoice.MONTH,
    dimension: DimensionOption = None,
    filters: FilterOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """ARR (12 x MRR) today, --at a day, or as a series."""
    _metric_command(["arr", "customers"], at, start, end, interval, dimension, filters, fmt)


SUMMARY_METRICS = [
    "mrr",
    "arr",
    "customers",
    "arpa",
    "netNewMrr",
    "customerChurnRate",
    "mrrChurnRate",
    "quickRatio",
]


@cli.command()
def summary(
    start: StartOption = None,
    end: EndOption = None,
    interval: IntervalOption = IntervalChoice.MONTH,
    filters: FilterOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Headline numbers: the last period against the one before it."""
    today = datetime.datetime.now(datetime.UTC).date()
    last = end.date() if end else today
    first = (
        start.date() if start else (last.replace(day=1) - datetime.timedelta(days=1)).replace(day=1)
    )
    variables = {
        "start": first.isoformat(),
        "end": last.isoformat(),
        "interval": interval.name,
        "spec": _spec(None, filters),
    }
    series = _query("Summary", variables)["series"]
    rows = [{"metric": name, **series[name]} for name in SUMMARY_METRICS]
    if fmt is Format.TABLE:
        rows = [
            {
                "metric": row["metric"],
                "current": cell(row["metric"], row["current"]),
                "previous": cell(row["metric"], row["previous"]),
                "change": cell("percentageChange", row["percentageChange"]),
            }
            for row in rows
        ]
    render(rows, fmt, currency=series["currency"], title=f"{first} to {last}")


def count_progress() -> Any:
    from app.progress import count_progress as progress

    return progress()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
