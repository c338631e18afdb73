"""Resolvers of sources and their inbox (the `admin` scope guards the writes)."""

from __future__ import annotations

from app.errors import UserError
from app.ids import parse_id
from app.ingest import inbox
from app.ingest import sources as service
from app.ingest.inbox import StoredEvent
from app.ingest.sources import EventStatus, Source, SourceKind, SourceServices
from resolvers.context import Context


def source_id(text: str) -> int:
    return parse_id(text, "source")


def _services(context: Context) -> SourceServices:
    if context.sources is None:
        raise UserError("sources are managed through a running server (tidemill serve)")
    return context.sources


async def all_sources(context: Context) -> list[Source]:
    return await service.list_sources(context.metrics.engine)


async def events(
    context: Context, ident: str, status: EventStatus | None, limit: int
) -> list[StoredEvent]:
    found = await service.get_source(context.metrics.engine, source_id(ident))
    if not 1 <= limit <= 1000:
        raise UserError(f"limit must be between 1 and 1000, not {limit}")
    value = status.value if status is not None else None
    return await inbox.events_of(context.metrics.engine, found.id, value, limit)


async def add(
    context: Context,
    kind: SourceKind,
    name: str,
    api_key: str,
    webhook_secret: str,
    api_base: str | None,
) -> Source:
    secrets = {"api_key": api_key, "webhook_secret": webhook_secret}
    settings = {"api_base": api_base} if api_base else {}
    vault = _services(context).vault()
    return await service.add_source(
        context.metrics.engine, vault, kind.value, name, secrets, settings
    )


async def remove(context: Context, ident: str) -> Source:
    return await service.remove_source(context.metrics.engine, source_id(ident))


async def replay(context: Context, ident: str, status: EventStatus) -> int:
    found = await service.get_source(context.metrics.engine, source_id(ident))
    return await inbox.replay(context.metrics.engine, found.id, status.value)


async def backfill(context: Context, ident: str) -> Source:
    found = await service.get_source(context.metrics.engine, source_id(ident))
    if found.kind != SourceKind.STRIPE.value:
        raise UserError(f"source {found.name!r} cannot be backfilled (kind {found.kind})")
    _services(context).start_backfill(found.id)
    return found
