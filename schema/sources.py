"""GraphQL types of sources and their inbox. Secrets never appear: only their last 4
characters (`secretHints`)."""

from __future__ import annotations

import datetime

import strawberry

from app.ingest.inbox import StoredEvent
from app.ingest.sources import EventStatus, SourceKind
from app.ingest.sources import Source as SourceResult


@strawberry.type(description="Inbox counts of a source.")
class EventCounts:
    received: int = strawberry.field(description="Every event stored.")
    pending: int = strawberry.field(description="Not applied yet (new, or queued again).")
    failed: int = strawberry.field(description="Failed, with their error; retried with backoff.")


@strawberry.type(description="What may be shown of a secret: its last 4 characters.")
class SecretHint:
    name: str
    last4: str


@strawberry.type(description="A connected billing system.")
class Source:
    id: strawberry.ID
    name: str
    kind: SourceKind
    webhook_path: str = strawberry.field(description="Where the source posts its webhooks.")
    created_at: datetime.datetime
    last_event_at: datetime.datetime | None
    events: EventCounts
    secret_hints: list[SecretHint]

    @classmethod
    def of(cls, found: SourceResult) -> Source:
        return cls(
            id=strawberry.ID(str(found.id)),
            name=found.name,
            kind=SourceKind(found.kind),
            webhook_path=found.webhook_path,
            created_at=found.created_at,
            last_event_at=found.last_event_at,
            events=EventCounts(
                received=found.events.received,
                pending=found.events.pending,
                failed=found.events.failed,
            ),
            secret_hints=[
                SecretHint(name=name, last4=value)
                for name, value in sorted(found.secret_hints.items())
            ],
        )


@strawberry.type(description="One event of a source's inbox (its payload stays server-side).")
class SourceEvent:
    id: strawberry.ID
    event_id: str
    type: str
    api_version: str | None
    occurred_at: datetime.datetime
    status: EventStatus
    attempts: int
    last_error: str | None
    received_at: datetime.datetime

    @classmethod
    def of(cls, found: StoredEvent) -> SourceEvent:
        return cls(
            id=strawberry.ID(str(found.id)),
            event_id=found.event_id,
            type=found.type,
            api_version=found.api_version,
            occurred_at=found.occurred_at,
            status=EventStatus(found.status),
            attempts=found.attempts,
            last_error=found.last_error,
            received_at=found.received_at,
        )
