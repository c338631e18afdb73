"""Page through a Stripe account with the official `stripe` client: its catalog, customers,
subscriptions (`status=all`), invoices, and whatever the Events API still returns.

Each listed object becomes a *snapshot event* (`<object>.backfilled`, at the sync's start), so
the shared worker applies it like any webhook: the current state holds from the sync on, and a
subscription with no earlier state is read back from its own timestamps (start, trial, ended_at,
discount start and end). Events from the Events API are stored as they are (unique per id, so a
backfill and webhooks overlap without counting twice). A page is stored before the cursor moves
past it, so an interrupted sync resumes where it stopped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from typing import Any

import stripe
from sqlalchemy.ext.asyncio import AsyncEngine

from app.errors import UserError
from app.ingest.pull import Page, Progress, SyncResult, sync
from app.ingest.secrets import Vault
from app.ingest.sources import get_source, secrets_of
from connectors.stripe.api import client
from connectors.stripe.translator import TRANSLATOR

# (resource, list parameters, the snapshot event type of its objects); catalog first
RESOURCES: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("products", {}, "product.backfilled"),
    ("prices", {"expand": ["data.tiers"]}, "price.backfilled"),
    ("coupons", {}, "coupon.backfilled"),
    ("customers", {}, "customer.backfilled"),
    (
        "subscriptions",
        {"status": "all", "expand": ["data.discounts"]},
        "customer.subscription.backfilled",
    ),
    ("invoices", {}, "invoice.backfilled"),
    ("events", {}, ""),
)
PAGE_SIZE = 100


def snapshot_event(obj: Mapping[str, Any], kind: str, at: int) -> dict[str, Any]:
    """A listed object as an event observed at `at` (the sync's start)."""
    return {
        "id": f"backfill_{at}_{obj['id']}",
        "object": "event",
        "api_version": None,
        "created": at,
        "type": kind,
        "data": {"object": dict(obj)},
    }


def _service(api: stripe.StripeClient, resource: str) -> Any:
    return getattr(api.v1, resource)


def _objects(listed: Any) -> list[dict[str, Any]]:
    """The page's objects as Stripe sent them (the client's own objects hold Decimals)."""
    response = listed.last_response
    if response is not None and isinstance(response.data, Mapping):
        return [dict(item) for item in response.data["data"]]
    return [item.to_dict(for_json=True) for item in listed.data]


def pages(api: stripe.StripeClient, at: int, resource: str, after: str | None) -> Iterator[Page]:
    """The pages of one resource from after `after`, as events to store."""
    params = dict(next(p for r, p, _ in RESOURCES if r == resource))
    kind = next(k for r, _, k in RESOURCES if r == resource)
    while True:
        query = {**params, "limit": PAGE_SIZE} | ({"starting_after": after} if after else {})
        listed = _service(api, resource).list(query)
        objects = _objects(listed)
        events = objects if not kind else [snapshot_event(o, kind, at) for o in objects]
        after = str(objects[-1]["id"]) if objects else after
        yield Page(resource, events, after, bool(listed.has_more))
        if not listed.has_more or not objects:
            return


async def backfill(
    engine: AsyncEngine,
    source_id: int,
    api_key: str,
    api_base: str | None = None,
    progress: Progress | None = None,
) -> SyncResult:
    """Store the account's objects and events in the inbox (resumable; see the module doc)."""
    http = stripe.RequestsClient()  # closed at the end: its connections do not linger
    api = client(api_key, api_base, http)

    def bound(at: int, resource: str, after: str | None) -> Iterator[Page]:
        return pages(api, at, resource, after)

    async def fetch(iterator: Iterator[Page]) -> Page | None:
        return await asyncio.to_thread(next, iterator, None)

    resources = [resource for resource, _, _ in RESOURCES]
    return await sync(engine, source_id, TRANSLATOR, resources, bound, progress or _quiet, fetch)


def _quiet(_resource: str, _count: int) -> None:
    return None


async def backfill_source(
    engine: AsyncEngine, keys: Vault, source_id: int, progress: Progress | None = None
) -> SyncResult:
    """`backfill` with the source's own API key and API base (`--api-base`)."""
    found = await get_source(engine, source_id)
    if found.kind != "stripe":
        raise UserError(f"source {found.name!r} is a {found.kind} source, not a Stripe one")
    _, secrets = await secrets_of(engine, keys, source_id)
    api_base = found.settings.get("api_base")
    return await backfill(engine, source_id, secrets["api_key"], api_base, progress)
