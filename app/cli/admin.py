"""Server-side admin commands: `tidemill keys ...` (API keys, in the database), `tidemill
queries ...` (the persisted queries the server registers from `queries/`) and `tidemill
rollups ...` (which dimensions the rollups keep, and whether they agree with the
movements)."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from app.cli.common import FormatOption, Group, console, errors, fail
from app.cli.output import Format, View, render
from app.config import load_settings
from app.errors import UserError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from app.metrics.rollup import Added
    from app.security.keys import ApiKey

T = TypeVar("T")

keys = typer.Typer(
    cls=Group, help="API keys: create, list, revoke (talks to the database).", no_args_is_help=True
)
queries = typer.Typer(
    cls=Group,
    help="Persisted queries: the documents in queries/ and their hashes.",
    no_args_is_help=True,
)
rollups = typer.Typer(
    cls=Group,
    help="Rolled-up dimensions: list, add, drop, check (talks to the database).",
    no_args_is_help=True,
)


def with_engine(work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run `work` against the configured database (migrated first); user errors exit 1."""
    from app import migrate
    from app.db import create_engine

    async def run() -> T:
        engine = create_engine(load_settings())
        try:
            await migrate.upgrade(engine)
            return await work(engine)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(run())
    except UserError as error:
        raise fail(str(error)) from None


def _when(moment: datetime.datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else ""


def _key_row(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "scopes": ",".join(key.scopes),
        "created": _when(key.created_at),
        "last used": _when(key.last_used_at) or "never",
        "revoked": _when(key.revoked_at),
    }


def _print(rows: Sequence[dict[str, Any]], fmt: Format, title: str) -> None:
    render(View(rows, title=title, empty=f"no {title}"), fmt, console)


@keys.command("create")
def create(
    name: Annotated[str, typer.Option(help="What uses the key: dashboard, partner-acme, ...")],
    scope: Annotated[
        list[str] | None,
        typer.Option(help="read, write, admin or partner (repeatable, or comma-separated)."),
    ] = None,
) -> None:
    """Create a key and print it once: only its hash is stored."""
    from app.security.keys import create_key, parse_scopes

    try:
        scopes = parse_scopes(scope or ["read"])
    except UserError as error:
        raise fail(str(error)) from None
    stored, key = with_engine(lambda engine: create_key(engine, name, scopes))
    errors.print(
        f"created key {stored.name!r} (id {stored.id}, scopes {', '.join(stored.scopes)}); "
        "store it now, it is not shown again:"
    )
    print(key)


@keys.command("list")
def list_command(fmt: FormatOption = Format.TABLE) -> None:
    """Every key: name, scopes, created, last used, revoked (never the key itself)."""
    from app.security.keys import list_keys

    rows = [_key_row(key) for key in with_engine(list_keys)]
    _print(rows, fmt, title="API keys")


@keys.command("revoke")
def revoke(
    name_or_id: Annotated[str, typer.Argument(metavar="NAME_OR_ID", help="The key to revoke.")],
) -> None:
    """Revoke a key; requests that send it are refused from now on."""
    from app.security.keys import revoke_key

    revoked = with_engine(lambda engine: revoke_key(engine, name_or_id))
    console.print(f"revoked key {revoked.name!r} (id {revoked.id})")


@queries.command("list")
def list_queries(fmt: FormatOption = Format.TABLE) -> None:
    """Each document in queries/ with the sha256 it is registered under (as gql sends it), and
    the one of the form Apollo Client sends (with __typename added)."""
    from app.config import QUERIES_DIR
    from app.security.persisted import read_documents

    pairs = [read_documents(path) for path in sorted(QUERIES_DIR.glob("*.graphql"))]
    rows = [
        {"name": plain.name, "sha256": plain.sha256, "apollo sha256": apollo.sha256}
        for plain, apollo in pairs
    ]
    _print(rows, fmt, title="persisted queries")


DimensionsArgument = Annotated[
    list[str],
    typer.Argument(
        metavar="DIMENSION...",
        help=(
            "status, pricing_model, collection_method, product, customer_country or region "
            "(one or more)."
        ),
    ),
]


@rollups.command("list")
def list_rollups(fmt: FormatOption = Format.TABLE) -> None:
    """Each dimension the rollups can keep: whether they do, and their rows."""
    from app.metrics import rollup
    from app.tables import rollup_dimension

    async def read(
        engine: AsyncEngine,
    ) -> tuple[set[str], dict[str, int], tuple[list[str], int, int] | None]:
        import sqlalchemy as sa

        async with engine.connect() as connection:
            added = set(await connection.scalars(sa.select(rollup_dimension.c.name)))
            counts = await rollup.dimension_rows(connection)
            return added, counts, await rollup.unfinished_build(connection)

    added, counts, unfinished = with_engine(read)
    building = set(unfinished[0]) if unfinished else set()

    def state(name: str) -> str:
        if name in rollup.ALWAYS:
            return "always"
        if name in added:
            return "yes"
        if name in building and unfinished is not None:
            done, total = unfinished[1], unfinished[2]
            share = f"{done / total:.0%}" if total else "0%"
            return f"no (an interrupted add built {share}: run it again to resume)"
        return "no"

    rows = [
        {"dimension": name, "rolled up": state(name), "rows": counts.get(name, 0)}
        for name in (*rollup.ALWAYS, *rollup.OPTIONAL)
    ]
    _print(rows, fmt, title="rolled-up dimensions")


@rollups.command("add")
def add_rollups(names: DimensionsArgument) -> None:
    """Roll up these dimensions too: their breakdowns and one-value series read per-period
    rows instead of deriving movements from the ledger (built now, from every customer, slice
    by slice: interrupted, run it again to resume; each makes imports and recomputes a little
    longer)."""
    from app.cli.progress import count_progress
    from app.metrics import rollup

    async def add(engine: AsyncEngine) -> rollup.Added:
        with count_progress() as progress:
            task = progress.add_task("building rollups (customers)", total=None)

            def advance(count: int, total: int) -> None:
                if count == 0:
                    progress.update(task, total=total)
                else:
                    progress.advance(task, count)

            return await rollup.add_dimensions(engine, names, advance)

    try:
        added = with_engine(add)
    except KeyboardInterrupt:
        errors.print(
            "interrupted: the customers built so far are kept, and nothing is rolled up yet; "
            "run the same command again to resume (it starts again if anything was written "
            "in between)"
        )
        raise typer.Exit(code=130) from None
    if not added.names:
        console.print("already rolled up: nothing to do")
    elif added.built:
        console.print(f"rolled up: {', '.join(added.names)}{_how(added)}")
    else:
        console.print(
            f"rolled up: {', '.join(added.names)}; the rollups are marked behind the movements "
            "(a migrated database), so every query scans until the next import rebuilds them, "
            "these dimensions included"
        )


def _how(added: Added) -> str:
    """How an add went with respect to an interrupted one (app.metrics.rollup.Added)."""
    if added.resumed_at is not None:
        return " (resumed where the interrupted run stopped)"
    if list(added.discarded) == added.names:
        return (
            " (built again from the first customer: the database was written to after the "
            "interrupted run)"
        )
    if added.discarded:
        return f" (the interrupted add of {', '.join(added.discarded)} was discarded)"
    return ""


@rollups.command("drop")
def drop_rollups(names: DimensionsArgument) -> None:
    """Stop rolling up these dimensions (their breakdowns scan the movements again)."""
    from app.metrics import rollup

    async def drop(engine: AsyncEngine) -> list[str]:
        async with engine.begin() as connection:
            return await rollup.drop_dimensions(connection, names)

    dropped = with_engine(drop)
    console.print(f"no longer rolled up: {', '.join(dropped) if dropped else 'none of them was'}")


@rollups.command("check")
def check_rollups(
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help=(
                "Rebuild the rollups from the movements when a row differs or they are marked "
                "behind (readers of the rollups wait until it commits)."
            ),
        ),
    ] = False,
    show: Annotated[int, typer.Option(min=0, help="The differing rows to print, at most.")] = 10,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Compare every rollup row with what the movements give now: exact sums, in one
    snapshot, nothing written. Exit 1 when a row differs (and --repair was not given)."""
    from app.cli.progress import count_progress
    from app.metrics import rollup

    def advancing(progress: Any, description: str) -> Callable[[int, int], None]:
        task = progress.add_task(description, total=None)

        def advance(count: int, total: int) -> None:
            if count == 0:
                progress.update(task, total=total)
            else:
                progress.advance(task, count)

        return advance

    async def run(engine: AsyncEngine) -> tuple[rollup.Checked, int | None]:
        with count_progress() as progress:
            checked = await rollup.check(
                engine, advancing(progress, "checking rollups (customers)"), show
            )
            rebuilt = None
            if repair and (checked.behind or checked.differences):
                rebuilt = await rollup.repair(
                    engine, advancing(progress, "rebuilding rollups (customers)")
                )
        return checked, rebuilt

    checked, rebuilt = with_engine(run)
    compared = f"{', '.join(checked.dimensions)} and the total"
    if checked.behind:
        console.print(
            "the rollups are marked behind the movements, so every query scans (exact) until "
            "they are rebuilt: by the next import, or by `tidemill rollups check --repair`"
        )
    elif checked.differences:
        rows = [
            {
                "table": difference.table,
                "key": " / ".join(difference.key),
                "sum": name,
                "stored": stored,
                "from the movements": expected,
            }
            for difference in checked.examples
            for name, (stored, expected) in difference.sums.items()
        ]
        if rows:
            _print(rows, fmt, title="rollup rows that differ")
        shown = ""
        if checked.examples:
            every = len(checked.examples) == checked.differences
            shown = " (above)" if every else f" (the first {len(checked.examples)} above)"
        many = checked.differences != 1
        what = f"{checked.differences:,} rollup row{'s' if many else ''}"
        if rebuilt is not None:
            errors.print(f"{what} differed from the movements{shown}")
        else:
            errors.print(
                f"{what} {'differ' if many else 'differs'} from the movements{shown}; "
                "`tidemill rollups check --repair` rebuilds the rollups"
            )
    else:
        console.print(
            f"the rollups agree with the movements: {checked.rows:,} rows ({compared}) and "
            f"{checked.cohort_rows:,} cohort rows"
        )
    if rebuilt is not None:
        console.print(f"rebuilt the rollups from the movements: {rebuilt:,} rows ({compared})")
    elif checked.differences:
        raise typer.Exit(code=1)
