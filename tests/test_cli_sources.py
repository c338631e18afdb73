"""`tidemill sources ...` and `tidemill sync stripe` against the database (and a fake Stripe
API): add, list, sync with a progress bar, events, replay, remove; secrets never printed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner, Result

from app.cli import cli
from tests import stripe_scenario
from tests.test_stripe_backfill import serve
from tests.test_stripe_scenario import KEY, outcome, reset, statuses

API_KEY = "sk_test_cli_0123456789abcd"


async def tidemill(database_url: str, *args: str) -> Result:
    env = {"TIDEMILL_DATABASE_URL": database_url, "TIDEMILL_SECRET_KEY": KEY, "COLUMNS": "200"}
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return str(result.output)


async def test_a_stripe_source_from_add_to_sync_to_remove(
    engine: AsyncEngine, database_url: str
) -> None:
    await reset(engine)  # with the scenario's EUR rate
    for stripe_api, base in serve(with_events=True):
        added = await tidemill(
            database_url,
            "sources",
            "add",
            "stripe",
            "--name",
            "prod",
            "--api-key",
            API_KEY,
            "--webhook-secret",
            "whsec_cli_0123456789",
            "--api-base",
            base,
            "--format",
            "json",
        )
        assert json.loads(ok(added)) == {
            "id": 1,
            "name": "prod",
            "kind": "stripe",
            "webhookPath": "/webhooks/1",
        }
        synced = ok(await tidemill(database_url, "sync", "stripe", "--source", "prod"))
        total = len(stripe_api.account.events) + sum(
            o["object"] != "discount" for o in stripe_api.account.objects.values()
        )
        assert f"{total} objects and events, {total} new; {total} applied" in synced
    assert await statuses(engine) == {"processed": total}
    points = (await outcome(engine))["series"]["series"]["points"]
    assert points[-1]["mrr"] == stripe_scenario.mrr_at(stripe_scenario.D(2024, 12, 31))

    listed: list[dict[str, Any]] = json.loads(
        ok(await tidemill(database_url, "sources", "list", "--format", "json"))
    )
    assert [(s["name"], s["received"], s["failed"]) for s in listed] == [("prod", total, 0)]
    failed = ok(
        await tidemill(database_url, "sources", "events", "--source", "prod", "--status", "failed")
    )
    assert "no events" in failed
    replayed = ok(
        await tidemill(
            database_url, "sources", "replay", "--source", "prod", "--status", "processed"
        )
    )
    assert replayed.strip() == f"queued {total} events again"
    unknown = await tidemill(database_url, "sources", "events", "--source", "nope")
    assert unknown.exit_code == 1
    assert "no source named 'nope'" in unknown.output
    duplicate = await tidemill(
        database_url,
        "sources",
        "add",
        "stripe",
        "--name",
        "prod",
        "--api-key",
        API_KEY,
        "--webhook-secret",
        "whsec_x",
    )
    assert duplicate.exit_code == 1
    assert "a source named 'prod' already exists" in duplicate.output
    removed = ok(await tidemill(database_url, "sources", "remove", "--source", "prod"))
    assert removed.strip() == "removed source 'prod'"
    assert API_KEY not in "".join([str(added.output), synced, str(listed), removed])
