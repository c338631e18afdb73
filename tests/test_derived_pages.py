"""Pages of movements derived from the ledger (a filter on `plan_interval`, on `status`, or on
two dimensions, which no stored movements keep) against an oracle: each customer's MRR in the
filter's scope day by day, summed from its ledger rows in Python, and every change of it
classified by METRICS.md 3 (the first one `new`; from zero `reactivation`; to zero `churn`;
else `expansion` or `contraction`). Paged through at several sizes, for every sign of kinds,
with the rollups' day rows and without, on random companies and random ranges."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.metrics.service import MetricsEngine
from app.tables import customer, mrr_change, plan
from tests.conftest import execute, import_text
from tests.test_rollups import FIRST, LAST, company

PAGE = """query($start: Date!, $end: Date!, $kinds: [String!], $first: Int, $after: String,
               $spec: QuerySpecInput) {
  movements(start: $start, end: $end, kinds: $kinds, first: $first, after: $after,
            spec: $spec) {
    totalCount totalAmount pageInfo { endCursor hasNextPage }
    events { externalId day kind amount mrrBefore mrrAfter } } }"""
KIND_SETS = (
    ["churn"],
    ["contraction"],
    ["churn", "contraction"],
    ["new"],
    ["expansion", "reactivation"],
    ["new", "expansion", "contraction", "churn", "reactivation"],
    ["churn", "reactivation"],
)
Event = tuple[
    int, str, str, str, int, int, int
]  # id, external id, day, kind, amount, before, after
# a filter (a spec's) and the ledger rows in its scope
SCOPES: tuple[tuple[list[dict[str, Any]], sa.ColumnElement[bool]], ...] = (
    ([{"field": "plan_interval", "values": ["month"]}], mrr_change.c.plan_interval == "month"),
    ([{"field": "status", "values": ["active"]}], mrr_change.c.status == "active"),
    (
        [
            {"field": "plan", "op": "NEQ", "values": ["Pro"]},
            {"field": "plan_interval", "values": ["year"]},
        ],
        sa.and_(plan.c.name != "Pro", mrr_change.c.plan_interval == "year"),
    ),
)


async def oracle(engine: AsyncEngine, scope: sa.ColumnElement[bool]) -> list[Event]:
    """Every movement in `scope` of every customer, by day and customer id."""
    query = (
        sa.select(
            mrr_change.c.customer_id,
            customer.c.external_id,
            mrr_change.c.day,
            sa.func.sum(mrr_change.c.delta),
        )
        .join(customer, customer.c.id == mrr_change.c.customer_id)
        .join(plan, plan.c.id == mrr_change.c.plan_id)
        .where(scope)
        .group_by(mrr_change.c.customer_id, customer.c.external_id, mrr_change.c.day)
        .order_by(mrr_change.c.customer_id, mrr_change.c.day)
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    mrr: dict[int, int] = defaultdict(int)
    moved: set[int] = set()
    events: list[Event] = []
    for customer_id, external_id, day, delta in rows:
        before = mrr[customer_id]
        after = before + int(delta)
        mrr[customer_id] = after
        if after == before:
            continue
        if customer_id not in moved:
            kind = "new"
        elif before == 0:
            kind = "reactivation"
        elif after == 0:
            kind = "churn"
        else:
            kind = "expansion" if after > before else "contraction"
        moved.add(customer_id)
        events.append(
            (customer_id, external_id, day.isoformat(), kind, after - before, before, after)
        )
    return sorted(events, key=lambda event: (event[2], event[0]))


async def walk(metrics: MetricsEngine, variables: dict[str, Any]) -> tuple[list[Any], Any, Any]:
    """Every page's events in turn, and the totals the first page gave."""
    listed: list[Any] = []
    after, totals = None, None
    while True:
        page = (await execute(metrics, PAGE, {**variables, "after": after}))["movements"]
        totals = totals or (page["totalCount"], page["totalAmount"])
        assert (page["totalCount"], page["totalAmount"]) == totals
        listed += [tuple(event.values()) for event in page["events"]]
        if not page["pageInfo"]["hasNextPage"]:
            return listed, totals[0], totals[1]
        assert len(page["events"]) == variables["first"]
        after = page["pageInfo"]["endCursor"]


@pytest.mark.parametrize("seed", [3, 8])
async def test_derived_pages_list_what_the_ledger_says(engine: AsyncEngine, seed: int) -> None:
    await import_text(engine, company(seed, 60))
    rng = random.Random(seed)
    span = (LAST - FIRST).days
    engines = (MetricsEngine(engine, rollups=True), MetricsEngine(engine, rollups=False))
    for filters, scope in SCOPES:
        every = await oracle(engine, scope)
        # the random company moves both ways in every scope, of most kinds
        assert len({event[3] for event in every}) >= 4, filters
        ranges = [(FIRST, LAST)]
        for _ in range(3):
            start = FIRST + timedelta(days=rng.randrange(span))
            ranges.append((start, min(LAST, start + timedelta(days=rng.choice((0, 6, 40, 200))))))
        for start, end in ranges:
            for kinds in KIND_SETS:
                expected = [
                    event[1:]
                    for event in every
                    if str(start) <= event[2] <= str(end) and event[3] in kinds
                ]
                variables = {
                    "start": str(start),
                    "end": str(end),
                    "kinds": kinds,
                    "first": rng.choice((2, 5, 25)),
                    "spec": {"filters": filters},
                }
                for metrics in engines:
                    listed, count, amount = await walk(metrics, variables)
                    context = (filters, variables, metrics.rollups)
                    assert listed == expected, context
                    assert count == len(expected), context
                    assert amount == sum(event[3] for event in expected), context
