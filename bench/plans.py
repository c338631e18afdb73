"""Rollup against scan, side by side at several company sizes:
`python -m bench.plans --customers 10000 100000` (`make bench-plans`; `make bench-1m` for 1M).

For each size: a fresh bench database with the benchmark company (bench/run.py's generator and
the real CLI import; `--reuse` keeps a database already loaded at that size), then two real
servers on it (`status` and `customer_country` first added to its rollups by `tidemill rollups
add`, the time it takes printed), one with the rollups (the default) and one with
`TIDEMILL_ROLLUPS=off`, both with the result cache off (every request computed), answer the
same GraphQL documents over HTTP. Each answer is checked: the same data from both servers
(exact to the cent), and `extensions.plan` as expected. One table of medians is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx
from rich import box
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from app.demo import add_months
from bench.machine import describe
from bench.run import (
    BREAKDOWN_QUERY,
    COHORTS_QUERY,
    DATA_END,
    DEFAULT_ADMIN_URL,
    FULL_SERIES_QUERY,
    REPO,
    SERIES_QUERY,
    SNAPSHOT_QUERY,
    BenchFailed,
    Figure,
    _url,
    fresh_database,
    run_import,
    server,
    write_data,
)


@dataclass(frozen=True)
class PlanCase:
    name: str
    query: str
    variables: Mapping[str, Any]
    plan: str  # what the rollup server must report in extensions.plan


def plan_cases(start: date, end: date) -> list[PlanCase]:
    window = {"start": start.isoformat(), "end": end.isoformat(), "interval": "MONTH"}
    return [
        PlanCase("series, 60 months, foundation fields", SERIES_QUERY, window, "rollup"),
        PlanCase("series, 60 months, every field", FULL_SERIES_QUERY, window, "rollup"),
        PlanCase("snapshot, every field", SNAPSHOT_QUERY, {"at": end.isoformat()}, "rollup"),
        PlanCase(
            "breakdown by plan, 60 months",
            BREAKDOWN_QUERY,
            {**window, "spec": {"dimensions": ["plan"]}},
            "rollup",
        ),
        PlanCase(
            "breakdown by status (added), 60 months",
            BREAKDOWN_QUERY,
            {**window, "spec": {"dimensions": ["status"]}},
            "rollup",
        ),
        PlanCase(
            "breakdown by customer_country (added), 60 months",
            BREAKDOWN_QUERY,
            {**window, "spec": {"dimensions": ["customer_country"]}},
            "rollup",
        ),
        PlanCase(
            "cohorts, 5 years",
            COHORTS_QUERY,
            {"start": start.isoformat(), "end": end.isoformat()},
            "rollup",
        ),
    ]


def label(customers: int) -> str:
    if customers % 1_000_000 == 0:
        return f"{customers // 1_000_000}m"
    return f"{customers // 1000}k" if customers % 1000 == 0 else str(customers)


async def holds(url: str, filename: str) -> bool:
    """Whether a bench database exists and has imported the data file `filename`."""
    try:
        connection = await asyncpg.connect(url)
    except asyncpg.InvalidCatalogNameError:
        return False
    try:
        query = "SELECT EXISTS (SELECT FROM import_run WHERE filename LIKE '%' || $1)"
        return bool(await connection.fetchval(query, filename))
    except asyncpg.UndefinedTableError:
        return False
    finally:
        await connection.close()


def prepare(admin_url: str, database: str, customers: int, args: argparse.Namespace) -> str:
    """The URL of a database holding the bench company of `customers` customers."""
    return prepared(admin_url, database, customers, args)[0]


def prepared(
    admin_url: str,
    database: str,
    customers: int,
    args: argparse.Namespace,
    *,
    lift_timeout: bool = True,
) -> tuple[str, list[Figure]]:
    """The URL of a database holding the bench company, and its import's figures (rows/s,
    peak RSS; not a number when an earlier run's database was reused). `lift_timeout` lets
    the import's statements run past the statement timeout."""
    url = _url(admin_url, database)
    console = Console()
    filename = f"periods-{customers}c-{args.years}y-seed{args.seed}.csv"  # as write_data names it
    if args.reuse and asyncio.run(holds(url, filename)):
        console.print(f"{database}: reused (it imported {filename})")
        return url, import_figures(math.nan, math.nan, math.nan)
    url = asyncio.run(fresh_database(admin_url, database))
    path, rows = write_data(customers, args.years, args.seed)
    env = {**os.environ, "TIDEMILL_DATABASE_URL": url}
    if lift_timeout:  # bench.plans measures queries, whatever the import's statements take
        env["TIDEMILL_STATEMENT_TIMEOUT_MS"] = "0"
    seconds, peak = run_import(path, env)
    console.print(
        f"{database}: imported {rows:,} periods in {seconds:.0f} s "
        f"({rows / seconds:,.0f} rows/s, peak {peak:.0f} MB)"
    )
    return url, import_figures(rows, seconds, peak)


def import_figures(rows: float, seconds: float, peak_mb: float) -> list[Figure]:
    """A first import's figures against the issue's targets at 1,000,000 customers."""
    detail = f"{rows:,.0f} rows in {seconds:,.1f} s"
    return [
        Figure("first import (CLI, in chunks)", rows / seconds, "rows/s", 50_000, True, detail),
        Figure("first import: peak RSS", peak_mb, "MB", 300),
    ]


# rolled up by `tidemill rollups add` before the servers start
ADDED = ("status", "customer_country")


def add_dimensions(url: str) -> str:
    """Roll up ADDED in the bench database (the CLI, as an operator would); what it did."""
    env = {**os.environ, "TIDEMILL_DATABASE_URL": url}
    command = [sys.executable, "-m", "app.cli", "rollups", "add", *ADDED]
    began = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BenchFailed(f"tidemill rollups add: {done.stderr.strip() or done.stdout.strip()}")
    said = done.stdout.strip().splitlines()[-1]
    return f"{said} ({time.perf_counter() - began:,.1f} s)"


def post(client: httpx.Client, case: PlanCase) -> tuple[float, dict[str, Any]]:
    began = time.perf_counter()
    response = client.post("/graphql", json={"query": case.query, "variables": case.variables})
    elapsed = (time.perf_counter() - began) * 1000
    body: dict[str, Any] = response.json()
    if response.status_code != 200 or body.get("errors") or not body.get("data"):
        raise BenchFailed(f"{case.name}: HTTP {response.status_code}: {body.get('errors')}")
    return elapsed, body


def timings(
    base_url: str, cases: list[PlanCase], warmup: int, runs: int
) -> tuple[list[float], list[dict[str, Any]]]:
    """Median milliseconds of each case, and each case's last answer."""
    medians, bodies = [], []
    with httpx.Client(base_url=base_url, timeout=600) as client:
        for case in cases:
            for _ in range(warmup):
                post(client, case)
            samples: list[float] = []
            body: dict[str, Any] = {}
            for _ in range(runs):
                elapsed, body = post(client, case)
                samples.append(elapsed)
            medians.append(statistics.median(samples))
            bodies.append(body)
    return medians, bodies


def compare(url: str, cases: list[PlanCase], warmup: int, runs: int) -> list[tuple[float, float]]:
    """(rollup ms, scan ms) per case, after checking that both servers agree exactly."""
    results = []
    for setting in ("on", "off"):
        env = {**os.environ, "TIDEMILL_DATABASE_URL": url, "TIDEMILL_ROLLUPS": setting}
        env["TIDEMILL_STATEMENT_TIMEOUT_MS"] = "0"  # the scan at 1M customers may take long
        env["TIDEMILL_RESULT_CACHE_ENTRIES"] = "0"  # every request computed, none served stored
        with server(env) as (base_url, _):
            results.append(timings(base_url, cases, warmup, runs))
    (rolled, rolled_bodies), (scanned, scanned_bodies) = results
    for case, with_rollups, without in zip(cases, rolled_bodies, scanned_bodies, strict=True):
        if with_rollups["data"] != without["data"]:
            raise BenchFailed(f"{case.name}: the rollup and the scan answers differ")
        plan = with_rollups.get("extensions", {}).get("plan", "")
        if plan != case.plan:
            raise BenchFailed(f"{case.name}: plan {plan!r}, expected {case.plan!r}")
        if without.get("extensions", {}).get("plan", "") not in ("scan", ""):
            raise BenchFailed(f"{case.name}: TIDEMILL_ROLLUPS=off did not scan")
    return list(zip(rolled, scanned, strict=True))


def report(sizes: list[int], cases: list[PlanCase], figures: dict[int, list[Any]]) -> Table:
    table = Table(title="GraphQL over HTTP, median ms: rollup | scan", box=box.SIMPLE_HEAD)
    table.add_column("query")
    for customers in sizes:
        table.add_column(f"{label(customers)} rollup", justify="right")
        table.add_column(f"{label(customers)} scan", justify="right")
    for index, case in enumerate(cases):
        cells = []
        for customers in sizes:
            rolled, scanned = figures[customers][index]
            cells += [f"{rolled:,.1f}", f"{scanned:,.1f}"]
        table.add_row(case.name, *cells)
    return table


def markdown(sizes: list[int], cases: list[PlanCase], figures: dict[int, list[Any]]) -> str:
    head = ["query", *(f"{label(n)} {p}" for n in sizes for p in ("rollup", "scan"))]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for index, case in enumerate(cases):
        cells = [f"{value:,.1f}" for n in sizes for value in figures[n][index]]
        lines.append("| " + " | ".join([case.name, *cells]) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.plans", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--customers", type=int, nargs="+", default=[10_000, 100_000], help="sizes (10000 100000)"
    )
    parser.add_argument("--years", type=int, default=5, help="years of history (5)")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the company (7)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per case (7)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per case (2)")
    parser.add_argument(
        "--prefix", default="tidemill_bench_plans", help="database name prefix (+ _10k, ...)"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="keep a database already loaded at that size"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    if not console.is_terminal:
        console.width = 140
    admin_url = os.environ.get("TIDEMILL_BENCH_DATABASE_URL") or DEFAULT_ADMIN_URL
    start = add_months(DATA_END, -12 * args.years)
    end = DATA_END - timedelta(days=1)
    cases = plan_cases(start, end)
    figures: dict[int, list[Any]] = {}
    console.print(describe())
    try:
        for customers in args.customers:
            url = prepare(admin_url, f"{args.prefix}_{label(customers)}", customers, args)
            console.print(f"{make_url(url).database}: {add_dimensions(url)}")
            console.print(f"measuring {make_url(url).database} ...")
            figures[customers] = compare(url, cases, args.warmup, args.runs)
    except BenchFailed as error:
        console.print(f"[red]benchmark failed:[/red] {error}")
        return 2
    console.print(report(args.customers, cases, figures))
    console.print(describe())
    console.print(markdown(args.customers, cases, figures), soft_wrap=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
