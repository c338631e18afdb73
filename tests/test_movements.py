"""Hand-computed fixtures for METRICS.md sections 2-4 (every number below is worked out by hand
in the comments)."""

from __future__ import annotations

import importlib
from datetime import date
from fractions import Fraction
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.metrics.mrr import whole_periods
from app.metrics.service import MetricsEngine
from app.metrics.spec import Interval, QuerySpec, SeriesRequest
from tests.conftest import execute, import_text

HEADER = "subscription_id,customer_id,start_date,end_date,monthly_amount,plan\n"

# A: new 100 on Jan 1, expansion to 150 on Mar 1.
# B: new 50 on Jan 15, churn Feb 10, reactivation at 40 on Apr 1 (new subscription).
# C: new 200 on Feb 1, contraction to 120 on Mar 15.
# D: 30 from Jan 1, swapped for another 30 subscription on Feb 1: nets out, no movement.
# E: joins Mar 1 and leaves Mar 2 (new +10, churn -10 inside March).
COMPANY = (
    HEADER
    + """\
a1,A,2024-01-01,2024-03-01,100,Basic
a1,A,2024-03-01,,150,Basic
b1,B,2024-01-15,2024-02-10,50,Basic
b2,B,2024-04-01,,40,Basic
c1,C,2024-02-01,2024-03-15,200,Pro
c1,C,2024-03-15,,120,Pro
d1,D,2024-01-01,2024-02-01,30,Basic
d2,D,2024-02-01,,30,Basic
e1,E,2024-03-01,2024-03-02,10,Basic
"""
)

ALL_FIELDS = """date endDate mrr arr customers arpa asp new expansion contraction churn reactivation
 netNewMrr customersDiff newCustomers expansionCustomers contractionCustomers churnCustomers
 reactivationCustomers churnedCustomers customerChurnRate mrrChurnRate netMrrChurnRate
 customerRetentionRate mrrRetentionRate nrr grr quickRatio"""


async def series(
    metrics: MetricsEngine,
    start: str,
    end: str,
    interval: str = "MONTH",
    spec: Any = None,
    fields: str = ALL_FIELDS,
) -> list[dict[str, Any]]:
    query = f"""query($spec: QuerySpecInput) {{
      series(start: "{start}", end: "{end}", interval: {interval}, spec: $spec) {{
        points {{ {fields} }} }} }}"""
    data = await execute(metrics, query, {"spec": spec})
    points: list[dict[str, Any]] = data["series"]["points"]
    return points


@pytest.fixture
async def company(engine: AsyncEngine) -> None:
    await import_text(engine, COMPANY)


# Each stored movement's `alone` bits (app.movements.ALONE_BITS: week 1, month 2, quarter 4,
# year 8): set where neither neighbouring movement day is in the same calendar period.
# A Jan 1 (next Mar 1) and Mar 1 (prev Jan 1): same quarter and year -> week + month = 3.
# B Jan 15 and Feb 10 (both within Q1 of a neighbour) -> 3; Apr 1 (prev Feb 10, none after):
#   alone in its week, month and Q2, not in 2024 -> 7.
# C Feb 1 and Mar 15: same quarter -> 3. D Jan 1 (its Feb 1 swap is no movement): alone in
# all four -> 15. E Mar 1 (Fri) and Mar 2 (Sat): same ISO week -> 0.
# The plan scope holds the same movements (D's swap nets out in Basic too).
ALONE_BY_HAND = {
    ("A", "2024-01-01"): 3,
    ("A", "2024-03-01"): 3,
    ("B", "2024-01-15"): 3,
    ("B", "2024-02-10"): 3,
    ("B", "2024-04-01"): 7,
    ("C", "2024-02-01"): 3,
    ("C", "2024-03-15"): 3,
    ("D", "2024-01-01"): 15,
    ("E", "2024-03-01"): 0,
    ("E", "2024-03-02"): 0,
}


@pytest.mark.usefixtures("company")
async def test_stored_alone_bits_by_hand_and_by_the_migrations_rule(engine: AsyncEngine) -> None:
    """The recompute stores each movement's periods it is alone in; the backfill of migration
    0035 (the same rule written in SQL) gives every stored row the same bits."""
    migration = importlib.import_module("migrations.versions.2026_12_04_0035_movement_alone")
    for table, scope in (("movement", ""), ("movement_scope", " AND m.dimension = 'plan'")):
        query = (
            f"SELECT c.external_id, m.day::text, m.alone, {migration.BITS} AS backfilled"
            f" FROM {table} m JOIN customer c ON c.id = m.customer_id WHERE true{scope}"
        )
        async with engine.connect() as connection:
            rows = (await connection.execute(sa.text(query))).all()
        assert {(who, day): alone for who, day, alone, _ in rows} == ALONE_BY_HAND, table
        assert [alone for *_, alone, _ in rows] == [backfilled for *_, backfilled in rows]


@pytest.mark.parametrize(
    ("start", "end", "interval", "whole"),
    [
        ("2024-01-01", "2024-12-31", "month", ("2024-01-01", "2024-12-31")),
        ("2024-01-15", "2024-12-31", "month", ("2024-02-01", "2024-12-31")),
        ("2024-01-01", "2024-12-30", "month", ("2024-01-01", "2024-11-30")),
        ("2024-01-15", "2024-02-20", "month", None),  # two cut months, none whole
        ("2024-01-15", "2024-01-20", "month", None),
        ("2024-01-01", "2024-01-31", "month", ("2024-01-01", "2024-01-31")),
        ("2024-01-03", "2024-01-21", "week", ("2024-01-08", "2024-01-21")),  # Wed to Sun
        ("2024-02-01", "2025-01-01", "quarter", ("2024-04-01", "2024-12-31")),
        ("2024-01-01", "2026-06-30", "year", ("2024-01-01", "2025-12-31")),
    ],
)
def test_whole_periods_of_a_range(
    start: str, end: str, interval: str, whole: tuple[str, str] | None
) -> None:
    request = SeriesRequest(
        date.fromisoformat(start), date.fromisoformat(end), Interval(interval), QuerySpec()
    )
    expected = None if whole is None else tuple(date.fromisoformat(day) for day in whole)
    assert whole_periods(request) == expected


@pytest.mark.usefixtures("company")
async def test_monthly_movements_by_hand(metrics: MetricsEngine) -> None:
    jan, feb, mar, apr = await series(metrics, "2024-01-01", "2024-04-30")
    # Jan: A 10000 + B 5000 + D 3000 new.
    assert (jan["mrr"], jan["customers"], jan["new"], jan["newCustomers"]) == (18000, 3, 18000, 3)
    assert jan["asp"] == 6000
    assert jan["arpa"] == 6000
    assert jan["arr"] == 216000
    # Feb: C new 20000, B churns -5000, D's swap nets out.
    assert (feb["mrr"], feb["customers"], feb["new"], feb["churn"]) == (33000, 3, 20000, -5000)
    assert (feb["churnedCustomers"], feb["churnCustomers"], feb["expansion"]) == (1, 1, 0)
    # Mar: A +5000, C -8000, E +1000 then -1000 (not a churned customer: inactive at Feb 29).
    assert (mar["mrr"], mar["customers"]) == (30000, 3)
    assert (mar["new"], mar["expansion"], mar["contraction"], mar["churn"]) == (
        1000,
        5000,
        -8000,
        -1000,
    )
    assert (mar["churnedCustomers"], mar["churnCustomers"], mar["contractionCustomers"]) == (
        0,
        1,
        1,
    )
    # Apr: B comes back at 4000.
    assert (apr["mrr"], apr["customers"], apr["reactivation"], apr["reactivationCustomers"]) == (
        34000,
        4,
        4000,
        1,
    )
    assert [p["netNewMrr"] for p in (jan, feb, mar, apr)] == [18000, 15000, -3000, 4000]
    assert [p["customersDiff"] for p in (jan, feb, mar, apr)] == [3, 0, 0, 1]


@pytest.mark.usefixtures("company")
async def test_rates_by_hand(metrics: MetricsEngine) -> None:
    jan, feb, mar, _apr = await series(metrics, "2024-01-01", "2024-04-30")
    # Jan starts from nothing: every rate with a zero denominator is null.
    assert jan["customerChurnRate"] is None
    assert jan["mrrChurnRate"] is None
    assert jan["nrr"] is None
    assert jan["quickRatio"] is None  # no contraction or churn
    assert feb["customerChurnRate"] == pytest.approx(float(Fraction(1, 3)))
    assert feb["customerRetentionRate"] == pytest.approx(float(Fraction(2, 3)))
    assert feb["mrrChurnRate"] == pytest.approx(5000 / 18000)
    assert feb["quickRatio"] == pytest.approx(20000 / 5000)
    assert mar["mrrChurnRate"] == pytest.approx(9000 / 33000)
    assert mar["mrrRetentionRate"] == pytest.approx(24000 / 33000)
    assert mar["netMrrChurnRate"] == pytest.approx(4000 / 33000)
    assert mar["quickRatio"] == pytest.approx(6000 / 9000)
    # Active at Feb 29: A 10000, C 20000, D 3000. At Mar 31: 15000, 12000, 3000.
    assert mar["nrr"] == pytest.approx(30000 / 33000)
    assert mar["grr"] == pytest.approx(25000 / 33000)  # A capped at 10000


@pytest.mark.usefixtures("company")
async def test_selecting_few_fields_gives_the_same_numbers(metrics: MetricsEngine) -> None:
    full = await series(metrics, "2024-01-01", "2024-04-30")
    for fields in ("mrr", "churnedCustomers nrr", "asp newCustomers", "quickRatio"):
        partial = await series(metrics, "2024-01-01", "2024-04-30", fields=fields)
        for whole, part in zip(full, partial, strict=True):
            assert part == {name: whole[name] for name in fields.split()}


@pytest.mark.usefixtures("company")
async def test_periods_are_clipped_to_the_range(metrics: MetricsEngine) -> None:
    points = await series(metrics, "2024-01-10", "2024-03-05", fields="date endDate mrr new")
    assert [(p["date"], p["endDate"]) for p in points] == [
        ("2024-01-10", "2024-01-31"),
        ("2024-02-01", "2024-02-29"),
        ("2024-03-01", "2024-03-05"),
    ]
    # Jan 1 movements (A, D) are before the range: they are in the opening MRR, not in `new`.
    assert points[0]["new"] == 5000
    assert points[0]["mrr"] == 18000
    assert points[2]["mrr"] == 33000 + 5000 + 1000 - 1000  # A expanded, E came and went


@pytest.mark.usefixtures("company")
async def test_every_interval_keeps_the_invariant(metrics: MetricsEngine) -> None:
    for interval, count in (("DAY", 121), ("WEEK", 18), ("MONTH", 4), ("QUARTER", 2), ("YEAR", 1)):
        points = await series(
            metrics, "2024-01-01", "2024-04-30", interval, fields="date endDate mrr netNewMrr"
        )
        assert len(points) == count, interval
        previous = 0
        for point in points:
            assert point["mrr"] - previous == point["netNewMrr"], (interval, point)
            previous = point["mrr"]
        assert points[-1]["mrr"] == 34000
    weeks = await series(metrics, "2024-01-01", "2024-01-20", "WEEK", fields="date endDate")
    assert [w["date"] for w in weeks] == ["2024-01-01", "2024-01-08", "2024-01-15"]  # Mondays
    assert weeks[-1]["endDate"] == "2024-01-20"


@pytest.mark.usefixtures("company")
async def test_snapshot_is_the_one_day_point(metrics: MetricsEngine) -> None:
    data = await execute(
        metrics,
        """{
      mar1: snapshot(at: "2024-03-01") { date endDate mrr customers new churn }
      mar2: snapshot(at: "2024-03-02") { mrr customers churn churnedCustomers } }""",
    )
    assert data["mar1"] == {
        "date": "2024-03-01",
        "endDate": "2024-03-01",
        "mrr": 39000,
        "customers": 4,
        "new": 1000,
        "churn": 0,
    }
    assert data["mar2"] == {"mrr": 38000, "customers": 3, "churn": -1000, "churnedCustomers": 1}


async def test_churn_and_reactivation_inside_one_period(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    await import_text(engine, HEADER + "f1,F,2024-01-01,2024-02-10,100,\nf2,F,2024-02-20,,100,\n")
    _jan, feb = await series(metrics, "2024-01-01", "2024-02-29")
    assert (feb["churn"], feb["reactivation"], feb["netNewMrr"]) == (-10000, 10000, 0)
    assert feb["churnedCustomers"] == 0
    assert feb["customerChurnRate"] == 0
    assert (feb["churnCustomers"], feb["reactivationCustomers"]) == (1, 1)


async def test_second_subscription_is_expansion_cancelling_one_is_contraction(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    await import_text(engine, HEADER + "g1,G,2024-01-01,,50,\ng2,G,2024-02-01,2024-03-01,20,\n")
    jan, feb, mar = await series(metrics, "2024-01-01", "2024-03-31")
    assert (jan["new"], feb["expansion"], mar["contraction"]) == (5000, 2000, -2000)
    assert (feb["newCustomers"], feb["customers"], mar["churn"]) == (0, 1, 0)


async def test_plan_change_is_churn_and_new_inside_a_plan_breakdown(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    await import_text(
        engine, HEADER + "h1,H,2024-01-01,2024-02-01,10,Basic\nh1,H,2024-02-01,,30,Pro\n"
    )
    query = """{ series(start: "2024-02-01", end: "2024-02-29",
                        spec: {dimensions: ["plan"]}) {
        points { mrr new expansion churn }
        breakdown { key label points { mrr new churn expansion churnedCustomers } } } }"""
    data = (await execute(metrics, query))["series"]
    assert data["points"] == [{"mrr": 3000, "new": 0, "expansion": 2000, "churn": 0}]
    by_plan = {entry["label"]: entry["points"][0] for entry in data["breakdown"]}
    assert by_plan == {
        "Basic": {"mrr": 0, "new": 0, "churn": -1000, "expansion": 0, "churnedCustomers": 1},
        "Pro": {"mrr": 3000, "new": 3000, "churn": 0, "expansion": 0, "churnedCustomers": 0},
    }
    pro_only = await series(
        metrics,
        "2024-02-01",
        "2024-02-29",
        "MONTH",
        {"filters": [{"field": "plan", "values": ["Pro"]}]},
        "mrr new",
    )
    assert pro_only == [{"mrr": 3000, "new": 3000}]


NORMALIZATION = """\
subscription_id,customer_id,start_date,end_date,amount,interval,interval_count,quantity
y1,Y,2024-01-01,,1200,year,1,1
w1,W,2024-01-01,,10,week,1,1
q1,Q,2024-01-01,,300,month,3,2
r1,R1,2024-01-01,,0.125,month,1,1
r2,R2,2024-01-01,,0.375,month,1,1
r3,R3,2024-01-01,,1.5,year,1,1
d1,DD,2024-01-01,,1,day,1,3
"""


async def test_normalization_and_half_even_rounding(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    await import_text(engine, NORMALIZATION)
    query = '{ snapshot(at: "2024-01-31") { mrr } }'
    assert (await execute(metrics, query))["snapshot"]["mrr"] == (
        10000  # 1200/year
        + 4333  # 10/week * 52/12 = 4333.33
        + 20000  # 2 x 300 every 3 months
        + 12  # 12.5 cents -> 12 (half to even)
        + 38  # 37.5 cents -> 38
        + 12  # 150/12 = 12.5 cents -> 12
        + 9125  # 3 x 1/day * 365/12 = 9125
    )


@pytest.mark.usefixtures("company")
async def test_churn_average_and_ltv_by_hand(metrics: MetricsEngine) -> None:
    # Monthly customerChurnRate: Jan null (no customers at Dec 31), Feb 1/3, Mar 0, Apr 0.
    points = await series(
        metrics, "2024-02-01", "2024-05-31", fields="date arpa customerChurnAvg ltv"
    )
    feb, mar, apr, may = points
    assert (feb["customerChurnAvg"], feb["ltv"]) == (None, None)  # Aug-Jan: all null
    assert mar["customerChurnAvg"] == pytest.approx(1 / 3)
    assert mar["ltv"] == 30000  # arpa 10000 / (1/3)
    assert apr["customerChurnAvg"] == pytest.approx(1 / 6)  # Feb 1/3 and Mar 0
    assert apr["ltv"] == 51000  # arpa 8500 / (1/6)
    assert may["customerChurnAvg"] == pytest.approx(1 / 9)
    assert may["ltv"] == 76500
    by_country = await execute(
        metrics,
        """{ series(start: "2024-04-01", end: "2024-04-30",
        spec: {dimensions: ["customer_country"]}) { breakdown { key points { ltv } } } }""",
    )
    assert by_country["series"]["breakdown"] == [{"key": ["(none)"], "points": [{"ltv": 51000}]}]


@pytest.mark.usefixtures("company")
async def test_stored_and_derived_scopes_agree(metrics: MetricsEngine) -> None:
    """A plan breakdown and an EQ filter read the stored per-plan movements; an IN filter
    derives them from the ledger: all three must give the same numbers."""
    fields = "mrr customers new expansion contraction churn reactivation churnedCustomers nrr"
    query = f"""{{ series(start: "2024-01-01", end: "2024-04-30", spec: {{dimensions: ["plan"]}}) {{
        breakdown {{ label points {{ {fields} }} }} }} }}"""
    breakdown = {
        entry["label"]: entry["points"]
        for entry in (await execute(metrics, query))["series"]["breakdown"]
    }
    assert set(breakdown) == {"Basic", "Pro"}
    for plan, points in breakdown.items():
        for op in ("EQ", "IN"):
            spec = {"filters": [{"field": "plan", "op": op, "values": [plan]}]}
            filtered = await series(metrics, "2024-01-01", "2024-04-30", spec=spec, fields=fields)
            assert filtered == points, (plan, op)
