"""Pull sources: page through a source into the inbox with a stored cursor, so a sync that
stops (an error, Ctrl-C) resumes from its last stored page. The worker applies what it stored.

The cursor (`source.cursor`) is `{"started_at", "resource", "after"}` while a sync runs and
`{"finished_at"}` once it is done; a new sync after a finished one starts over."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.ingest import inbox
from app.ingest.sources import cursor_of, save_cursor
from app.ingest.translator import Translator

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class Page:
    """One page of a pull source: its events (as the translator reads them) and the id to
    continue after."""

    resource: str
    events: list[dict[str, Any]]
    last_id: str | None
    has_more: bool


Pages = Callable[[int, str, str | None], Iterator[Page]]


@dataclass(frozen=True)
class SyncResult:
    pages: int
    events: int
    stored: int  # new in the inbox (the rest were already there)
    resumed: bool


def _noop(_resource: str, _count: int) -> None:
    return None


async def sync(
    engine: AsyncEngine,
    source_id: int,
    translator: Translator,
    resources: Sequence[str],
    pages: Pages,
    progress: Progress = _noop,
    fetch: Callable[[Iterator[Page]], Any] | None = None,
) -> SyncResult:
    """Store every page of every resource, in order, from the stored cursor on. `fetch` turns
    a page iterator's next() into an awaitable (a thread for a blocking client)."""
    cursor = await cursor_of(engine, source_id)
    resumed = "started_at" in cursor
    started = int(cursor.get("started_at") or time.time())
    position = resources.index(cursor["resource"]) if resumed else 0
    after = cursor.get("after") if resumed else None
    counted = SyncResult(0, 0, 0, resumed)
    for resource in resources[position:]:
        iterator = pages(started, resource, after)
        while (page := await _next(iterator, fetch)) is not None:
            events = [translator.read_event(event) for event in page.events]
            stored = await inbox.store_many(engine, source_id, events)
            state = {"started_at": started, "resource": resource, "after": page.last_id}
            await save_cursor(engine, source_id, state)
            counted = SyncResult(
                counted.pages + 1, counted.events + len(events), counted.stored + stored, resumed
            )
            progress(resource, len(events))
        after = None
    await save_cursor(engine, source_id, {"finished_at": int(time.time())})
    return counted


async def _next(iterator: Iterator[Page], fetch: Callable[..., Any] | None) -> Page | None:
    if fetch is None:
        return next(iterator, None)
    page: Page | None = await fetch(iterator)
    return page
