"""Sources over GraphQL: admin-only writes, secrets never returned, the inbox visible,
failed events replayable, a backfill started in the background."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ingest import worker
from connectors.registry import TRANSLATORS
from tests.edge import bearer, new_key, real_app, serving
from tests.test_ingest_worker import broken_account
from tests.test_stripe_backfill import serve
from tests.test_stripe_scenario import KEY, signed

API_KEY = "sk_test_4242424242424242abcd"
WEBHOOK_SECRET = "whsec_0123456789wxyz"
ADD = (
    'mutation ($base: String) { addSource(kind: STRIPE, name: "prod", '
    f'apiKey: "{API_KEY}", webhookSecret: "{WEBHOOK_SECRET}", apiBase: $base) '
    "{ id name kind webhookPath secretHints { name last4 } } }"
)
SOURCES = (
    "{ sources { id name kind webhookPath createdAt lastEventAt "
    "events { received pending failed } } }"
)


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(real_app(database_url, secret_key=KEY)) as client:
        yield client


async def run(
    client: httpx.AsyncClient, key: str, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=bearer(key)
    )
    body: dict[str, Any] = response.json()
    return body


async def test_adding_a_source_needs_admin_and_never_returns_its_secrets(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    admin, writer = await new_key(engine, "admin"), await new_key(engine, "write")
    refused = await run(client, writer, ADD)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    added = await run(client, admin, ADD)
    assert added["data"]["addSource"] == {
        "id": "1",
        "name": "prod",
        "kind": "STRIPE",
        "webhookPath": "/webhooks/1",
        "secretHints": [
            {"name": "api_key", "last4": "abcd"},
            {"name": "webhook_secret", "last4": "wxyz"},
        ],
    }
    listed = await run(client, writer, SOURCES)
    [source] = listed["data"]["sources"]
    assert source["events"] == {"received": 0, "pending": 0, "failed": 0}
    everything = json.dumps([added, listed])
    assert API_KEY not in everything
    assert WEBHOOK_SECRET not in everything
    again = await run(client, admin, ADD)
    assert again["errors"][0]["message"] == "a source named 'prod' already exists"


@pytest.mark.parametrize(
    ("replaced", "by", "problem"),
    [
        (API_KEY, "pk_live_0123456789abcd", "api_key is a publishable key (pk_...)"),
        (API_KEY, "0123456789abcd", "api_key is not a Stripe API key: give a secret key"),
        (WEBHOOK_SECRET, "0123456789wxyz", "webhook_secret is not a Stripe webhook signing"),
        (WEBHOOK_SECRET, f"{WEBHOOK_SECRET},rotated", "each (several comma-separated in a"),
    ],
)
async def test_what_is_no_stripe_credential_is_refused_without_echoing_it(
    engine: AsyncEngine, client: httpx.AsyncClient, replaced: str, by: str, problem: str
) -> None:
    admin = await new_key(engine, "admin")
    refused = await run(client, admin, ADD.replace(replaced, by))
    [error] = refused["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert problem in error["message"]
    assert by not in json.dumps(refused)
    base = await run(client, admin, ADD, {"base": "ftp://stripe.example"})
    assert "api_base 'ftp://stripe.example' is not an http:// or https:// URL" in json.dumps(base)
    assert (await run(client, admin, SOURCES))["data"] == {"sources": []}
    assert "errors" not in await run(client, admin, ADD.replace(API_KEY, "rk_test_0123abcd"))


async def test_failed_events_are_listed_and_replayed_and_a_source_removed(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    admin = await new_key(engine, "admin")
    await run(client, admin, ADD.replace(WEBHOOK_SECRET, "whsec_scenario_0123456789"))
    for event in broken_account().events[:-1]:
        assert (await client.post("/webhooks/1", **signed(event))).status_code == 200
    await worker.drain(engine, TRANSLATORS)
    failed = await run(
        client,
        admin,
        '{ sourceEvents(sourceId: "1", status: FAILED) { type status attempts lastError } }',
    )
    assert [e["type"] for e in failed["data"]["sourceEvents"]] == [
        "customer.subscription.created",
        "customer.created",
    ]
    counts = (await run(client, admin, SOURCES))["data"]["sources"][0]["events"]
    assert counts == {"received": 6, "pending": 0, "failed": 2}
    replayed = await run(client, admin, 'mutation { replayEvents(sourceId: "1") }')
    assert replayed["data"] == {"replayEvents": 2}
    counts = (await run(client, admin, SOURCES))["data"]["sources"][0]["events"]
    assert counts == {"received": 6, "pending": 2, "failed": 0}
    removed = await run(client, admin, 'mutation { removeSource(id: "1") { name } }')
    assert removed["data"] == {"removeSource": {"name": "prod"}}
    assert (await run(client, admin, SOURCES))["data"] == {"sources": []}
    gone = await run(client, admin, "{ customers(first: 5) { edges { node { id } } } }")
    assert gone["data"]["customers"]["edges"] == []
    unknown = await run(client, admin, 'mutation { removeSource(id: "1") { name } }')
    assert unknown["errors"][0]["extensions"]["code"] == "NOT_FOUND"


async def test_a_backfill_starts_in_the_background(
    engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    admin = await new_key(engine, "admin")
    for stripe_api, base in serve(with_events=True):
        objects = stripe_api.account.objects.values()
        total = len(stripe_api.account.events) + sum(o["object"] != "discount" for o in objects)
        await run(client, admin, ADD, {"base": base})
        started = await run(client, admin, 'mutation { backfillSource(id: "1") { name } }')
        assert started["data"] == {"backfillSource": {"name": "prod"}}
        for _ in range(100):  # the backfill runs in the server, the mutation has returned
            counts = (await run(client, admin, SOURCES))["data"]["sources"][0]["events"]
            if counts["received"] == total:
                break
            await asyncio.sleep(0.1)
        assert counts["received"] == total


@pytest.mark.parametrize(
    ("base", "problem"),
    [
        ("http://[::1", "api_base 'http://[::1' is not a valid URL (Invalid IPv6 URL)"),
        ("http://localhost:99999999", "has a port that is not a whole number from 1 to 65,535"),
        ("http://localhost:65536", "has a port that is not a whole number from 1 to 65,535"),
        ("http://localhost:0", "has a port that is not a whole number from 1 to 65,535"),
        ("http://localhost:http", "has a port that is not a whole number from 1 to 65,535"),
        ("http://stripe example", "holds a space or a control character"),
        ("https:///v1", "is not an http:// or https:// URL, e.g. https://api.stripe.com"),
        ("https://%00/", "names a percent-encoded or link-local host"),
        ("http://169.254.169.254/latest", "names a percent-encoded or link-local host"),
        ("http://[fe80::1]/", "names a percent-encoded or link-local host"),
    ],
)
async def test_an_api_base_that_is_no_url_is_refused_naming_it(
    engine: AsyncEngine, client: httpx.AsyncClient, base: str, problem: str
) -> None:
    """A malformed address was an INTERNAL error, a port beyond 65535 was accepted."""
    admin = await new_key(engine, "admin")
    refused = await run(client, admin, ADD, {"base": base})
    [error] = refused["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"].startswith(f"api_base {base!r}")
    assert problem in error["message"]
    assert (await run(client, admin, SOURCES))["data"] == {"sources": []}
    added = await run(client, admin, ADD, {"base": "http://[::1]:65535/stripe"})
    assert added["data"]["addSource"]["name"] == "prod"


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ('apiBase: "https://user:pass@evil.example/"', "api_base holds credentials"),
        ('apiKey: "sk_test_x\\n"', "api_key holds a space, a line break or a control character"),
        ('apiKey: "sk_test x"', "api_key holds a space, a line break or a control character"),
        ('webhookSecret: "whsec_a\\tb"', "webhook_secret holds a space, a line break"),
        ('webhookSecret: "whsec_a, whsec_b c"', "webhook_secret holds a space, a line break"),
    ],
)
async def test_credentials_with_blanks_or_in_the_url_are_refused_unechoed(
    engine: AsyncEngine, client: httpx.AsyncClient, arguments: str, problem: str
) -> None:
    """A key sent with a trailing newline was stored, and every request of its backfill then
    failed on an invalid header; credentials in the API base would travel in every URL."""
    admin = await new_key(engine, "admin")
    fields = {"apiKey": f'"{API_KEY}"', "webhookSecret": f'"{WEBHOOK_SECRET}"'}
    name, value = arguments.split(": ", 1)
    fields[name] = value
    given = ", ".join(f"{key}: {text}" for key, text in fields.items())
    document = f'mutation {{ addSource(kind: STRIPE, name: "prod", {given}) {{ id }} }}'
    [error] = (await run(client, admin, document))["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert problem in error["message"]
    assert "user:pass" not in error["message"]
    assert "sk_test_x" not in error["message"]
    assert (await run(client, admin, SOURCES))["data"] == {"sources": []}
