"""Sources: connected billing systems, their secrets (encrypted, app.ingest.secrets) and the
state of their inbox. Removing a source removes everything it brought in."""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.config import http_url
from app.db import Database
from app.errors import NotFound, UserError
from app.ingest.apply import source_key
from app.ingest.recompute import TOUCHED, create_touched_table, is_touched
from app.ingest.secrets import Vault, hint
from app.metrics import rollup, rollup_delta
from app.tables import (
    customer,
    ledger_currency,
    movement,
    movement_scope,
    mrr_change,
    plan,
    raw_event,
    source,
    subscription,
    subscription_item,
    subscription_version,
    trial,
)

log = logging.getLogger("tidemill.sources")


class SourceKind(enum.Enum):
    STRIPE = "stripe"


class EventStatus(enum.Enum):
    RECEIVED = "received"
    PENDING = "pending"
    PROCESSED = "processed"
    FAILED = "failed"
    IGNORED = "ignored"


KINDS = ("stripe",)  # kinds a source can be added for (csv is imported, not connected)
WAITING = ("received", "pending")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")  # \Z: `$` matches before a final newline
MAX_PORT = 65_535


@dataclass
class SourceServices:
    """What the API needs to manage sources: the engine (not a request's transaction), the
    secrets' keys, and a way to start a source's backfill in the background."""

    engine: AsyncEngine
    vault: Callable[[], Vault]
    backfill: Callable[[AsyncEngine, Vault, int], Awaitable[object]]
    running: dict[int, asyncio.Task[object]] = field(default_factory=dict)

    def start_backfill(self, ident: int) -> bool:
        """Start a backfill unless one of this source is running; whether it started."""
        task = self.running.get(ident)
        if task is not None and not task.done():
            return False
        self.running[ident] = asyncio.create_task(self._backfill(ident))
        return True

    async def close(self) -> None:
        """Stop running backfills (their cursors let them resume) before the engine goes."""
        for task in self.running.values():
            task.cancel()
        await asyncio.gather(*self.running.values(), return_exceptions=True)
        self.running.clear()

    async def _backfill(self, ident: int) -> object:
        try:
            return await self.backfill(self.engine, self.vault(), ident)
        except Exception as error:  # a background job: report it, the cursor lets it resume
            log.warning("backfill of source %s stopped: %r", ident, error)
            return None


@dataclass(frozen=True)
class EventCounts:
    received: int = 0  # every event stored
    pending: int = 0  # not applied yet (new, or queued again)
    failed: int = 0


@dataclass(frozen=True)
class Source:
    id: int
    name: str
    kind: str
    created_at: datetime
    secret_hints: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    last_event_at: datetime | None = None
    events: EventCounts = EventCounts()

    @property
    def webhook_path(self) -> str:
        return f"/webhooks/{self.id}"


def _stripe_problems(secrets: dict[str, str], settings: dict[str, Any]) -> list[str]:
    """What is not a Stripe credential, from its documented prefixes (never echoing a
    secret): a secret or restricted API key, webhook signing secrets, an http(s) API base."""
    problems = []
    key = secrets.get("api_key", "")
    if _blank_or_control(key):
        problems.append(
            "api_key holds a space, a line break or a control character: a Stripe key is "
            "letters, digits and underscores"
        )
    elif key.startswith("pk_"):
        problems.append(
            "api_key is a publishable key (pk_...), which cannot read the account: give a "
            "secret key (sk_live_..., sk_test_...) or a restricted key (rk_...)"
        )
    elif key and not key.startswith(("sk_", "rk_")):
        problems.append(
            "api_key is not a Stripe API key: give a secret key (sk_live_..., sk_test_...) "
            "or a restricted key (rk_...)"
        )
    parts = [part.strip() for part in secrets.get("webhook_secret", "").split(",")]
    if any(map(_blank_or_control, parts)):
        problems.append(
            "webhook_secret holds a space, a line break or a control character inside a "
            "secret: each is letters, digits and underscores (several comma-separated)"
        )
    elif any(parts) and not all(part.startswith("whsec_") for part in parts):
        problems.append(
            "webhook_secret is not a Stripe webhook signing secret: each (several "
            "comma-separated in a rotation) starts with whsec_"
        )
    base = settings.get("api_base")
    if base is not None and (problem := _api_base_problem(str(base))):
        problems.append(problem)
    return problems


def _blank_or_control(text: str) -> bool:
    """A space, a line break or any other character that is not printable."""
    return any(char.isspace() or not char.isprintable() for char in text)


def _link_local(host: str) -> bool:
    """An address of the machine's own link (169.254.0.0/16, fe80::/10), where cloud metadata
    services answer: a source's API base never is one."""
    try:
        return ipaddress.ip_address(host).is_link_local
    except ValueError:  # a name, not an address
        return False


def _api_base_problem(base: str) -> str | None:
    """What makes `base` no URL to send API requests to: not http(s), no host, a malformed
    address (`http://[::1`), a port outside 1..65535, a space or a control character,
    credentials in it, a percent-encoded host, a link-local address."""
    accepted = "an http:// or https:// URL, e.g. https://api.stripe.com (the default)"
    try:
        parts = http_url(base)
    except ValueError as error:  # urllib's words: "Invalid IPv6 URL", ...
        return f"api_base {base!r} is not a valid URL ({error}): give {accepted}"
    if parts is None:
        return f"api_base {base!r} is not {accepted}"
    try:
        port = parts.port
    except ValueError:  # not a number, or above 65535
        port = -1
    if port is not None and not 1 <= port <= MAX_PORT:
        return f"api_base {base!r} has a port that is not a whole number from 1 to {MAX_PORT:,}"
    if _blank_or_control(base):
        return f"api_base {base!r} holds a space or a control character: give {accepted}"
    if parts.username is not None or parts.password is not None:
        return "api_base holds credentials (a name or password before @): the API key is sent alone"
    host = parts.hostname or ""
    if "%" in host or _link_local(host):
        return f"api_base {base!r} names a percent-encoded or link-local host: give {accepted}"
    return None


def _check(kind: str, name: str, secrets: dict[str, str], settings: dict[str, Any]) -> None:
    problems = []
    if kind not in KINDS:
        problems.append(f"unknown source kind {kind!r}; accepted: {', '.join(KINDS)}")
    if not NAME.match(name):
        problems.append(
            f"source name {name!r} must be 1-63 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    problems += [f"{key} must not be empty" for key, value in secrets.items() if not value.strip()]
    if kind == "stripe":
        problems += _stripe_problems(secrets, settings)
    if problems:
        raise UserError("; ".join(problems), problems)


async def add_source(
    engine: Database,
    vault: Vault,
    kind: str,
    name: str,
    secrets: dict[str, str],
    settings: dict[str, Any] | None = None,
) -> Source:
    _check(kind, name, secrets, settings or {})
    values = {
        "name": name,
        "kind": kind,
        "secrets": vault.seal(secrets),
        "secret_hints": {key: hint(value) for key, value in secrets.items()},
        "settings": settings or {},
    }
    try:
        async with engine.begin() as connection:
            ident = await connection.scalar(
                sa.insert(source).values(**values).returning(source.c.id)
            )
    except IntegrityError:
        raise UserError(f"a source named {name!r} already exists") from None
    return await get_source(engine, int(ident or 0))


def _listing() -> sa.Select[Any]:
    counts = (
        sa.select(
            raw_event.c.source_id,
            sa.func.count().label("received"),
            sa.func.count()
            .filter(raw_event.c.status.in_(("received", "pending")))
            .label("pending"),
            sa.func.count().filter(raw_event.c.status == "failed").label("failed"),
            sa.func.max(raw_event.c.received_at).label("last_event_at"),
        )
        .group_by(raw_event.c.source_id)
        .subquery()
    )
    return (
        sa.select(
            source.c.id,
            source.c.name,
            source.c.kind,
            source.c.created_at,
            source.c.secret_hints,
            source.c.settings,
            counts.c.last_event_at,
            sa.func.coalesce(counts.c.received, 0).label("received"),
            sa.func.coalesce(counts.c.pending, 0).label("pending"),
            sa.func.coalesce(counts.c.failed, 0).label("failed"),
        )
        .outerjoin(counts, counts.c.source_id == source.c.id)
        .order_by(source.c.id)
    )


def _source(row: Any) -> Source:
    return Source(
        id=row.id,
        name=row.name,
        kind=row.kind,
        created_at=row.created_at,
        secret_hints=dict(row.secret_hints),
        settings=dict(row.settings),
        last_event_at=row.last_event_at,
        events=EventCounts(row.received, row.pending, row.failed),
    )


async def list_sources(engine: Database) -> list[Source]:
    async with engine.connect() as connection:
        return [_source(row) for row in await connection.execute(_listing())]


async def get_source(engine: Database, ident: int) -> Source:
    async with engine.connect() as connection:
        row = (await connection.execute(_listing().where(source.c.id == ident))).first()
    if row is None:
        raise NotFound(f"no source with id {ident}")
    return _source(row)


async def find_source(engine: Database, name: str) -> Source:
    async with engine.connect() as connection:
        ident = await connection.scalar(sa.select(source.c.id).where(source.c.name == name))
    if ident is None:
        raise NotFound(f"no source named {name!r}; `tidemill sources list` shows them")
    return await get_source(engine, int(ident))


async def secrets_of(engine: Database, vault: Vault, ident: int) -> tuple[str, dict[str, str]]:
    """A source's kind and decrypted secrets (NotFound when there is none)."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                sa.select(source.c.kind, source.c.secrets).where(source.c.id == ident)
            )
        ).first()
    if row is None:
        raise NotFound(f"no source with id {ident}")
    return str(row.kind), vault.open(bytes(row.secrets))


async def rekey(engine: Database, vault: Vault) -> int:
    """Encrypt every source's secrets with the first key (after a key rotation)."""
    async with engine.begin() as connection:
        rows = (await connection.execute(sa.select(source.c.id, source.c.secrets))).all()
        for ident, token in rows:
            await connection.execute(
                sa.update(source)
                .where(source.c.id == ident)
                .values(secrets=vault.rotate(bytes(token)))
            )
    return len(rows)


async def remove_source(engine: Database, ident: int) -> Source:
    """Remove a source, its inbox, its states and the canonical and derived rows it brought,
    and its customers' part of what is kept from them: the rollups (their contribution
    subtracted, or every row rebuilt when they are at least half of the customers, as a
    recompute decides) and the ledger's currencies (`forget_currencies`)."""
    found = await get_source(engine, ident)
    key = source_key(found.kind, ident)
    customers = sa.select(customer.c.id).where(customer.c.source == key)
    subscriptions = sa.select(subscription.c.id).where(subscription.c.source == key)
    async with engine.begin() as connection:
        await create_touched_table(connection)
        await connection.execute(sa.text("TRUNCATE touched_customer"))
        await connection.execute(sa.insert(TOUCHED).from_select(["customer_id"], customers))
        removed = await connection.scalar(sa.text("SELECT count(*) FROM touched_customer"))
        in_full = await rollup.needs_rebuild(connection, int(removed or 0))
        if not in_full:  # their contribution, from their movements before they go
            await rollup_delta.stage(connection, is_touched, -1)
        held = sa.select(movement.c.currency).where(is_touched(movement.c.customer_id)).distinct()
        currencies = list(await connection.scalars(held))
        for table in (mrr_change, movement, movement_scope, trial):
            await connection.execute(sa.delete(table).where(table.c.customer_id.in_(customers)))
        for table in (subscription_item, subscription_version):
            await connection.execute(
                sa.delete(table).where(table.c.subscription_id.in_(subscriptions))
            )
        await connection.execute(sa.delete(subscription).where(subscription.c.source == key))
        await connection.execute(sa.delete(customer).where(customer.c.source == key))
        await connection.execute(sa.delete(plan).where(plan.c.source == key))
        await connection.execute(sa.delete(source).where(source.c.id == ident))
        if in_full:
            await rollup.rebuild(connection)
        else:
            await rollup_delta.apply(connection)
        await forget_currencies(connection, currencies)
    return found


async def forget_currencies(connection: AsyncConnection, currencies: list[str]) -> None:
    """The ledger's currencies (`ledger_currency`) after customers in `currencies` left the
    ledger: each one's first day read again, and a currency no customer has any more dropped
    (queries then plan as if it had never been there)."""
    for currency in sorted(currencies):
        first = await connection.scalar(
            sa.select(sa.func.min(mrr_change.c.day)).where(mrr_change.c.currency == currency)
        )
        row = ledger_currency.c.currency == currency
        if first is None:
            await connection.execute(sa.delete(ledger_currency).where(row))
        else:
            await connection.execute(sa.update(ledger_currency).where(row).values(first_day=first))


async def save_cursor(engine: Database, ident: int, cursor: dict[str, Any]) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            sa.update(source).where(source.c.id == ident).values(cursor=cursor)
        )


async def cursor_of(engine: Database, ident: int) -> dict[str, Any]:
    async with engine.connect() as connection:
        value = await connection.scalar(sa.select(source.c.cursor).where(source.c.id == ident))
    return dict(value or {})
