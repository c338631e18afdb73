"""Usage metrics benchmark (issue 12), in a database of its own (`tidemill_bench_usage`).

1. N events (default 10 million: 1,000 customers x one year, 2025, in time order) written as
   NDJSON under bench/data/, with two metrics defined first: `tokens` (SUM, SIMPLE) and
   `tokens_indexed` (the same, INDEXED), so the import keeps a rollup current as it goes;
2. `tidemill import events` in a child process (COPY through the ingest path): events/s;
3. the real server: POST /events batches of 10,000 new events, sequentially: events/s;
4. one customer's October value of both metrics (usageMetricValue), median latency;
5. a 12-month monthly usageSeries over every customer, INDEXED and SIMPLE, and the same
   aggregate as bare SQL over the events (asyncpg, no HTTP), timed in turn with SIMPLE so both
   see the same load: SIMPLE (HTTP and GraphQL included) is held against 1.3x it;
6. an INDEXED metric defined over every event while another client sends POST /events
   batches of 1,000: how long its definition takes, the longest a batch waited meanwhile.

`python -m bench.usage [--events N] [--database NAME] [--reuse]` runs it alone (`--reuse`:
only the queries, in a database an earlier run loaded); `make bench` runs it after
the MRR figures. Queries are timed with the result cache off (each one computed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from rich.console import Console
from sqlalchemy.engine import make_url

from app.config import load_settings
from app.db import create_engine
from app.metrics.usage import Aggregation, QueryType
from app.usage import definitions
from app.usage.definitions import MetricInput
from bench.machine import describe
from bench.run import (
    DATA_DIR,
    DEFAULT_ADMIN_URL,
    REPO,
    BenchFailed,
    Figure,
    fresh_database,
    p95,
    run_cli,
    server,
    table,
)

DATABASE = "tidemill_bench_usage"
YEAR = date(2025, 1, 1)
CUSTOMERS = 1_000
POST_BATCH = 10_000
POST_BATCHES = 10
SERIES = """query($id: ID!) { usageSeries(id: $id, start: "2025-01-01", end: "2025-12-31",
    interval: MONTH) { points { date value } } }"""
VALUE = """query($id: ID!, $customer: ID!) { usageMetricValue(id: $id, customerId: $customer,
    timeframe: {from: "2025-10-01T00:00:00Z", to: "2025-11-01T00:00:00Z"}) { value } }"""
BESIDE_BATCH = 1_000
CREATE_INDEXED = (
    """mutation($input: UsageMetricInput!) { createUsageMetric(input: $input) { id } }"""
)
BUILT_METRIC = {"eventName": "api_call", "aggregation": "SUM", "property": "tokens"} | {
    "queryType": "INDEXED"
}
BARE_SQL = """
SELECT date_trunc('month', ts AT TIME ZONE 'UTC') AS k, sum((properties->>'tokens')::numeric)
FROM usage_event
WHERE name = 'api_call' AND ts >= $1 AND ts < $2
GROUP BY k ORDER BY k
"""


def _events(count: int, customers: int, seed: int) -> Iterator[str]:
    """`count` events spread evenly over the year in time order (as an export or a live
    stream sends them), each from a random customer."""
    rng = random.Random(seed)
    start = datetime(YEAR.year, 1, 1, tzinfo=UTC).timestamp()
    step = 365 * 86_400 / count
    for number in range(count):
        at = datetime.fromtimestamp(start + int(number * step), UTC)
        event = {
            "id": f"b{number}",
            "customer": f"cust{rng.randrange(customers):04}",
            "name": "api_call",
            "timestamp": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "properties": {"tokens": rng.randint(1, 5_000), "model": rng.choice("abc")},
        }
        yield json.dumps(event, separators=(",", ":"))


def write_events(count: int, customers: int, seed: int = 7) -> Path:
    DATA_DIR.mkdir(exist_ok=True)
    path = DATA_DIR / f"usage-{customers}c-{count}e-seed{seed}-in-time-order.ndjson"
    if not path.exists():
        partial = path.with_suffix(".partial")
        with partial.open("w") as handle:
            for line in _events(count, customers, seed):
                handle.write(line + "\n")
        partial.rename(path)
    return path


async def define_metrics(url: str) -> dict[str, str]:
    engine = create_engine(load_settings(database_url=url))
    ids = {}
    try:
        for name, kind in (("tokens", QueryType.SIMPLE), ("tokens_indexed", QueryType.INDEXED)):
            given = MetricInput(name, "api_call", Aggregation.SUM, "tokens", query_type=kind)
            ids[name] = str((await definitions.create(engine, given)).id)
    finally:
        await engine.dispose()
    return ids


def run_import(path: Path, count: int, env: Mapping[str, str]) -> list[Figure]:
    seconds, peak_mb = run_cli(["import", "events", str(path)], env)
    detail = f"{count:,} events, {seconds:.1f} s, an INDEXED metric kept current"
    return [
        Figure("usage: bulk import", count / seconds, "events/s", 100_000, True, detail),
        Figure("usage: bulk import, peak RSS", peak_mb, "MB", 300, detail="the CLI's process"),
    ]


def _batch(number: int) -> list[dict[str, Any]]:
    at = "2025-12-15T12:00:00Z"
    return [
        {
            "id": f"post-{number}-{i}",
            "customer": f"cust{i % CUSTOMERS:04}",
            "name": "api_call",
            "timestamp": at,
            "properties": {"tokens": i % 100, "model": "a"},
        }
        for i in range(POST_BATCH)
    ]


def post_events(client: httpx.Client) -> Figure:
    bodies = [json.dumps(_batch(number)).encode() for number in range(POST_BATCHES + 1)]
    headers = {"Content-Type": "application/json"}
    client.post("/events", content=bodies[0], headers=headers)  # warm-up
    began = time.perf_counter()
    for body in bodies[1:]:
        response = client.post("/events", content=body, headers=headers)
        if response.status_code != 200 or response.json()["accepted"] != POST_BATCH:
            raise BenchFailed(f"POST /events: HTTP {response.status_code}: {response.text[:300]}")
    seconds = time.perf_counter() - began
    total = POST_BATCH * POST_BATCHES
    detail = f"{POST_BATCHES} batches of {POST_BATCH:,}, one after another"
    return Figure("usage: POST /events", total / seconds, "events/s", 20_000, True, detail)


def _small_batch(run: str, number: int) -> bytes:
    events = [
        {
            "id": f"beside-{run}-{number}-{i}",
            "customer": f"cust{(number * BESIDE_BATCH + i) % CUSTOMERS:04}",
            "name": "api_call",
            "timestamp": "2025-12-20T12:00:00Z",
            "properties": {"tokens": i % 100, "model": "a"},
        }
        for i in range(BESIDE_BATCH)
    ]
    return json.dumps(events).encode()


def build_beside_posts(client: httpx.Client, base_url: str) -> list[Figure]:
    """Define an INDEXED metric over every event while another client sends POST /events
    batches of 1,000 one after another: how long the definition takes (its rollup built) and
    the longest wait of a batch sent while it ran (a build used to hold every batch back)."""
    run, stop = f"{time.time_ns():x}", threading.Event()
    posts: list[tuple[float, float]] = []  # (sent, answered) of each batch
    failed: list[str] = []

    def send() -> None:
        with httpx.Client(base_url=base_url, timeout=300) as sender:
            number = 0
            while not stop.is_set():
                sent = time.perf_counter()
                response = sender.post("/events", content=_small_batch(run, number))
                posts.append((sent, time.perf_counter()))
                if response.status_code != 200:
                    failed.append(f"HTTP {response.status_code}: {response.text[:300]}")
                    return
                number += 1

    sender = threading.Thread(target=send)
    sender.start()
    try:
        time.sleep(1)  # batches flowing
        began = time.perf_counter()
        variables = {"input": {"name": f"tokens_{run}", **BUILT_METRIC}}
        _graphql(client, CREATE_INDEXED, variables)
        ended = time.perf_counter()
    finally:
        stop.set()
        sender.join()
    if failed:
        raise BenchFailed(f"POST /events beside a build: {failed[0]}")
    during = [answered - sent for sent, answered in posts if answered > began and sent < ended]
    detail = (
        f"a SUM; {len(during)} batches of {BESIDE_BATCH:,} sent meanwhile, "
        f"median {statistics.median(during) * 1000:.0f} ms"
    )
    return [
        Figure(
            "usage: define an INDEXED metric (rollup built)", ended - began, "s", 60, detail=detail
        ),
        Figure(
            "usage: longest POST /events beside it", max(during) * 1000, "ms", 1_000, detail=detail
        ),
    ]


def _graphql(client: httpx.Client, query: str, variables: Mapping[str, Any]) -> float:
    began = time.perf_counter()
    response = client.post("/graphql", json={"query": query, "variables": variables})
    elapsed = (time.perf_counter() - began) * 1000
    body = response.json()
    if body.get("errors"):
        raise BenchFailed(f"usage query failed: {body['errors']}")
    return elapsed


def latency(
    client: httpx.Client, query: str, variables: Mapping[str, Any], runs: int
) -> list[float]:
    for _ in range(3):
        _graphql(client, query, variables)
    return [_graphql(client, query, variables) for _ in range(runs)]


class BareSql:
    """The series' aggregate written by hand, run over one asyncpg connection (no HTTP)."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.connection = self.loop.run_until_complete(asyncpg.connect(url))
        self.loop.run_until_complete(
            self.connection.execute("SET jit = off; SET work_mem = '64MB'")
        )

    def timed(self) -> float:
        bounds = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
        began = time.perf_counter()
        self.loop.run_until_complete(self.connection.fetch(BARE_SQL, *bounds))
        return (time.perf_counter() - began) * 1000

    def close(self) -> None:
        self.loop.run_until_complete(self.connection.close())
        self.loop.close()


def interleaved(
    client: httpx.Client, ids: Mapping[str, str], url: str, runs: int
) -> tuple[list[float], list[float]]:
    """SIMPLE series and bare SQL timed in turn, so both see the same load on a shared machine."""
    sql = BareSql(url)
    variables = {"id": ids["tokens"]}
    try:
        for _ in range(3):
            _graphql(client, SERIES, variables)
            sql.timed()
        pairs = [(_graphql(client, SERIES, variables), sql.timed()) for _ in range(runs)]
    finally:
        sql.close()
    return [simple for simple, _ in pairs], [bare for _, bare in pairs]


def _figure(name: str, samples: list[float], target: float | None, detail: str = "") -> Figure:
    detail = detail or f"p95 {p95(samples):,.1f} ms"
    return Figure(name, statistics.median(samples), "ms", target, detail=detail)


def query_figures(
    client: httpx.Client, url: str, ids: Mapping[str, str], runs: int
) -> list[Figure]:
    customer = {"customer": "1"}
    figures = [
        _figure(
            "usage: one customer, one month, SIMPLE",
            latency(client, VALUE, {"id": ids["tokens"], **customer}, runs),
            10,
        ),
        _figure(
            "usage: one customer, one month, INDEXED",
            latency(client, VALUE, {"id": ids["tokens_indexed"], **customer}, runs),
            10,
        ),
        _figure(
            "usage: 12-month series, INDEXED",
            latency(client, SERIES, {"id": ids["tokens_indexed"]}, runs),
            100,
        ),
    ]
    simple, sql = interleaved(client, ids, url, runs)
    ratio = statistics.median(simple) / statistics.median(sql)
    figures.append(_figure("usage: 12-month series, SIMPLE", simple, 1.3 * statistics.median(sql)))
    figures.append(_figure("usage: the same aggregate, bare SQL", sql, None))
    medians = f"{ratio:.2f} x: {statistics.median(simple):,.0f} / {statistics.median(sql):,.0f} ms"
    figures.append(Figure("usage: SIMPLE series / bare SQL", ratio, "x", 1.3, detail=medians))
    return figures


async def loaded(admin_url: str, database: str, events: int) -> dict[str, str] | None:
    """The metric ids of an earlier run's database holding `events` events or more (its
    import and the posted batches), None when there is none."""
    try:
        connection = await asyncpg.connect(_database_url(admin_url, database))
    except asyncpg.InvalidCatalogNameError:
        return None
    try:
        rows = await connection.fetch(
            "SELECT name, id FROM usage_metric WHERE name IN ('tokens', 'tokens_indexed')"
        )
        stored = await connection.fetchval("SELECT count(*) FROM usage_event")
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await connection.close()
    ids = {row["name"]: str(row["id"]) for row in rows}
    return ids if len(ids) == 2 and stored >= events else None


def _database_url(admin_url: str, database: str) -> str:
    url = make_url(admin_url).set(drivername="postgresql", database=database)
    return url.render_as_string(hide_password=False)


def usage_figures(
    admin_url: str,
    events: int,
    runs: int,
    console: Console,
    database: str = DATABASE,
    reuse: bool = False,
) -> list[Figure]:
    """Every figure; with `reuse`, of a database an earlier run loaded at that size (if
    any): the queries only, neither the import nor the posted batches timed again."""
    ids = asyncio.run(loaded(admin_url, database, events)) if reuse else None
    if ids is not None:
        console.print(f"{database}: reused (the queries only)")
        url = _database_url(admin_url, database)
        env = {**os.environ, "TIDEMILL_DATABASE_URL": url}
        uncached = {**env, "TIDEMILL_RESULT_CACHE_ENTRIES": "0"}
        with (
            server(uncached) as (base_url, _process),
            httpx.Client(base_url=base_url, timeout=300) as client,
        ):
            return query_figures(client, url, ids, runs) + build_beside_posts(client, base_url)
    url = asyncio.run(fresh_database(admin_url, database))
    path = write_events(events, CUSTOMERS)
    console.print(f"usage data: {path.relative_to(REPO)} ({events:,} events)")
    ids = asyncio.run(define_metrics(url))
    env = {**os.environ, "TIDEMILL_DATABASE_URL": url}
    figures = run_import(path, events, env)
    # every query computed: the result cache would answer the repeats from memory
    uncached = {**env, "TIDEMILL_RESULT_CACHE_ENTRIES": "0"}
    with (
        server(uncached) as (base_url, _process),
        httpx.Client(base_url=base_url, timeout=300) as client,
    ):
        figures.append(post_events(client))
        figures += query_figures(client, url, ids, runs)
        figures += build_beside_posts(client, base_url)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.usage")
    parser.add_argument("--events", type=int, default=10_000_000, help="events (10,000,000)")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per query (20)")
    parser.add_argument(
        "--database", default=DATABASE, help=f"the database made for it ({DATABASE})"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="time the queries of a database already loaded"
    )
    args = parser.parse_args(argv)
    console = Console()
    console.print(describe())
    admin_url = os.environ.get("TIDEMILL_BENCH_DATABASE_URL") or DEFAULT_ADMIN_URL
    try:
        figures = usage_figures(
            admin_url, args.events, args.runs, console, args.database, args.reuse
        )
    except BenchFailed as error:
        console.print(f"[red]benchmark failed:[/red] {error}")
        return 2
    console.print(table(figures, f"usage metrics: {args.events:,} events, {CUSTOMERS:,} customers"))
    console.print(describe())
    return 0


if __name__ == "__main__":
    sys.exit(main())
