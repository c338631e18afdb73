"""Benchmark setup and cases for customers, attributes and segments (issue 4).

Five attributes (one of each type, two strings) for every bench customer, imported by the real
CLI (`tidemill import attributes`), and a saved three-condition segment: the cases time a page
of 100 customers with their facts and attributes, and the series restricted to the segment
(held against 1.5 x the unsegmented series).
"""

from __future__ import annotations

import csv
import random
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path

from app import attributes, segments
from app.attributes import AttributeDefinition, AttributeType
from app.config import load_settings
from app.db import create_engine
from app.metrics.service import MetricsEngine

INDUSTRIES = ("saas", "fintech", "retail", "health", "media", "education")
TIERS = ("self-serve", "sales-assisted", "enterprise")
DEFINITIONS = (
    AttributeDefinition("industry", "Industry", AttributeType.STRING, "csv", "Sector"),
    AttributeDefinition("tier", "Sales tier", AttributeType.STRING, "csv", ""),
    AttributeDefinition("seats", "Seats", AttributeType.NUMBER, "csv", "Licensed seats"),
    AttributeDefinition("enterprise", "Enterprise", AttributeType.BOOLEAN, "csv", ""),
    AttributeDefinition("renewal", "Renewal date", AttributeType.DATE, "csv", ""),
)
# Three conditions on three kinds of field: two attributes and a customer-level dimension.
SEGMENT = {
    "and": [
        {"field": "attr.industry", "op": "IN", "values": ["saas", "fintech", "health"]},
        {"field": "attr.seats", "op": "GTE", "values": ["10"]},
        {"field": "customer_country", "op": "NEQ", "values": ["US"]},
    ]
}
PAGE_QUERY = """
query BenchCustomers($first: Int!) {
  customers(first: $first, sort: MRR) {
    totalCount
    edges { cursor node {
      id externalId name email country customerSince
      mrr arr status churnedAt churnedMrr
      attributes { key type value }
    } }
  }
}
"""


def write_attributes(periods: Path, seed: int) -> tuple[Path, int]:
    """One row of five values per customer of the periods file; its path and row count."""
    customers: dict[str, None] = {}
    with periods.open(newline="") as handle:
        for row in csv.DictReader(handle):
            customers.setdefault(row["customer_id"])
    rng = random.Random(seed)
    path = periods.with_name(periods.stem.replace("periods", "attributes") + ".csv")
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["customer", *(d.key for d in DEFINITIONS)])
        for customer in customers:
            renewal = date(2026, 1, 1) + timedelta(days=rng.randrange(365))
            out.writerow(
                [
                    customer,
                    rng.choice(INDUSTRIES),
                    rng.choice(TIERS),
                    rng.choice((1, 3, 5, 10, 25, 50, 120)),
                    rng.random() < 0.2,
                    renewal.isoformat(),
                ]
            )
    return path, len(customers)


async def define(url: str) -> None:
    """The attribute definitions (through the service the createAttribute mutation uses)."""
    engine = create_engine(load_settings(database_url=url))
    try:
        for definition in DEFINITIONS:
            await attributes.create(engine, definition)
    finally:
        await engine.dispose()


def import_attributes(path: Path, env: Mapping[str, str]) -> float:
    """`tidemill import attributes` in a child process; its seconds."""
    command = [sys.executable, "-m", "app.cli", "import", "attributes", str(path)]
    began = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"attribute import exited with {done.returncode}: {done.stdout}")
    return time.perf_counter() - began


async def save_segment(url: str) -> int:
    engine = create_engine(load_settings(database_url=url))
    try:
        cube = await MetricsEngine(engine).current_cube()
        saved = await segments.create(engine, cube, "Bench: non-US tech, 10+ seats", "", SEGMENT)
    finally:
        await engine.dispose()
    return saved.id
