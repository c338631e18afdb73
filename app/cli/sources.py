"""Server-side source commands (they talk to the database): `tidemill sources ...`,
`tidemill sync stripe`, `tidemill worker`."""

from __future__ import annotations

import asyncio
import enum
import json
import signal
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli.admin import _print, with_engine
from app.cli.common import FormatOption, Group, console, errors
from app.cli.output import Format
from app.config import load_settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from app.ingest.sources import Source

sources = typer.Typer(
    cls=Group,
    help="Connected billing systems: add, list, events, replay, remove, rekey (database).",
    no_args_is_help=True,
)
sync = typer.Typer(cls=Group, help="Backfill a source's history (resumable).", no_args_is_help=True)


class Kind(enum.StrEnum):
    STRIPE = "stripe"


class Status(enum.StrEnum):
    RECEIVED = "received"
    PENDING = "pending"
    PROCESSED = "processed"
    FAILED = "failed"
    IGNORED = "ignored"


def _when(moment: Any) -> str:
    return moment.isoformat(timespec="seconds") if moment else ""


def _row(found: Source) -> dict[str, Any]:
    return {
        "id": found.id,
        "name": found.name,
        "kind": found.kind,
        "webhookPath": found.webhook_path,
        "created": _when(found.created_at),
        "last event": _when(found.last_event_at),
        "received": found.events.received,
        "pending": found.events.pending,
        "failed": found.events.failed,
    }


async def _named(engine: AsyncEngine, name: str) -> Source:
    from app.ingest.sources import find_source

    return await find_source(engine, name)


@sources.command("add")
def add(
    kind: Annotated[Kind, typer.Argument(help="The billing system: stripe.")],
    name: Annotated[str, typer.Option(help="A name for it (prod, eu, ...).")],
    api_key: Annotated[
        str, typer.Option(envvar="TIDEMILL_STRIPE_API_KEY", help="Its secret API key (sk_...).")
    ],
    webhook_secret: Annotated[
        str,
        typer.Option(
            envvar="TIDEMILL_STRIPE_WEBHOOK_SECRET",
            help="Its webhook signing secret (whsec_...); several comma-separated in a rotation.",
        ),
    ],
    api_base: Annotated[
        str | None, typer.Option(help="A Stripe-compatible API's base URL (tests, proxies).")
    ] = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Connect a source; prints its id and webhook path (secrets are stored encrypted)."""
    from app.ingest.secrets import vault
    from app.ingest.sources import add_source

    secrets = {"api_key": api_key, "webhook_secret": webhook_secret}
    settings = {"api_base": api_base} if api_base else {}
    keys = vault(load_settings())
    added = with_engine(
        lambda engine: add_source(engine, keys, kind.value, name, secrets, settings)
    )
    if fmt is Format.JSON:
        fields = {"id": added.id, "name": added.name, "kind": added.kind}
        print(json.dumps(fields | {"webhookPath": added.webhook_path}))
        return
    console.print(f"added {added.kind} source {added.name!r} (id {added.id})")
    console.print(f"webhook path: {added.webhook_path}")


@sources.command("list")
def list_command(fmt: FormatOption = Format.TABLE) -> None:
    """Every source with its inbox counts (never its secrets)."""
    from app.ingest.sources import list_sources

    _print([_row(found) for found in with_engine(list_sources)], fmt, title="sources")


@sources.command("events")
def events(
    source: Annotated[str, typer.Option(help="The source's name.")],
    status: Annotated[Status | None, typer.Option(help="Only events of this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """A source's inbox events, newest first (e.g. --status failed, with their errors)."""
    from app.ingest.inbox import events_of

    async def work(engine: AsyncEngine) -> list[Any]:
        found = await _named(engine, source)
        return await events_of(engine, found.id, status.value if status else None, limit)

    rows = [
        {
            "event": e.event_id,
            "type": e.type,
            "occurred": _when(e.occurred_at),
            "status": e.status,
            "attempts": e.attempts,
            "error": e.last_error or "",
        }
        for e in with_engine(work)
    ]
    _print(rows, fmt, title="events")


@sources.command("replay")
def replay(
    source: Annotated[str, typer.Option(help="The source's name.")],
    status: Annotated[Status, typer.Option(help="Queue the events of this status again.")] = (
        Status.FAILED
    ),
) -> None:
    """Queue a source's failed (or other) events again; the worker applies them."""
    from app.ingest.inbox import replay as queue

    async def work(engine: AsyncEngine) -> int:
        return await queue(engine, (await _named(engine, source)).id, status.value)

    console.print(f"queued {with_engine(work)} events again")


@sources.command("remove")
def remove(source: Annotated[str, typer.Option(help="The source's name.")]) -> None:
    """Remove a source, its inbox and everything it brought in."""
    from app.ingest.sources import remove_source

    async def work(engine: AsyncEngine) -> Source:
        return await remove_source(engine, (await _named(engine, source)).id)

    console.print(f"removed source {with_engine(work).name!r}")


@sources.command("rekey")
def rekey() -> None:
    """Encrypt every source's secrets with the first key of TIDEMILL_SECRET_KEY (rotation)."""
    from app.ingest.secrets import vault
    from app.ingest.sources import rekey as encrypt

    keys = vault(load_settings())
    console.print(f"re-encrypted the secrets of {with_engine(lambda e: encrypt(e, keys))} sources")


@sync.command("stripe")
def sync_stripe(
    source: Annotated[str, typer.Option(help="The Stripe source's name.")],
    apply: Annotated[
        bool, typer.Option("--apply/--no-apply", help="Also apply the events here.")
    ] = True,
) -> None:
    """Backfill a Stripe source: catalog, customers, subscriptions, invoices and the events
    Stripe still keeps, into the inbox; resumes an interrupted sync; then applies them."""
    from app.cli.progress import count_progress
    from app.ingest import worker
    from app.ingest.secrets import vault
    from connectors.registry import TRANSLATORS
    from connectors.stripe.backfill import backfill_source

    keys = vault(load_settings())

    async def work(engine: AsyncEngine) -> tuple[Any, int]:
        found = await _named(engine, source)
        with count_progress() as progress:
            task = progress.add_task(f"{found.name}: listing", total=None)

            def advance(resource: str, count: int) -> None:
                progress.update(task, advance=count, description=f"{found.name}: {resource}")

            result = await backfill_source(engine, keys, found.id, advance)
            applied = 0
            if apply:
                done = progress.add_task(f"{found.name}: applying", total=result.stored or None)

                def advanced(taken: int) -> None:
                    progress.update(done, advance=taken)

                applied = await worker.drain(
                    engine, TRANSLATORS, progress=advanced, keys=lambda: keys
                )
        return result, applied

    result, applied = with_engine(work)
    resumed = " (resumed)" if result.resumed else ""
    console.print(
        f"synced{resumed}: {result.pages} pages, {result.events} objects and events, "
        f"{result.stored} new; {applied} applied"
    )


def worker_command(
    concurrency: Annotated[
        int, typer.Option(min=1, max=16, help="Workers in this process, sharing the inbox.")
    ] = 1,
) -> None:
    """Apply inbox events (as `tidemill serve` does unless TIDEMILL_WORKER=false); several
    workers may share the inbox. Stops on Ctrl-C or SIGTERM."""
    from app.ingest import worker
    from app.ingest.secrets import vault
    from connectors.registry import TRANSLATORS

    keys = vault(load_settings())

    async def work(engine: AsyncEngine) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        errors.print("worker: applying inbox events (Ctrl-C stops)")
        await worker.run(engine, TRANSLATORS, stop, concurrency=concurrency, keys=lambda: keys)

    with_engine(work)
