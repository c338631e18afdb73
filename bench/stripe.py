"""Stripe benchmark (`python -m bench.stripe [--customers N]`, and part of `make bench`):

- webhook intake over HTTP: signed events posted to the real server (uvicorn, worker off),
  verified, stored, acknowledged: events/s;
- processing: the inbox workers (WORKERS of them) applying those events (rebuild and
  recompute): events/s;
- backfill: N customers from a fake Stripe API (the official client, with its progress bar),
  then applied: seconds.

The company is generated with the test suite's fake Stripe account (tests/stripe_account.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from typing import Any

from cryptography.fernet import Fernet
from pytest_httpserver import HTTPServer
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncEngine

from app.cli.progress import count_progress
from app.config import load_settings
from app.db import create_engine
from app.ingest import worker
from app.ingest.secrets import vault
from app.ingest.sources import add_source
from bench.machine import describe
from bench.run import DEFAULT_ADMIN_URL, Figure, fresh_database, server, table
from connectors.registry import TRANSLATORS
from connectors.stripe import backfill, signature
from tests.fake_stripe import FakeStripe
from tests.stripe_account import Account

SECRET = "whsec_bench_0123456789"
CONCURRENCY = 32
# workers applying the inbox together: as `tidemill serve` runs one per server process (one
# process per core, 2 on the reference machine), or `tidemill worker --concurrency 2`
WORKERS = 2


def company(customers: int, seed: int = 7) -> Account:
    """`customers` customers over 2024: monthly and yearly prices, seats, upgrades, churn."""
    rng = random.Random(seed)
    a = Account()
    start = date(2023, 12, 1)
    a.product("prod_basic", "Basic", start)
    a.product("prod_pro", "Pro", start)
    a.price("price_basic", "prod_basic", start, 2900)
    a.price("price_pro", "prod_pro", start, 9900)
    a.price("price_pro_year", "prod_pro", start, 99000, "year")
    prices = ["price_basic", "price_pro", "price_pro_year"]
    for number in range(customers):
        ident, sub = f"cus_{number:06d}", f"sub_{number:06d}"
        day = start + timedelta(days=rng.randrange(365))
        a.customer(ident, day, rng.choice(["2024", "2025"]))
        a.subscribe(sub, ident, day, [(rng.choice(prices), rng.randint(1, 5))])
        if rng.random() < 0.3:
            a.update(sub, day + timedelta(days=rng.randrange(1, 200)), items=[("price_pro", 2)])
        elif rng.random() < 0.15:
            a.cancel(sub, day + timedelta(days=rng.randrange(1, 200)))
    a.events.sort(key=lambda event: (event["created"], event["id"]))
    return a


def _engine(url: str) -> AsyncEngine:
    return create_engine(load_settings(database_url=url))


async def _source(url: str, key: str) -> int:
    settings = load_settings(database_url=url, secret_key=key)
    engine = create_engine(settings)
    secrets = {"api_key": "sk_test_bench", "webhook_secret": SECRET}
    try:
        found = await add_source(engine, vault(settings), "stripe", "bench", secrets)
    finally:
        await engine.dispose()
    return found.id


async def _sender(port: int, path: str, queue: Iterator[bytes]) -> None:
    """One keep-alive connection posting bodies one after another (a lean HTTP/1.1 client:
    the figure is the server's, not a client library's)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for body in queue:
            header = signature.header(body, [SECRET], int(time.time()))
            head = (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Stripe-Signature: {header}\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode() + body)
            status = (await reader.readline()).split()[1]
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            answer = await reader.readexactly(length)
            if status != b"200":
                raise RuntimeError(f"webhook answered {status.decode()}: {answer.decode()}")
    finally:
        writer.close()


async def _post_all(base_url: str, source_id: int, bodies: list[bytes]) -> float:
    """Seconds to post every body over CONCURRENCY connections, each signed when sent."""
    port = int(base_url.rsplit(":", 1)[1])
    queue = iter(bodies)
    began = time.perf_counter()
    path = f"/webhooks/{source_id}"
    await asyncio.gather(*(_sender(port, path, queue) for _ in range(CONCURRENCY)))
    return time.perf_counter() - began


async def _drain(url: str) -> float:
    engine = _engine(url)
    try:
        began = time.perf_counter()
        await worker.drain(engine, TRANSLATORS, concurrency=WORKERS)
        return time.perf_counter() - began
    finally:
        await engine.dispose()


def webhook_figures(admin_url: str, database: str, customers: int) -> list[Figure]:
    url = asyncio.run(fresh_database(admin_url, database))
    key = Fernet.generate_key().decode()
    account = company(customers)
    bodies = [json.dumps(event).encode() for event in account.events]
    source_id = asyncio.run(_source(url, key))
    env: Mapping[str, str] = {
        **os.environ,
        "TIDEMILL_DATABASE_URL": url,
        "TIDEMILL_SECRET_KEY": key,
        "TIDEMILL_WORKER": "false",
    }
    with server(env) as (base_url, _process):
        intake = asyncio.run(_post_all(base_url, source_id, bodies))

    applying = asyncio.run(_drain(url))
    events = len(bodies)
    return [
        Figure(
            "stripe webhook intake over HTTP (signed, stored, 200)",
            events / intake,
            "events/s",
            1_000,
            at_least=True,
            detail=f"{events:,} events, {CONCURRENCY} at a time, {intake:.1f} s",
        ),
        Figure(
            f"stripe event processing ({WORKERS} workers)",
            events / applying,
            "events/s",
            2_000,
            at_least=True,
            detail=f"{events:,} events, {applying:.1f} s",
        ),
    ]


def backfill_figures(admin_url: str, database: str, customers: int) -> list[Figure]:
    url = asyncio.run(fresh_database(admin_url, database))
    key = Fernet.generate_key().decode()
    fake = HTTPServer(host="127.0.0.1", port=0)
    fake.start()
    FakeStripe(company(customers), with_events=False).install(fake)

    async def run() -> tuple[float, float, int]:
        source_id = await _source(url, key)
        engine = _engine(url)
        try:
            began = time.perf_counter()
            with count_progress() as progress:
                task = progress.add_task("backfill", total=None)

                def advance(resource: str, count: int) -> None:
                    progress.update(task, advance=count, description=f"backfill: {resource}")

                result = await backfill.backfill(
                    engine, source_id, "sk_test_bench", fake.url_for("").rstrip("/"), advance
                )
            listing = time.perf_counter() - began
            return listing, await _drain(url), result.events
        finally:
            await engine.dispose()

    try:
        listing, applying, objects = asyncio.run(run())
    finally:
        fake.stop()
    return [
        Figure(
            f"stripe backfill of {customers:,} customers (list + apply)",
            listing + applying,
            "s",
            300,
            detail=f"{objects:,} objects: listed {listing:.1f} s, applied {applying:.1f} s",
        )
    ]


def stripe_figures(admin_url: str, database: str, customers: int) -> list[Figure]:
    return webhook_figures(admin_url, f"{database}_stripe", customers) + backfill_figures(
        admin_url, f"{database}_stripe_backfill", customers
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stripe", description=__doc__)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--database", default="tidemill_bench")
    args = parser.parse_args(argv)
    admin_url = os.environ.get("TIDEMILL_BENCH_DATABASE_URL") or DEFAULT_ADMIN_URL
    console = Console()
    console.print(describe())
    figures = stripe_figures(admin_url, args.database, args.customers)
    console.print(table(figures, f"Stripe, {args.customers:,} customers"))
    console.print(describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__: list[Any] = ["stripe_figures"]
