"""Benchmark cases of the dashboard (issue 11).

- Each view's request set, as the browser sends it: the persisted documents of queries/ by
  hash, with the variables the view uses, all at once; the wall time until the last answer is
  held against 300 ms (on the bench company).
- The first load of the overview on the demo company in headless Chromium (Debian's): from
  navigation start to a drawn MRR chart, median of cold loads (a new browser context each),
  held against 1.5 s.
- The dashboard's bundle: what `/` loads (HTML's scripts, preloads and stylesheets), gzipped,
  held against 400 KB.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx

from app.metrics.periods import add_months
from app.security.manifest import manifest
from schema.web import STATIC_DIR

KB = 1024
VIEW_TARGET_MS = 300


@dataclass(frozen=True)
class View:
    """One dashboard view: the persisted queries it sends together, with their variables."""

    name: str
    requests: tuple[tuple[str, Mapping[str, Any]], ...]


def views(start: date, end: date, customer: str) -> list[View]:
    window = {"start": start.isoformat(), "end": end.isoformat(), "interval": "MONTH"}
    spec: dict[str, Any] = {"filters": [], "segment": None, "currency": None}
    plain = {**spec, "compareSegments": [], "dimensions": []}
    by_plan = {**plain, "dimensions": ["plan"]}
    # per-frequency movements are derived from the ledger (no stored ones)
    monthly_only = {**plain, "filters": [{"field": "plan_interval", "values": ["month"]}]}
    overview = ("DashboardOverview", {**window, "spec": plain, "period": None})
    meta: tuple[str, Mapping[str, Any]] = ("DashboardMeta", {})
    last_month = {"start": end.replace(day=1).isoformat(), "end": end.isoformat()}
    return [
        View("overview", (meta, overview)),
        View(
            "overview by plan (top 8 + other)",
            (meta, overview, ("DashboardBreakdown", {**window, "spec": by_plan, "top": 8})),
        ),
        View("cohorts", (meta, ("DashboardCohorts", {**window, "spec": plain}))),
        View("trials", (meta, ("DashboardTrials", {**window, "spec": plain}))),
        View("churn", (meta, ("DashboardChurn", {**window, "spec": plain, "first": 25}))),
        View(
            "drill-down: churn of a month",
            (meta, ("DashboardMovements", {**last_month, "kinds": ["churn"], "spec": plain})),
        ),
        View(
            "churn, monthly plans only",
            (meta, ("DashboardChurn", {**window, "spec": monthly_only, "first": 25})),
        ),
        View(
            "drill-down: churn of a month, monthly plans only",
            (
                meta,
                (
                    "DashboardMovements",
                    {**last_month, "kinds": ["churn"], "spec": monthly_only},
                ),
            ),
        ),
        View("customer page", (meta, ("DashboardCustomer", {**window, "id": customer}))),
    ]


async def _send(client: httpx.AsyncClient, sha256: str, variables: Mapping[str, Any]) -> Any:
    body = {
        "variables": variables,
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256}},
    }
    response = await client.post("/graphql", json=body)
    data = response.json()
    if response.status_code != 200 or data.get("errors"):
        raise RuntimeError(f"HTTP {response.status_code}: {data.get('errors')}")
    return data["data"]


async def usage_views(base_url: str, customer: str) -> list[View]:
    """The usage view and the customer page with its usage section, over the usage metrics
    the server has (the demo's): the last 12 months up to its today. The browser sends
    DashboardCustomerUsage (and DashboardUsage when the URL names no metric) once
    DashboardUsageMetrics has answered; these views send everything together, so they time
    the server, not that round trip."""
    hashes = manifest()
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        meta = await _send(client, hashes["DashboardMeta"], {})
        metrics = (await _send(client, hashes["DashboardUsageMetrics"], {}))["usageMetrics"]
    if not metrics:
        raise RuntimeError("no usage metrics are defined: the usage views need the demo's")
    today = date.fromisoformat(meta["dataRange"]["today"])
    month = today.replace(day=1)  # the "last 12 months" preset: this month and 11 before
    start = add_months(month, -11)
    timeframe = {"from": f"{month}T00:00:00Z", "to": f"{add_months(month, 1)}T00:00:00Z"}
    spec: dict[str, Any] = {"filters": [], "segment": None, "currency": None}
    plain = {**spec, "compareSegments": [], "dimensions": []}
    by_country = {**plain, "dimensions": ["customer_country"]}
    window = {"start": start.isoformat(), "end": today.isoformat(), "interval": "MONTH"}
    composite = next((m for m in metrics if m["queryType"] == "COMPOSITE"), metrics[-1])
    listing: tuple[str, Mapping[str, Any]] = ("DashboardUsageMetrics", {})
    # the customer page's one request for up to 8 metrics (web/src/usage.ts slotVariables)
    slots = {
        f"{key}{i}": v
        for i, m in enumerate(metrics[:8])
        for key, v in (("m", m["id"]), ("use", True))
    }
    shared: tuple[tuple[str, Mapping[str, Any]], ...] = (("DashboardMeta", {}), listing)
    return [
        View(
            f"usage (demo): {metrics[0]['name']} ({metrics[0]['queryType']}) + top 10",
            (*shared, ("DashboardUsage", {**window, "id": metrics[0]["id"], "spec": plain})),
        ),
        View(
            f"usage (demo): {composite['name']} ({composite['queryType']}) by country + top 10",
            (
                *shared,
                (
                    "DashboardUsage",
                    {**window, "id": composite["id"], "spec": by_country, "broken": True},
                ),
            ),
        ),
        View(
            f"customer page with {len(metrics[:8])} usage values (demo)",
            (
                *shared,
                ("DashboardCustomer", {**window, "id": customer}),
                ("DashboardCustomerUsage", {"id": customer, "timeframe": timeframe, **slots}),
            ),
        ),
    ]


async def _view_once(client: httpx.AsyncClient, view: View, hashes: Mapping[str, str]) -> float:
    began = time.perf_counter()
    await asyncio.gather(*(_send(client, hashes[name], v) for name, v in view.requests))
    return (time.perf_counter() - began) * 1000


async def time_view(base_url: str, view: View, warmup: int, runs: int) -> list[float]:
    """Milliseconds until the last of the view's requests is answered, per run."""
    hashes = manifest()
    async with httpx.AsyncClient(base_url=base_url, timeout=120) as client:
        for _ in range(warmup):
            await _view_once(client, view, hashes)
        return [await _view_once(client, view, hashes) for _ in range(runs)]


def dashboard_files() -> set[str]:
    """Every file the dashboard loads, lazily loaded chunks too (Vite's build manifest)."""
    chunks = json.loads((STATIC_DIR / ".vite" / "manifest.json").read_text(encoding="utf-8"))
    files: set[str] = set()
    pending = ["index.html"]
    while pending:
        chunk = chunks[pending.pop()]
        files.add(chunk["file"])
        files.update(chunk.get("css", ()))
        pending += [*chunk.get("imports", ()), *chunk.get("dynamicImports", ())]
    return files - {"index.html"}


def bundle_gzip_kb() -> tuple[float, int]:
    """The gzipped size of everything the dashboard loads, and how many files that is."""
    files = dashboard_files()
    size = sum(len(gzip.compress((STATIC_DIR / name).read_bytes(), 9)) for name in files)
    return size / KB, len(files)


async def first_loads(base_url: str, runs: int) -> list[float]:
    """Milliseconds from navigation start to a drawn MRR chart, one cold context per run."""
    from tests.browser import chromium  # Debian's chromium through Playwright (dev extra)

    samples = []
    async with chromium() as browser:
        for _ in range(runs + 1):  # the first warms the server's caches, not the browser's
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            await page.goto(f"{base_url}/")
            await page.wait_for_selector('[data-chart="mrr"][data-rendered="true"]', timeout=30_000)
            samples.append(float(await page.evaluate("performance.now()")))
            await context.close()
    return samples[1:]


def median(samples: list[float]) -> float:
    return statistics.median(samples)
