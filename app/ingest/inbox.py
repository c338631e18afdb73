"""The durable inbox (`raw_event`): store first, acknowledge, process later.

A delivery is stored once per (source, event id): a duplicate is a no-op. Rows move from
`received` (or `pending`, queued again by a replay) to `processed`, `ignored` (a type no
translator applies) or `failed` (with its error, retried with backoff)."""

from __future__ import annotations

import asyncio
import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import Database
from app.errors import UserError
from app.ingest.objects import Event
from app.tables import raw_event

STATUSES = ("received", "pending", "processed", "failed", "ignored")
MAX_DEPTH = 64  # levels of nesting of a delivery's JSON (a Stripe event has about a dozen)


class UnstorableBody(ValueError):
    """A delivery's body that is not JSON the inbox (PostgreSQL's jsonb) can store."""


def _constant(name: str) -> Any:
    raise UnstorableBody(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise UnstorableBody(f"the number {text[:40]} is out of a double's range")
    return number


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "holds a NUL character (\\u0000), which cannot be stored"
    try:
        text.encode()
    except UnicodeEncodeError:
        return "holds an unpaired surrogate (\\ud800 to \\udfff), which is not Unicode text"
    return None


def _inside(where: str, part: str) -> str:
    """The path of a member: `data.object.id`, `items[0]` (`where` is "" at the top)."""
    return f"`{part.lstrip('.')}`" if not where else f"{where[:-1]}{part}`"


def _storable_problem(payload: Any) -> str | None:
    """Why a parsed body cannot be stored as jsonb, naming where (walked without recursion)."""
    stack: list[tuple[Any, str, int]] = [(payload, "", 1)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"the JSON is nested more than {MAX_DEPTH} levels deep"
        if isinstance(value, dict):
            for key, item in value.items():
                if problem := _text_problem(key):
                    return f"a key in {where or 'the body'} {problem}"
                stack.append((item, _inside(where, f".{key}"), depth + 1))
        elif isinstance(value, list):
            stack.extend(
                (item, _inside(where, f"[{i}]"), depth + 1) for i, item in enumerate(value)
            )
        elif isinstance(value, str) and (problem := _text_problem(value)):
            return f"{where or 'the body'} {problem}"
    return None


def read_json(body: bytes) -> Any:
    """A delivery's JSON, refused (UnstorableBody, a ValueError naming why) unless the inbox
    can store it: PostgreSQL's jsonb holds no NUL character, no unpaired surrogate, no NaN or
    Infinity; nesting is bounded (MAX_DEPTH)."""
    try:
        payload = json.loads(body, parse_constant=_constant, parse_float=_finite)
    except RecursionError:
        raise UnstorableBody(f"the JSON is nested more than {MAX_DEPTH} levels deep") from None
    problem = _storable_problem(payload)
    if problem is not None:
        raise UnstorableBody(problem)
    return payload


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


class Intake:
    """Group commit for webhook deliveries: the deliveries that arrive while a batch is being
    written go together into the next one (one INSERT, one commit), and each is answered once
    its batch has committed. A failed batch fails every delivery in it (503: the sender
    retries), so nothing is acknowledged unless it is stored."""

    def __init__(self, engine: AsyncEngine, most: int = 500) -> None:
        self.engine, self.most = engine, most
        self.waiting: list[tuple[int, Event, asyncio.Future[bool]]] = []
        self.writing: asyncio.Task[None] | None = None

    async def store(self, source_id: int, event: Event) -> bool:
        """Store one event; False when it was already there."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.waiting.append((source_id, event, done))
        if self.writing is None or self.writing.done():
            self.writing = asyncio.create_task(self._write())
        return await done

    async def _write(self) -> None:
        while self.waiting:
            batch, self.waiting = self.waiting[: self.most], self.waiting[self.most :]
            try:
                stored = await _insert(self.engine, [(s, e) for s, e, _ in batch])
            except Exception as error:  # every delivery of the batch gets it (an outage: 503)
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(error)
                continue
            for source_id, event, done in batch:  # a duplicate inside the batch is one too
                key = (source_id, event.event_id)
                if not done.done():
                    done.set_result(key in stored)
                stored.discard(key)


async def _insert(engine: AsyncEngine, events: list[tuple[int, Event]]) -> set[tuple[int, str]]:
    """Insert events (first of each (source, id) wins); the keys that were new."""
    unique = {(source_id, event.event_id): event for source_id, event in events}
    rows = [
        {
            "source_id": source_id,
            "event_id": event_id,
            "type": event.type,
            "api_version": event.api_version,
            "occurred_at": event.occurred_at,
            "payload": event.payload,
        }
        for (source_id, event_id), event in unique.items()
    ]
    statement = (
        insert(raw_event)
        .values(rows)
        .on_conflict_do_nothing(constraint="raw_event_source_event_id_key")
        .returning(raw_event.c.source_id, raw_event.c.event_id)
    )
    async with engine.begin() as connection:
        return {(int(s), str(e)) for s, e in await connection.execute(statement)}
