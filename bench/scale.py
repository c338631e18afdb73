"""Operations at scale, one command: `python -m bench.scale [--customers N]` (`make bench-scale`).

1. the benchmark company (bench/run.py's generator) imported by the real CLI three times: in
   one transaction, in chunks (`TIDEMILL_IMPORT_CHUNK_ROWS`), and in chunks with the file
   staged by one process instead of two (`TIDEMILL_IMPORT_PROCESSES=1`; a file of 64 MB or
   more is staged by two): rows/s and the child's peak RSS;
2. GraphQL over HTTP against the bare SQL it runs, side by side (result cache off): the metric
   statements of the same request, captured in-process and run again through asyncpg alone,
   each run timing one then the other (both under the same load);
3. throughput: 10 concurrent clients for a few seconds against `--workers` server processes,
   snapshots/s and series/s, with the result cache (the dashboard refreshed by many people)
   and without it.

Figures are medians; the machine is shared, so run it several times.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from rich.console import Console
from sqlalchemy import event

from app.config import load_settings
from app.db import create_engine
from app.demo import add_months
from app.metrics.service import MetricsEngine
from bench.run import (
    DATA_END,
    DEFAULT_ADMIN_URL,
    REPO,
    SERIES_QUERY,
    Figure,
    free_port,
    fresh_database,
    run_import,
    table,
    wait_healthy,
    write_data,
)
from resolvers.context import Context
from schema import schema

CLIENTS = 10
SNAPSHOT = "query BenchSnapshotNow { snapshot { mrr arr customers arpa netNewMrr } }"
# catalogue reads (cached per data version by a server): not the metric's SQL
CATALOGUE = ("FROM attribute", "FROM ledger_currency", "FROM data_version")


def _env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDEMILL_")}
    return {**env, "TIDEMILL_DATABASE_URL": url, "TIDEMILL_GRAPHIQL": "false", **extra}


def _truncate(url: str) -> None:
    async def run() -> None:
        connection = await asyncpg.connect(url)
        try:
            tables = "customer, plan, subscription, subscription_version, mrr_change, "
            tables += "movement, movement_scope, ledger_currency, import_run, import_job"
            await connection.execute(f"TRUNCATE {tables} CASCADE")
        finally:
            await connection.close()

    asyncio.run(run())


def import_figures(url: str, path: Path, rows: int, chunk_rows: int) -> list[Figure]:
    figures = []
    chunks = f"chunks of {chunk_rows:,} rows"
    runs = (
        ("one transaction", 0, "2"),
        (chunks, chunk_rows, "2"),
        (f"{chunks}, staged by one process", chunk_rows, "1"),
    )
    for label, chunk, processes in runs:
        _truncate(url)
        extra = {
            "TIDEMILL_IMPORT_CHUNK_ROWS": str(chunk or rows * 2),
            "TIDEMILL_IMPORT_PROCESSES": processes,  # (a file of 64 MB or more)
        }
        seconds, peak = run_import(path, _env(url, **extra))
        detail = f"{rows:,} rows in {seconds:.1f} s, peak RSS {peak:.0f} MB"
        figures.append(
            Figure(f"import, {label}", rows / seconds, "rows/s", 50_000, True, detail=detail)
        )
    return figures


@contextmanager
def server(url: str, workers: int, **extra: str) -> Iterator[str]:
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", "schema.asgi:create_app"]
    command += ["--port", str(port), "--log-level", "warning", "--workers", str(workers)]
    process = subprocess.Popen(command, env=_env(url, **extra), cwd=REPO)
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_healthy(base_url, process, timeout=60)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _metric_statements(url: str, query: str, variables: Mapping[str, Any]) -> list[Any]:
    """The metric statements (SQL, parameters) a request runs, captured in-process."""
    engine = create_engine(load_settings(database_url=url))
    captured: list[tuple[str, Any]] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def capture(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if not any(name in statement for name in CATALOGUE):
            captured.append((statement, parameters))

    try:
        context = Context(metrics=MetricsEngine(engine))
        result = await schema.execute(query, variable_values=dict(variables), context_value=context)
        assert result.errors is None, result.errors
    finally:
        await engine.dispose()
    return captured


@dataclass
class SideBySide:
    graphql: list[float] = field(default_factory=list)  # ms: the request over HTTP
    bare: list[float] = field(default_factory=list)  # ms: its metric statements over asyncpg
    http: list[float] = field(default_factory=list)  # ms: GET /healthz on the same server
    statements: int = 0


async def _side_by_side(
    url: str, base_url: str, query: str, variables: Mapping[str, Any], runs: int
) -> SideBySide:
    """Each run times the request over HTTP, then its metric statements alone through
    asyncpg, then the server's HTTP alone (`GET /healthz`: its middleware, no GraphQL, no
    database), so all three see the same load on a shared machine."""
    statements = await _metric_statements(url, query, variables)
    connection = await asyncpg.connect(url)
    settings = "SET jit = off; SET work_mem = '64MB'; SET parallel_setup_cost = 100; "
    settings += "SET parallel_tuple_cost = 0.001; SET min_parallel_table_scan_size = 0; "
    settings += "SET plan_cache_mode = force_custom_plan"
    await connection.execute(settings)
    timed = SideBySide(statements=len(statements))
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
            for n in range(runs + 3):
                began = time.perf_counter()
                response = await client.post(
                    "/graphql", json={"query": query, "variables": variables}
                )
                body = response.json()
                if response.status_code != 200 or body.get("errors"):
                    raise RuntimeError(f"HTTP {response.status_code}: {body}")
                middle = time.perf_counter()
                for statement, parameters in statements:
                    await connection.fetch(statement, *(parameters or ()))
                after_sql = time.perf_counter()
                (await client.get("/healthz")).raise_for_status()
                if n >= 3:
                    timed.graphql.append((middle - began) * 1000)
                    timed.bare.append((after_sql - middle) * 1000)
                    timed.http.append((time.perf_counter() - after_sql) * 1000)
    finally:
        await connection.close()
    return timed


def whole_months(start: date) -> dict[str, str]:
    """The monthly series of the size cases (bench/sizes.py) and of a dashboard: whole months
    up to the last one before DATA_END (a range that cut a month would scan, bench/plans.py)."""
    end = DATA_END - timedelta(days=1)
    return {"start": start.isoformat(), "end": end.isoformat(), "interval": "MONTH"}


def cut_months() -> dict[str, str]:
    """A 5-year monthly series from mid-month to mid-month: its first and last months read
    the day rows and their own movements (bench/sizes.py's cut case)."""
    start = add_months(DATA_END, -60) + timedelta(days=14)
    end = DATA_END - timedelta(days=17)
    return {"start": start.isoformat(), "end": end.isoformat(), "interval": "MONTH"}


def overhead_figures(url: str, runs: int) -> list[Figure]:
    """GraphQL over HTTP against its own statements: the series and snapshot the rollups
    answer (statements of about a millisecond), and a series whose first and last months are
    cut (statements that read movements: what GraphQL adds, beside a statement that costs)."""
    start = add_months(DATA_END, -60)
    window = whole_months(start)
    cases = [
        ("monthly series, 5 years", SERIES_QUERY, window),
        ("snapshot", SNAPSHOT, {}),
        ("monthly series, 5 years cut mid-month", SERIES_QUERY, cut_months()),
    ]
    figures = []
    with server(url, 1, TIDEMILL_RESULT_CACHE_ENTRIES="0") as base_url:
        for name, query, variables in cases:
            timed = asyncio.run(_side_by_side(url, base_url, query, variables, runs))
            graphql, bare = statistics.median(timed.graphql), statistics.median(timed.bare)
            http = statistics.median(timed.http)
            detail = (
                f"GraphQL over HTTP {graphql:.1f} ms, its {timed.statements} metric "
                f"statement(s) alone {bare:.1f} ms"
            )
            figures.append(
                Figure(f"{name}: GraphQL / bare SQL", graphql / bare, "x", 1.3, False, detail)
            )
            # the least any request over HTTP could cost: the statements plus the server's
            # HTTP alone, without GraphQL
            floor = f"GET /healthz {http:.2f} ms beside the statement(s)' {bare:.1f} ms"
            figures.append(
                Figure(
                    f"{name}: HTTP alone + bare SQL / bare SQL",
                    (http + bare) / bare,
                    "x",
                    None,
                    False,
                    floor,
                )
            )
    return figures


async def _clients(base_url: str, query: str, variables: Mapping[str, Any], seconds: float) -> int:
    done = 0
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        async with httpx.AsyncClient(base_url=base_url, timeout=120) as http:
            while time.perf_counter() < deadline:
                response = await http.post(
                    "/graphql", json={"query": query, "variables": variables}
                )
                assert response.status_code == 200, response.text
                if not response.json().get("errors"):  # a timeout is an answer, not a result
                    done += 1

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return done


def throughput_figures(url: str, workers: int, seconds: float) -> list[Figure]:
    start = add_months(DATA_END, -60)
    window = whole_months(start)
    figures = []
    for cache in ("2000", "0"):
        label = "result cache" if cache != "0" else "no result cache"
        with server(url, workers, TIDEMILL_RESULT_CACHE_ENTRIES=cache) as base_url:
            for name, query, variables, target in (
                ("snapshots/s", SNAPSHOT, {}, 150),
                ("series/s", SERIES_QUERY, window, 60),
            ):
                asyncio.run(_clients(base_url, query, variables, 1.0))  # warm-up
                count = asyncio.run(_clients(base_url, query, variables, seconds))
                figures.append(
                    Figure(
                        f"{CLIENTS} clients, {workers} processes, {label}: {name}",
                        count / seconds,
                        "/s",
                        target,
                        True,
                        detail=f"{count} requests in {seconds:.0f} s",
                    )
                )
    return figures


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--chunk-rows", type=int, default=25_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--database", default="tidemill_bench_scale")
    parser.add_argument("--skip-import", action="store_true", help="the database is loaded")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    admin = os.environ.get("TIDEMILL_BENCH_DATABASE_URL", DEFAULT_ADMIN_URL)
    if args.skip_import:
        from bench.run import _url

        url = _url(admin, args.database)
        figures: list[Figure] = []
    else:
        url = asyncio.run(fresh_database(admin, args.database))
        path, rows = write_data(args.customers, args.years, args.seed)
        console.print(f"{args.customers:,} customers, {rows:,} subscription periods: {path}")
        figures = import_figures(url, path, rows, args.chunk_rows)
    figures += overhead_figures(url, args.runs)
    figures += throughput_figures(url, args.workers, args.seconds)
    console.print(
        table(figures, f"Tidemill at scale, {args.customers:,} customers ({date.today()})")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
