"""Company sizes side by side, one command: `python -m bench.sizes --customers 10000 100000`
(`make bench` at 10k and 100k; `make bench-1m` adds 1,000,000 customers).

For each size, in a database of its own (`--prefix` + `_10k`, ...; `--reuse` keeps one that
already imported that company):
1. the benchmark company (bench/run.py's generator) imported by the real CLI in a child
   process, in chunks as a user's import runs: rows/s and the child's peak RSS; then five
   attributes per customer (the CLI again, once per database: the customers page shows them);
2. the real server (rollups on, result cache off, so every request is computed) answers the
   common views over HTTP: warm-ups, then the median of `--runs`;
3. GraphQL over HTTP against its own bare SQL, and 10 concurrent clients' throughput against
   `--workers` server processes (bench/scale.py's measures).

One table prints every measure with a column per size; the targets are those of the largest
size the issue names (1,000,000 customers).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from datetime import timedelta

import asyncpg
import httpx
from rich import box
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url

from app.demo import add_months
from bench import scale
from bench import segments as bench_segments
from bench.machine import describe
from bench.plans import label, prepared
from bench.run import (
    BREAKDOWN_QUERY,
    COHORTS_QUERY,
    DATA_DIR,
    DATA_END,
    DEFAULT_ADMIN_URL,
    FULL_SERIES_QUERY,
    SERIES_QUERY,
    SNAPSHOT_QUERY,
    BenchFailed,
    Case,
    Figure,
    load_attributes,
    measure,
    server,
    write_data,
)


def size_cases() -> list[Case]:
    """The common views, with the issue's targets at 1,000,000 customers."""
    start = add_months(DATA_END, -60)
    end = DATA_END - timedelta(days=1)
    window = {"start": start.isoformat(), "end": end.isoformat(), "interval": "MONTH"}
    return [
        Case("monthly series, 5 years, foundation fields", SERIES_QUERY, window, 150),
        Case("monthly series, 5 years, every field", FULL_SERIES_QUERY, window, 300),
        Case("snapshot, every field", SNAPSHOT_QUERY, {"at": end.isoformat()}, 100),
        *cut_cases(),
        Case(
            "breakdown by plan, 5 years",
            BREAKDOWN_QUERY,
            {**window, "spec": {"dimensions": ["plan"]}},
            400,
        ),
        Case(
            "cohorts, 5 years",
            COHORTS_QUERY,
            {"start": start.isoformat(), "end": end.isoformat()},
            1000,
        ),
        Case("customers page of 100 by MRR", bench_segments.PAGE_QUERY, {"first": 100}, 80),
        # what a dashboard user has typed so far: at 1M about 700 of 62,500 Tyrell customers
        Case("customers search, a name's first letters", SEARCH_QUERY, {"search": "tyrell 12"}, 80),
    ]


# the customers page's search box (app.customers.search_conditions): the first 100 matches by
# name, with their count; our own target, the customers page's
SEARCH_QUERY = """
query BenchSearch($search: String!) {
  customers(search: $search, first: 100) {
    totalCount
    edges { cursor node { id externalId name email mrr status } }
  }
}
"""


def cut_cases() -> list[Case]:
    """Ranges that cut a period (their first and last months read the day rows and their own
    movements): a 5-year monthly series from mid-month to mid-month, and the last 30 days
    (one monthly point from the 2nd: a KPI card's custom range)."""
    mid_month = scale.cut_months()
    last = DATA_END - timedelta(days=1)
    recent = {
        "start": (last - timedelta(days=29)).isoformat(),
        "end": last.isoformat(),
        "interval": "MONTH",
    }
    return [
        Case(
            "monthly series, 5 years cut mid-month, every field", FULL_SERIES_QUERY, mid_month, 300
        ),
        Case("last 30 days (cuts a month), every field", FULL_SERIES_QUERY, recent, 100),
    ]


def query_figures(url: str, warmup: int, runs: int) -> list[Figure]:
    env = {**os.environ, "TIDEMILL_DATABASE_URL": url, "TIDEMILL_RESULT_CACHE_ENTRIES": "0"}
    with server(env) as (base_url, _), httpx.Client(base_url=base_url, timeout=600) as client:
        return [measure(client, case, warmup, runs) for case in size_cases()]


def size_figures(url: str, imported: list[Figure], args: argparse.Namespace) -> list[Figure]:
    figures = [*imported, *query_figures(url, args.warmup, args.runs)]
    figures += scale.overhead_figures(url, args.runs)
    throughput = scale.throughput_figures(url, args.workers, args.seconds)
    # without the result cache is bench/scale.py's comparison; the targets are for the cache
    return figures + [figure for figure in throughput if "no result cache" not in figure.name]


async def _has_attributes(url: str) -> bool:
    connection = await asyncpg.connect(url)
    try:
        return bool(await connection.fetchval("SELECT EXISTS (SELECT FROM customer_attribute)"))
    finally:
        await connection.close()


def with_attributes(url: str, customers: int, args: argparse.Namespace) -> None:
    """Five attributes for every customer (the customers page shows them), imported by the
    CLI once per database (not timed here: bench/run.py times the attribute import)."""
    if asyncio.run(_has_attributes(url)):
        return
    periods = DATA_DIR / f"periods-{customers}c-{args.years}y-seed{args.seed}.csv"
    if not periods.exists():
        periods, _ = write_data(customers, args.years, args.seed)
    env = {**os.environ, "TIDEMILL_DATABASE_URL": url}
    load_attributes(url, periods, args.seed, env)


def side_by_side(sizes: list[int], figures: dict[int, list[Figure]]) -> Table:
    table = Table(title="Tidemill by company size", box=box.SIMPLE_HEAD)
    table.add_column("measure")
    for customers in sizes:
        table.add_column(label(customers), justify="right")
    table.add_column("target", justify="right")
    largest = figures[sizes[-1]]
    for index, figure in enumerate(largest):
        cells = []
        for customers in sizes:
            at_size = figures[customers][index]
            if math.isnan(at_size.value):
                cells.append("(reused)")
                continue
            mark = "" if at_size.met else " ✗"
            cells.append(f"{at_size.value:,.1f} {at_size.unit}{mark}")
        sign = "≥" if figure.at_least else "≤"
        target = "—"
        if figure.target is not None:
            places = 0 if figure.target >= 10 else 1
            target = f"{sign} {figure.target:,.{places}f} {figure.unit}"
        table.add_row(figure.name.removesuffix(" median"), *cells, target)
    return table


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.sizes", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--customers", type=int, nargs="+", default=[10_000, 100_000], help="sizes (10000 100000)"
    )
    parser.add_argument("--years", type=int, default=5, help="years of history (5)")
    parser.add_argument("--seed", type=int, default=7, help="random seed of the company (7)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per query (7)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per query (2)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="server processes")
    parser.add_argument("--seconds", type=float, default=8, help="seconds of 10 clients' load (8)")
    parser.add_argument(
        "--prefix", default="tidemill_bench_sizes", help="database name prefix (+ _10k, ...)"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="keep a database already loaded at that size"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    if not console.is_terminal:
        console.width = 150
    admin_url = os.environ.get("TIDEMILL_BENCH_DATABASE_URL") or DEFAULT_ADMIN_URL
    figures: dict[int, list[Figure]] = {}
    console.print(describe())
    try:
        for customers in args.customers:
            database = f"{args.prefix}_{label(customers)}"
            url, imported = prepared(admin_url, database, customers, args, lift_timeout=False)
            with_attributes(url, customers, args)
            console.print(f"measuring {make_url(url).database} ...")
            figures[customers] = size_figures(url, imported, args)
            console.print(side_by_side([customers], {customers: figures[customers]}))
    except BenchFailed as error:
        console.print(f"[red]benchmark failed:[/red] {error}")
        return 2
    console.print(side_by_side(args.customers, figures))
    console.print(describe())
    for customers in args.customers:  # what each ratio and import figure is made of
        for figure in figures[customers]:
            if figure.detail and figure.unit in ("x", "rows/s") and not math.isnan(figure.value):
                console.print(f"{label(customers)}, {figure.name}: {figure.detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
