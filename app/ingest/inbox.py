"""The durable inbox (`raw_event`): store first, acknowledge, process later.

A delivery is stored once per (source, event id): a duplicate is a no-op. Rows move from
`received` (or `pending`, queued again by a replay) to `processed`, `ignored` (a type no
translator applies) or `failed` (with its error, retried with backoff)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import Database
from app.errors import UserError
from app.ingest.objects import Event
from app.tables import raw_event

STATUSES = ("received", "pending", "processed", "failed", "ignored")


async def store(engine: AsyncEngine, source_id: int, event: Event) -> bool:
    """Store one event; False when it was already there."""
    statement = (
        insert(raw_event)
        .values(
            source_id=source_id,
            event_id=event.event_id,
            type=event.type,
            api_version=event.api_version,
            occurred_at=event.occurred_at,
            payload=event.payload,
        )
        .on_conflict_do_nothing(constraint="raw_event_source_event_id_key")
        .returning(raw_event.c.id)
    )
    async with engine.begin() as connection:
        return (await connection.scalar(statement)) is not None


async def store_many(engine: AsyncEngine, source_id: int, events: list[Event]) -> int:
    """Store a page of events (a backfill's); how many were new."""
    if not events:
        return 0
    rows = [
        {
            "source_id": source_id,
            "event_id": e.event_id,
            "type": e.type,
            "api_version": e.api_version,
            "occurred_at": e.occurred_at,
            "payload": e.payload,
        }
        for e in events
    ]
    statement = insert(raw_event).values(rows).on_conflict_do_nothing().returning(raw_event.c.id)
    async with engine.begin() as connection:
        return len((await connection.execute(statement)).all())


@dataclass(frozen=True)
class StoredEvent:
    id: int
    event_id: str
    type: str
    api_version: str | None
    occurred_at: datetime
    status: str
    attempts: int
    last_error: str | None
    received_at: datetime


def _status(text: str) -> str:
    status = text.lower()
    if status not in STATUSES:
        raise UserError(f"unknown event status {text!r}; accepted: {', '.join(STATUSES)}")
    return status


async def events_of(
    engine: Database, source_id: int, status: str | None = None, limit: int = 100
) -> list[StoredEvent]:
    query = sa.select(*(raw_event.c[name] for name in StoredEvent.__dataclass_fields__)).where(
        raw_event.c.source_id == source_id
    )
    if status is not None:
        query = query.where(raw_event.c.status == _status(status))
    query = query.order_by(raw_event.c.occurred_at.desc(), raw_event.c.id.desc()).limit(limit)
    async with engine.connect() as connection:
        return [StoredEvent(**row._mapping) for row in await connection.execute(query)]


async def replay(engine: Database, source_id: int, status: str = "failed") -> int:
    """Queue a source's events of `status` again (attempts reset); how many."""
    async with engine.begin() as connection:
        result = await connection.execute(
            sa.update(raw_event)
            .where(raw_event.c.source_id == source_id, raw_event.c.status == _status(status))
            .values(status="pending", attempts=0, next_attempt_at=None)
        )
    return int(result.rowcount)


def dumps(payload: object) -> str:
    return json.dumps(payload, separators=(",", ":"))
