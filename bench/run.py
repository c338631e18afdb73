"""Tidemill's performance benchmark, one command: `python -m bench.run [--customers N --years Y]`.

1. a fresh, migrated database `tidemill_bench` on the server of TIDEMILL_BENCH_DATABASE_URL
   (an admin URL; default postgresql://postgres@127.0.0.1:5432/postgres);
2. the demo company at benchmark size (busier than the demo) written to bench/data/;
3. the real CLI imports it in a subprocess: wall time -> rows/s, the child's peak RSS;
4. attributes for every customer (the CLI again) and a saved segment (bench/segments.py);
5. the real server answers every case of `cases()` over HTTP: warm-ups, then timed runs, and
   every dashboard view's set of persisted queries, sent together (bench/dashboard.py);
6. the demo company in a second database: the dashboard's first load in headless Chromium,
   and the size of its bundle;
7. Stripe (bench/stripe.py): signed webhooks posted to the real server, the worker applying
   them, and a backfill of as many customers from a fake Stripe API;
8. usage metrics in a third database (bench/usage.py): event import and POST /events
   throughput, value and series latencies against bare SQL (`--usage-events`, 0 skips);
9. one table of figures held against their targets (`--strict`: exit 1 when one is missed).

A new benchmark case is one more `Case` in `cases()`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from rich import box
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from app.config import load_settings
from app.db import create_engine
from app.demo import Rates, add_months, generate_periods, load_demo, write_csv
from app.ingest.fx import ensure_ecb
from app.migrate import upgrade
from bench import dashboard
from bench import segments as bench_segments
from bench.machine import describe

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASE = "tidemill_bench"
REPO = Path(__file__).resolve().parent.parent
DATA_DIR = REPO / "bench" / "data"
DATA_END = date(2026, 1, 1)  # fixed, so a run is the same data on any day
MB = 1024 * 1024
# Far busier than the demo: about 10 periods per customer over five years.
BENCH_RATES = Rates(
    churn=0.015,
    change=0.7,
    past_due=0.12,
    yearly=0.05,
    reactivation=0.5,
    second_subscription=0.2,
)

POINT_FIELDS = """
    date endDate mrr arr customers arpa asp new expansion contraction churn reactivation
    netNewMrr customersDiff newCustomers expansionCustomers contractionCustomers churnCustomers
    reactivationCustomers churnedCustomers customerChurnRate mrrChurnRate netMrrChurnRate
    quickRatio
"""
SERIES_QUERY = f"""
query BenchSeries($start: Date!, $end: Date!, $interval: Interval!, $spec: QuerySpecInput) {{
  series(start: $start, end: $end, interval: $interval, spec: $spec) {{
    points {{ {POINT_FIELDS} }}
    summary {{ current previous percentageChange }}
  }}
}}
"""
BREAKDOWN_QUERY = f"""
query BenchBreakdown($start: Date!, $end: Date!, $interval: Interval!, $spec: QuerySpecInput) {{
  series(start: $start, end: $end, interval: $interval, spec: $spec) {{
    breakdown {{ key points {{ {POINT_FIELDS} }} }}
  }}
}}
"""


class BenchFailed(RuntimeError):
    """A step of the benchmark did not work (not: was too slow)."""


@dataclass(frozen=True)
class Case:
    """One GraphQL request, timed over HTTP; its median latency is held against `target_ms`."""

    name: str
    query: str
    variables: Mapping[str, Any]
    target_ms: float


@dataclass(frozen=True)
class Figure:
    name: str
    value: float
    unit: str
    target: float | None  # None: measured beside the others, with no target of its own
    at_least: bool = False  # the value must reach the target (throughput) instead of stay under
    detail: str = ""

    @property
    def met(self) -> bool:
        if self.target is None:
            return True
        return self.value >= self.target if self.at_least else self.value <= self.target


ALL_POINT_FIELDS = (
    POINT_FIELDS
    + """ customerRetentionRate mrrRetentionRate nrr grr customerChurnAvg ltv fxAdjustment"""
)
FULL_SERIES_QUERY = f"""
query BenchFullSeries($start: Date!, $end: Date!, $interval: Interval!) {{
  series(start: $start, end: $end, interval: $interval) {{ points {{ {ALL_POINT_FIELDS} }} }}
}}
"""
SNAPSHOT_QUERY = f"""
query BenchSnapshot($at: Date!) {{ snapshot(at: $at) {{ {ALL_POINT_FIELDS} }} }}
"""
COHORTS_QUERY = """
query BenchCohorts($start: Date!, $end: Date!) {
  cohorts(start: $start, end: $end) {
    cohort size ltv cells { offset activeCustomers mrr customerRetention mrrRetention }
  }
}
"""


SEGMENT_RATIO = 1.5  # a segmented series may take this many times the unsegmented one


def cases(start: date, end: date, segment: int) -> list[Case]:
    window = {"start": start.isoformat(), "end": end.isoformat(), "interval": "MONTH"}
    by_plan = {**window, "spec": {"dimensions": ["plan"]}}
    segmented = {**window, "spec": {"segment": str(segment)}}
    return [
        Case("series", SERIES_QUERY, window, target_ms=150),
        Case("series, 3-condition segment", SERIES_QUERY, segmented, 150 * SEGMENT_RATIO),
        Case("customers page of 100, 5 attributes", bench_segments.PAGE_QUERY, {"first": 100}, 80),
        Case("breakdown by plan", BREAKDOWN_QUERY, by_plan, target_ms=400),
        Case("series, every field", FULL_SERIES_QUERY, window, target_ms=300),
        Case("snapshot, every field", SNAPSHOT_QUERY, {"at": end.isoformat()}, target_ms=100),
        Case(
            "cohorts, 5 years",
            COHORTS_QUERY,
            {"start": start.isoformat(), "end": end.isoformat()},
            target_ms=500,
        ),
    ]


# --- database and data -----------------------------------------------------------------------


def _url(admin_url: str, database: str) -> str:
    url = make_url(admin_url).set(drivername="postgresql", database=database)
    return url.render_as_string(hide_password=False)


async def fresh_database(admin_url: str, database: str = DATABASE) -> str:
    """Drop and create the bench database, migrate it; its URL."""
    admin = await asyncpg.connect(_url(admin_url, make_url(admin_url).database or "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    url = _url(admin_url, database)
    engine = create_engine(load_settings(database_url=url))
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    return url


def write_data(customers: int, years: int, seed: int) -> tuple[Path, int]:
    """The benchmark company as a CSV under bench/data/; its path and row count."""
    DATA_DIR.mkdir(exist_ok=True)
    path = DATA_DIR / f"periods-{customers}c-{years}y-seed{seed}.csv"
    months = 12 * years
    start = add_months(DATA_END, -months)
    periods = generate_periods(
        customers,
        seed,
        start,
        months,
        rates=BENCH_RATES,
        currencies={},  # all in USD
    )
    return path, write_csv(periods, path)


# --- import ----------------------------------------------------------------------------------


def run_import(path: Path, env: Mapping[str, str]) -> tuple[float, float]:
    """Import with the real CLI in a child process: (seconds, that child's peak RSS in MB)."""
    return run_cli(["import", "subscriptions", str(path)], env)


def run_cli(arguments: list[str], env: Mapping[str, str]) -> tuple[float, float]:
    """`tidemill ARGUMENTS` in a child process: (seconds, that child's peak RSS in MB).

    The child is reaped with wait4, whose usage is that child's own (and its children's), not
    the largest of every child this process ever started (a server's, say)."""
    command = [sys.executable, "-m", "app.cli", *arguments]
    began = time.perf_counter()
    with tempfile.TemporaryFile("w+") as output:
        child = subprocess.Popen(command, env=env, cwd=REPO, stdout=output, stderr=output)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - began
        if child.returncode != 0:
            output.seek(0)
            what = " ".join(arguments[:2])
            raise BenchFailed(f"{what} exited with {child.returncode}:\n{output.read()}")
    return seconds, usage.ru_maxrss / 1024  # KB on Linux


# --- server ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_healthy(base_url: str, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchFailed(f"server exited with {process.returncode} before it was healthy")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise BenchFailed(f"server not healthy after {timeout:.0f} s")


@contextmanager
def server(env: Mapping[str, str]) -> Iterator[tuple[str, psutil.Process]]:
    """The real ASGI app under uvicorn in a child process: (base URL, its process)."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "--factory", "schema.asgi:create_app"]
    command += ["--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, env=env, cwd=REPO)
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_healthy(base_url, process)
        yield base_url, psutil.Process(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- GraphQL cases ---------------------------------------------------------------------------


def post(client: httpx.Client, case: Case) -> None:
    response = client.post("/graphql", json={"query": case.query, "variables": case.variables})
    body = response.json()
    if response.status_code != 200 or body.get("errors") or not body.get("data"):
        raise BenchFailed(f"{case.name}: HTTP {response.status_code}: {body.get('errors')}")


def timed(client: httpx.Client, case: Case) -> float:
    """Milliseconds of one request, checked for errors."""
    began = time.perf_counter()
    post(client, case)
    return (time.perf_counter() - began) * 1000


def p95(samples: list[float]) -> float:
    if len(samples) < 2:
        return max(samples)
    return statistics.quantiles(samples, n=20)[18]


def measure(client: httpx.Client, case: Case, warmup: int, runs: int) -> Figure:
    for _ in range(warmup):
        post(client, case)
    samples = [timed(client, case) for _ in range(runs)]
    return Figure(
        f"{case.name} median",
        statistics.median(samples),
        "ms",
        case.target_ms,
        detail=f"p95 {_number(p95(samples))} ms",
    )


def measure_server(
    env: Mapping[str, str],
    bench_cases: list[Case],
    views: list[dashboard.View],
    warmup: int,
    runs: int,
) -> list[Figure]:
    with server(env) as (base_url, process), httpx.Client(base_url=base_url, timeout=120) as client:
        figures = [measure(client, case, warmup, runs) for case in bench_cases]
        figures += [measure_view(base_url, view, warmup, runs) for view in views]
        rss = process.memory_info().rss / MB
    return [*figures, *segment_ratio(figures), Figure("server RSS after run", rss, "MB", 250)]


def measure_view(base_url: str, view: dashboard.View, warmup: int, runs: int) -> Figure:
    samples = asyncio.run(dashboard.time_view(base_url, view, warmup, runs))
    return Figure(
        f"dashboard {view.name}: {len(view.requests)} queries together, median",
        statistics.median(samples),
        "ms",
        dashboard.VIEW_TARGET_MS,
        detail=f"p95 {_number(p95(samples))} ms",
    )


def dashboard_figures(admin_url: str, database: str, runs: int) -> list[Figure]:
    """The dashboard's first load on the demo company (its own database), and its bundle."""
    url = asyncio.run(fresh_database(admin_url, database))
    engine = create_engine(load_settings(database_url=url))

    async def load() -> None:
        try:  # as `tidemill demo` does: the ECB rates first, for its EUR and GBP customers
            await ensure_ecb(engine, "USD")
            await load_demo(engine, 300, 7, progress=lambda _stage, _count: None)
        finally:
            await engine.dispose()

    asyncio.run(load())
    with server({**os.environ, "TIDEMILL_DATABASE_URL": url}) as (base_url, _):
        loads = asyncio.run(dashboard.first_loads(base_url, runs))
    # The usage views on the demo's usage (the bench company has none), computed: no cache.
    uncached = {**os.environ, "TIDEMILL_DATABASE_URL": url, "TIDEMILL_RESULT_CACHE_ENTRIES": "0"}
    with server(uncached) as (base_url, _):
        views = asyncio.run(dashboard.usage_views(base_url, customer="1"))
        usage = [measure_view(base_url, view, warmup=2, runs=10) for view in views]
    kb, files = dashboard.bundle_gzip_kb()
    return [
        *usage,
        Figure(
            "dashboard first load (demo, headless Chromium), median",
            statistics.median(loads),
            "ms",
            1500,
            detail=f"{len(loads)} cold loads, max {_number(max(loads))} ms",
        ),
        Figure("dashboard bundle, gzip", kb, "KB", 400, detail=f"{files} files loaded by /"),
    ]


def segment_ratio(figures: list[Figure]) -> list[Figure]:
    """The segmented series against the unsegmented one, measured in the same run."""
    by_name = {figure.name: figure.value for figure in figures}
    plain = by_name.get("series median")
    segmented = by_name.get("series, 3-condition segment median")
    if not plain or segmented is None:
        return []
    return [Figure("segmented / unsegmented series", segmented / plain, "x", SEGMENT_RATIO)]


def load_attributes(url: str, periods: Path, seed: int, env: Mapping[str, str]) -> int:
    """Attributes for every customer (via the CLI) and the bench segment; the segment's id."""
    path, customers = bench_segments.write_attributes(periods, seed)
    asyncio.run(bench_segments.define(url))
    seconds = bench_segments.import_attributes(path, env)
    Console().print(f"attributes: 5 per customer for {customers:,} customers, {seconds:.1f} s")
    return asyncio.run(bench_segments.save_segment(url))


# --- report ----------------------------------------------------------------------------------


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:,.1f}"


def table(figures: list[Figure], title: str) -> Table:
    report = Table(title=title, box=box.SIMPLE_HEAD)
    for column in ("measure", "value", "target", "", "detail"):
        report.add_column(column, justify="right" if column in ("value", "target") else "left")
    for figure in figures:
        bound = "≥" if figure.at_least else "≤"
        target, status = "—", ""
        if figure.target is not None:
            target = f"{bound} {_number(figure.target)} {figure.unit}"
            status = "[green]ok[/green]" if figure.met else "[red]missed[/red]"
        report.add_row(
            figure.name, f"{_number(figure.value)} {figure.unit}", target, status, figure.detail
        )
    return report


# --- command ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=10_000, help="customers (10000)")
    parser.add_argument("--years", type=int, default=5, help="years of history (5)")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the company (7)")
    parser.add_argument("--runs", type=int, default=20, help="timed runs per case (20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per case (3)")
    parser.add_argument("--database", default=DATABASE, help=f"database to (re)create ({DATABASE})")
    parser.add_argument(
        "--usage-events", type=int, default=10_000_000, help="usage events (10,000,000; 0: skip)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    return parser.parse_args(argv)


def import_figures(path: Path, rows: int, env: Mapping[str, str]) -> list[Figure]:
    seconds, peak_mb = run_import(path, env)
    return [
        Figure(
            "import",
            rows / seconds,
            "rows/s",
            20_000,
            at_least=True,
            detail=f"{rows:,} rows, {seconds:.1f} s",
        ),
        Figure("import peak memory", peak_mb, "MB", 300),
    ]


def run(args: argparse.Namespace, console: Console) -> list[Figure]:
    admin_url = os.environ.get("TIDEMILL_BENCH_DATABASE_URL") or DEFAULT_ADMIN_URL
    url = asyncio.run(fresh_database(admin_url, args.database))
    console.print(f"database: {make_url(url).render_as_string(hide_password=True)}")
    path, rows = write_data(args.customers, args.years, args.seed)
    console.print(
        f"data: {path.relative_to(REPO)} ({rows:,} periods, {args.customers:,} customers)"
    )
    env = {**os.environ, "TIDEMILL_DATABASE_URL": url}
    figures = import_figures(path, rows, env)
    segment = load_attributes(url, path, args.seed, env)
    start = add_months(DATA_END, -12 * args.years)
    end = DATA_END - timedelta(days=1)
    bench_cases = cases(start, end, segment)
    # The dashboard's default range: the last 12 months up to the data's end ("today").
    views = dashboard.views(add_months(DATA_END, -12), end, customer="1")
    # Every request computed: the result cache would answer the repeats of a case from memory
    # (bench/scale.py measures it); the rollups serve what they cover, as in production.
    uncached = {**env, "TIDEMILL_RESULT_CACHE_ENTRIES": "0"}
    figures += measure_server(uncached, bench_cases, views, args.warmup, args.runs)
    figures += dashboard_figures(admin_url, f"{args.database}_demo", runs=5)
    from bench.stripe import stripe_figures  # it builds on this module

    figures += stripe_figures(admin_url, args.database, args.customers)
    if args.usage_events:
        from bench.usage import usage_figures  # it builds on this module

        figures += usage_figures(admin_url, args.usage_events, args.runs, console)
    return figures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    if not console.is_terminal:
        console.width = 100  # rich's 80 columns fold the table in logs and CI output
    console.print(describe())
    try:
        figures = run(args, console)
    except BenchFailed as error:
        console.print(f"[red]benchmark failed:[/red] {error}")
        return 2
    title = f"{args.customers:,} customers, {args.years} years, {args.runs} runs per query"
    console.print(table(figures, title))
    console.print(describe())
    return 1 if args.strict and not all(figure.met for figure in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
