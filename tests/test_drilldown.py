"""What a dashboard drills into: the movements of some kinds in a period with their customers,
a customer's MRR series, and the days the data covers."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.metrics.churn import Cursor
from app.metrics.service import MetricsEngine
from tests.conftest import execute, execute_errors, import_text
from tests.test_movements import COMPANY

MOVEMENTS = """query($kinds: [String!], $first: Int, $after: String) {
  movements(start: "2024-03-01", end: "2024-03-31", kinds: $kinds, first: $first, after: $after) {
    totalCount totalAmount pageInfo { endCursor hasNextPage }
    events { externalId day kind amount mrrBefore mrrAfter plans } } }"""
MRR_SERIES = """query($search: String!, $start: Date!, $interval: Interval!) {
  customers(search: $search) { edges { node { externalId
    mrrSeries(start: $start, end: "2024-04-30", interval: $interval) { date endDate mrr } } } } }"""


@pytest.fixture
async def company(engine: AsyncEngine) -> None:
    await import_text(engine, COMPANY)


async def movements(metrics: MetricsEngine, **variables: Any) -> dict[str, Any]:
    variables = {k: v for k, v in variables.items() if v is not None}
    page: dict[str, Any] = (await execute(metrics, MOVEMENTS, variables))["movements"]
    return page


@pytest.mark.usefixtures("company")
async def test_the_movements_behind_a_bar(metrics: MetricsEngine) -> None:
    growth = await movements(metrics, kinds=["new", "expansion"])
    # March: A expands 10000 -> 15000 and E joins at 1000, both on Mar 1 (the series' new
    # 1000 + expansion 5000).
    assert (growth["totalCount"], growth["totalAmount"]) == (2, 6000)
    assert [
        (
            e["externalId"],
            e["day"],
            e["kind"],
            e["amount"],
            e["mrrBefore"],
            e["mrrAfter"],
            e["plans"],
        )
        for e in growth["events"]
    ] == [
        ("A", "2024-03-01", "expansion", 5000, 10000, 15000, ["Basic"]),
        ("E", "2024-03-01", "new", 1000, 0, 1000, ["Basic"]),
    ]


@pytest.mark.usefixtures("company")
async def test_every_kind_adds_up_to_net_new_mrr_across_pages(metrics: MetricsEngine) -> None:
    first = await movements(metrics, first=3)
    assert (first["totalCount"], first["totalAmount"]) == (4, -3000)  # March's netNewMrr
    assert first["pageInfo"]["hasNextPage"] is True
    rest = await movements(metrics, first=3, after=first["pageInfo"]["endCursor"])
    assert rest["pageInfo"]["hasNextPage"] is False
    assert [(e["externalId"], e["kind"]) for e in first["events"] + rest["events"]] == [
        ("A", "expansion"),
        ("E", "new"),
        ("E", "churn"),
        ("C", "contraction"),
    ]


@pytest.mark.usefixtures("company")
async def test_unknown_kinds_are_named(metrics: MetricsEngine) -> None:
    [error] = await execute_errors(metrics, MOVEMENTS, {"kinds": ["upgrade"]})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "kinds upgrade not accepted" in error["message"]
    assert "new, expansion, contraction, churn, reactivation" in error["message"]


@pytest.mark.usefixtures("company")
async def test_a_customers_mrr_series(metrics: MetricsEngine) -> None:
    data = await execute(
        metrics, MRR_SERIES, {"search": "B", "start": "2024-01-10", "interval": "MONTH"}
    )
    [edge] = data["customers"]["edges"]
    # B: 5000 from Jan 15, churned Feb 10, back at 4000 on Apr 1.
    assert [(p["date"], p["endDate"], p["mrr"]) for p in edge["node"]["mrrSeries"]] == [
        ("2024-01-10", "2024-01-31", 5000),
        ("2024-02-01", "2024-02-29", 0),
        ("2024-03-01", "2024-03-31", 0),
        ("2024-04-01", "2024-04-30", 4000),
    ]


@pytest.mark.usefixtures("company")
async def test_a_page_of_mrr_series(metrics: MetricsEngine) -> None:
    data = await execute(
        metrics, MRR_SERIES, {"search": "", "start": "2024-02-01", "interval": "QUARTER"}
    )
    series = {
        e["node"]["externalId"]: [p["mrr"] for p in e["node"]["mrrSeries"]]
        for e in data["customers"]["edges"]
    }
    # Q1 ends Mar 31, Q2 is clipped to Apr 30.
    assert series == {
        "A": [15000, 15000],
        "B": [0, 4000],
        "C": [12000, 12000],
        "D": [3000, 3000],
        "E": [0, 0],
    }


@pytest.mark.usefixtures("company")
async def test_a_backwards_range_is_refused(metrics: MetricsEngine) -> None:
    query = """{ customers { edges { node {
      mrrSeries(start: "2024-05-01", end: "2024-04-30") { mrr } } } } }"""
    errors = await execute_errors(metrics, query)
    assert {e["extensions"]["code"] for e in errors} == {"BAD_USER_INPUT"}
    assert "start 2024-05-01 is after end 2024-04-30" in errors[0]["message"]


@pytest.mark.usefixtures("company")
async def test_the_days_the_data_covers(metrics: MetricsEngine) -> None:
    data = await execute(metrics, "{ dataRange { first last today } }")
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    assert data["dataRange"] == {"first": "2024-01-01", "last": "2024-04-01", "today": today}
    base = await execute(metrics, "{ dataRange { baseCurrency } }")
    assert base["dataRange"]["baseCurrency"] == "USD"


async def test_no_data_has_no_range(metrics: MetricsEngine) -> None:
    data = await execute(metrics, "{ dataRange { first last } }")
    assert data["dataRange"] == {"first": None, "last": None}


# M moves from a monthly to a yearly plan of the same MRR on Mar 1; R's monthly plan ends on
# Feb 1 and a new one starts on Apr 10; K's has run unchanged since 2023.
BY_INTERVAL = """subscription_id,customer_id,start_date,end_date,amount,interval
m1,M,2024-01-01,2024-03-01,100,month
y1,M,2024-03-01,,1200,year
r1,R,2024-01-01,2024-02-01,50,month
r2,R,2024-04-10,,50,month
k1,K,2023-06-01,,70,month
"""
SPRING = """query($spec: QuerySpecInput) {
  movements(start: "2024-03-01", end: "2024-04-30", spec: $spec) {
    totalCount totalAmount events { externalId day kind amount mrrBefore mrrAfter } } }"""


async def test_movements_of_one_billing_frequency_read_each_customers_history(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    # Per-frequency movements are derived from the ledger, for the customers whose ledger
    # changed in the range only, each from its whole history: R's April return is a
    # reactivation (it had MRR in January), not new; K changed before the range and has none.
    await import_text(engine, BY_INTERVAL)
    monthly = {"filters": [{"field": "plan_interval", "values": ["month"]}]}
    page = (await execute(metrics, SPRING, {"spec": monthly}))["movements"]
    assert [tuple(e.values()) for e in page["events"]] == [
        ("M", "2024-03-01", "churn", -10000, 10000, 0),
        ("R", "2024-04-10", "reactivation", 5000, 0, 5000),
    ]
    assert (page["totalCount"], page["totalAmount"]) == (2, -5000)
    everything = (await execute(metrics, SPRING))["movements"]  # M's MRR did not change
    assert [(e["externalId"], e["kind"]) for e in everything["events"]] == [("R", "reactivation")]


# On monthly plans from Mar 1 to Apr 30: M and S churn on Mar 1, U is new on Mar 5, T churns
# on Mar 20, R comes back on Apr 10, V churns on Apr 30.
SPRING_DAYS = (
    BY_INTERVAL
    + """s1,S,2024-01-01,2024-03-01,30,month
t1,T,2024-02-01,2024-03-20,40,month
u1,U,2024-03-05,,20,month
v1,V,2024-01-01,2024-04-30,60,month
"""
)
SPRING_PAGE = """query($spec: QuerySpecInput, $first: Int, $after: String) {
  movements(start: "2024-03-01", end: "2024-04-30", spec: $spec, first: $first, after: $after) {
    totalCount pageInfo { endCursor hasNextPage } events { externalId day kind } } }"""


async def test_pages_of_derived_movements_end_where_the_day_rows_say(engine: AsyncEngine) -> None:
    # Rolled up, a page of movements derived from the ledger is derived up to the first day by
    # which the day rows count more events than the page shows; paged through at any size,
    # it lists what the movements derived over the whole range list, one page at a time.
    await import_text(engine, SPRING_DAYS)
    monthly = {"filters": [{"field": "plan_interval", "values": ["month"]}]}
    expected = [
        ("M", "2024-03-01", "churn"),
        ("S", "2024-03-01", "churn"),
        ("U", "2024-03-05", "new"),
        ("T", "2024-03-20", "churn"),
        ("R", "2024-04-10", "reactivation"),
        ("V", "2024-04-30", "churn"),
    ]
    for rollups in (True, False):
        metrics = MetricsEngine(engine, rollups=rollups)
        for first in (1, 2, 3, 4, 6):
            listed, after, pages = [], None, 0
            while True:
                variables = {"spec": monthly, "first": first, "after": after}
                page = (await execute(metrics, SPRING_PAGE, variables))["movements"]
                assert page["totalCount"] == len(expected)
                listed += [tuple(e.values()) for e in page["events"]]
                pages += 1
                if not page["pageInfo"]["hasNextPage"]:
                    break
                assert len(page["events"]) == first
                after = page["pageInfo"]["endCursor"]
            assert listed == expected, (rollups, first)
            assert pages == -(-len(expected) // first), (rollups, first)


async def test_a_cursor_before_the_range_pages_from_its_start(engine: AsyncEngine) -> None:
    # a cursor is opaque but can name any day: one from January (R churns and T starts on
    # Feb 1, outside the range) still pages from Mar 1, where the range starts
    await import_text(engine, SPRING_DAYS)
    monthly = {"filters": [{"field": "plan_interval", "values": ["month"]}]}
    january = Cursor(datetime.date(2024, 1, 15), 0).encode()
    for rollups in (True, False):
        metrics = MetricsEngine(engine, rollups=rollups)
        variables = {"spec": monthly, "first": 1, "after": january}
        page = (await execute(metrics, SPRING_PAGE, variables))["movements"]
        assert [tuple(e.values()) for e in page["events"]] == [("M", "2024-03-01", "churn")]
        assert page["pageInfo"]["hasNextPage"] is True


# On monthly plans on Mar 1: M churns (its yearly plan starts that day), N is new (its yearly
# plan ends that day), C contracts 100 -> 30 and D expands 30 -> 100 (one plan ends as another
# starts); R comes back on Apr 10.
SIGNED_DAYS = (
    BY_INTERVAL
    + """n1,N,2023-03-01,2024-03-01,1200,year
n2,N,2024-03-01,,100,month
c1,C,2024-01-01,2024-03-01,100,month
c2,C,2024-03-01,,30,month
d1,D,2024-01-01,2024-03-01,30,month
d2,D,2024-03-01,,100,month
"""
)
SIGNED_PAGE = """query($spec: QuerySpecInput, $kinds: [String!], $first: Int, $after: String) {
  movements(start: "2024-03-01", end: "2024-04-30", spec: $spec, kinds: $kinds, first: $first,
            after: $after) {
    totalCount pageInfo { endCursor hasNextPage } events { externalId day kind amount } } }"""


async def test_pages_of_derived_movements_of_one_sign(engine: AsyncEngine) -> None:
    # A page of only falling (churn, contraction) or only rising movements derives them for
    # the customers with a ledger row of that sign in the scope on one of its days; a day's
    # movement nets its rows, so each customer with one is among them, whatever else it had
    # that day in or out of the scope (M's yearly plan rises as its monthly one falls, N's
    # falls as its monthly one rises, C's and D's monthly plans move both ways).
    await import_text(engine, SIGNED_DAYS)
    monthly = {"filters": [{"field": "plan_interval", "values": ["month"]}]}
    every = [  # by day, then customer (an import numbers new customers in their ids' order)
        ("C", "2024-03-01", "contraction", -7000),
        ("D", "2024-03-01", "expansion", 7000),
        ("M", "2024-03-01", "churn", -10000),
        ("N", "2024-03-01", "new", 10000),
        ("R", "2024-04-10", "reactivation", 5000),
    ]
    kind_sets = (
        ["churn"],
        ["contraction"],
        ["churn", "contraction"],
        ["new"],
        ["expansion"],
        ["new", "expansion", "reactivation"],
        ["churn", "new"],
    )
    for rollups in (True, False):
        metrics = MetricsEngine(engine, rollups=rollups)
        for kinds in kind_sets:
            expected = [event for event in every if event[2] in kinds]
            for first in (1, 2, 5):
                listed, after = [], None
                while True:
                    variables = {"spec": monthly, "kinds": kinds, "first": first, "after": after}
                    page = (await execute(metrics, SIGNED_PAGE, variables))["movements"]
                    assert page["totalCount"] == len(expected), (rollups, kinds)
                    listed += [tuple(e.values()) for e in page["events"]]
                    if not page["pageInfo"]["hasNextPage"]:
                        break
                    after = page["pageInfo"]["endCursor"]
                assert listed == expected, (rollups, kinds, first)
