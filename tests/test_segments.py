"""Saved segments: CRUD, validation, and their use as the universe and as compared branches of
every metric (same numbers as the equivalent filters; a customer may be in several branches)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.datacache import VersionedMemo, read_version
from app.metrics import universe
from app.metrics.service import MetricsEngine
from app.metrics.spec import AllOf, Filter, FilterOp, QuerySpec, SegmentSpec
from app.metrics.universe import members, members_at, members_key
from app.segments import parse
from tests.conftest import execute, execute_errors, import_text, table_counts
from tests.edge import real_app, serving
from tests.test_attributes import SET, with_attributes

# Jan-Mar 2024, monthly MRR in dollars:
#   A  US  saas    seats 10    Basic 100, 100, then Pro 150
#   B  GB  retail  seats 3     Basic 50, churned Feb 10
#   C  DE  saas    seats 25.5  Pro -, 200, 200
#   D  US  (none)              Basic -, 80, 80
CREATE = """mutation($name: String!, $definition: SegmentNodeInput!) {
  createSegment(name: $name, definition: $definition) { id name definition } }"""
FIELDS = """mrr arr customers arpa asp new expansion contraction churn reactivation netNewMrr
  customersDiff newCustomers expansionCustomers contractionCustomers churnCustomers
  reactivationCustomers churnedCustomers customerChurnRate mrrChurnRate netMrrChurnRate
  customerRetentionRate mrrRetentionRate nrr grr quickRatio customerChurnAvg ltv"""
SERIES = f"""query($spec: QuerySpecInput) {{
  series(start: "2024-01-01", end: "2024-03-31", spec: $spec) {{
    points {{ {FIELDS} }}
    breakdown {{ key label points {{ {FIELDS} }} }} }} }}"""
US_SAAS = {
    "and": [
        {"field": "customer_country", "op": "EQ", "values": ["US"]},
        {"field": "attr.industry", "values": ["saas"]},
    ]
}
BIG_OR_PRO = {
    "or": [
        {"field": "attr.seats", "op": "GT", "values": ["20"]},
        {"field": "plan", "values": ["Pro"]},
    ]
}
NOT_US = {"not": {"field": "customer_country", "values": ["US"]}}


@pytest.fixture
async def segments(engine: AsyncEngine, metrics: MetricsEngine) -> dict[str, str]:
    return await save_segments(engine, metrics)


async def save_segments(engine: AsyncEngine, metrics: MetricsEngine) -> dict[str, str]:
    """The customers with their attributes, and three saved segments (name -> id)."""
    await with_attributes(engine, metrics)
    saved = {}
    for name, definition in (("US SaaS", US_SAAS), ("Big or Pro", BIG_OR_PRO), ("Not US", NOT_US)):
        created = await execute(metrics, CREATE, {"name": name, "definition": definition})
        saved[name] = created["createSegment"]["id"]
    return saved


async def series(metrics: MetricsEngine, **spec: Any) -> dict[str, Any]:
    result: dict[str, Any] = (await execute(metrics, SERIES, {"spec": spec}))["series"]
    return result


def mrr(points: list[dict[str, Any]]) -> list[int]:
    return [point["mrr"] for point in points]


async def test_segments_are_saved_listed_updated_and_deleted(
    metrics: MetricsEngine, segments: dict[str, str]
) -> None:
    listed = await execute(metrics, "{ segments { name definition } }")
    assert [s["name"] for s in listed["segments"]] == ["Big or Pro", "Not US", "US SaaS"]
    us_saas = next(s for s in listed["segments"] if s["name"] == "US SaaS")
    assert us_saas["definition"] == {
        "and": [
            {"field": "customer_country", "op": "EQ", "values": ["US"]},
            {"field": "attr.industry", "op": "EQ", "values": ["saas"]},
        ]
    }
    updated = await execute(
        metrics,
        """mutation($id: ID!) { updateSegment(id: $id, name: "Outside the US",
             description: "not billed in the US") { name description definition } }""",
        {"id": segments["Not US"]},
    )
    assert updated["updateSegment"] == {
        "name": "Outside the US",
        "description": "not billed in the US",
        "definition": {"not": {"field": "customer_country", "op": "EQ", "values": ["US"]}},
    }
    fetched = await execute(
        metrics, "query($id: ID!) { segment(id: $id) { name } }", {"id": segments["Not US"]}
    )
    assert fetched["segment"]["name"] == "Outside the US"
    deleted = await execute(
        metrics, "mutation($id: ID!) { deleteSegment(id: $id) }", {"id": segments["US SaaS"]}
    )
    assert deleted["deleteSegment"] == segments["US SaaS"]
    [gone] = await execute_errors(
        metrics, "query($id: ID!) { segment(id: $id) { name } }", {"id": segments["US SaaS"]}
    )
    assert gone["extensions"]["code"] == "NOT_FOUND"
    assert gone["message"] == f"no segment with id {segments['US SaaS']}"


VALIDATE = """query($definition: SegmentNodeInput!) {
  validateSegment(definition: $definition) { valid problems } }"""


@pytest.mark.usefixtures("segments")
async def test_validate_segment_names_every_problem(metrics: MetricsEngine) -> None:
    ok = await execute(metrics, VALIDATE, {"definition": BIG_OR_PRO})
    assert ok["validateSegment"] == {"valid": True, "problems": []}
    bad = {
        "and": [
            {"field": "attr.tier", "values": ["gold"]},
            {"field": "attr.industry", "op": "GT", "values": ["a"]},
            {"not": {"field": "customer_since", "op": "LT", "values": ["last year"]}},
            {"or": []},
            {"field": "mrr", "op": "GTE", "values": ["100", "200"]},
        ]
    }
    result = (await execute(metrics, VALIDATE, {"definition": bad}))["validateSegment"]
    assert result["valid"] is False
    problems = result["problems"]
    assert problems[0] == "definition.and[3]: `or` needs at least one item"
    assert problems[1].startswith("unknown condition field 'attr.tier'; valid: plan, currency")
    assert "attr.industry" in problems[1]
    assert "customer_since" in problems[1]
    assert problems[2:] == [
        "condition attr.industry (string) does not take GT; accepted: EQ, NEQ, IN, NOT_IN, "
        "CONTAINS, IS_NULL, IS_NOT_NULL",
        "condition customer_since: 'last year' is not a date (YYYY-MM-DD)",
        "condition mrr GTE needs exactly one value",
    ]
    shape = {"field": "plan", "and": [{"field": "plan", "values": ["Pro"]}]}
    [malformed] = (await execute(metrics, VALIDATE, {"definition": shape}))["validateSegment"][
        "problems"
    ]
    assert malformed.startswith("definition: a node is exactly one of a condition")


async def test_bad_definitions_and_ids_change_nothing(
    engine: AsyncEngine, metrics: MetricsEngine, segments: dict[str, str]
) -> None:
    before = await table_counts(engine)
    bad = {"field": "attr.seats", "op": "CONTAINS", "values": ["1"]}
    [error] = await execute_errors(metrics, CREATE, {"name": "Bad", "definition": bad})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "condition attr.seats (number) does not take CONTAINS" in error["message"]
    [twice] = await execute_errors(metrics, CREATE, {"name": "Not US", "definition": NOT_US})
    assert twice["message"] == "a segment named 'Not US' already exists"
    [redefine] = await execute_errors(
        metrics,
        "mutation($id: ID!, $d: SegmentNodeInput!) { updateSegment(id: $id, definition: $d) { id } }",
        {"id": segments["Not US"], "d": {"field": "nope"}},
    )
    assert redefine["extensions"]["code"] == "BAD_USER_INPUT"
    for ident, code in (("999", "NOT_FOUND"), ("abc", "BAD_USER_INPUT")):
        [error] = await execute_errors(
            metrics, "mutation($id: ID!) { deleteSegment(id: $id) }", {"id": ident}
        )
        assert error["extensions"]["code"] == code
        [error] = await execute_errors(metrics, SERIES, {"spec": {"segment": ident}})
        assert error["extensions"]["code"] == code
    [many] = await execute_errors(
        metrics, SERIES, {"spec": {"compareSegments": [segments["Not US"]] * 11}}
    )
    assert "compareSegments takes at most 10 segments, not 11" in many["message"]
    assert await table_counts(engine) == before


async def test_a_segment_gives_the_numbers_of_the_equivalent_filters(
    metrics: MetricsEngine, segments: dict[str, str]
) -> None:
    filters = [
        {"field": "customer_country", "values": ["US"]},
        {"field": "attr.industry", "values": ["saas"]},
    ]
    filtered = await series(metrics, filters=filters)
    segmented = await series(metrics, segment=segments["US SaaS"])
    assert segmented["points"] == filtered["points"]
    assert mrr(segmented["points"]) == [10000, 10000, 15000]  # A only
    assert [p["expansion"] for p in segmented["points"]] == [0, 0, 5000]
    by_region = await series(metrics, segment=segments["Not US"], dimensions=["customer_country"])
    as_filter = await series(
        metrics,
        filters=[{"field": "customer_country", "op": "NEQ", "values": ["US"]}],
        dimensions=["customer_country"],
    )
    assert by_region["breakdown"] == as_filter["breakdown"]
    assert [b["key"] for b in by_region["breakdown"]] == [["DE"], ["GB"]]


async def test_subscription_level_conditions_select_whole_customers(
    metrics: MetricsEngine, segments: dict[str, str]
) -> None:
    # Seats > 20 is C; plan = Pro is everyone who ever paid for Pro (A, C): all of their MRR
    # counts, Basic months included, unlike the plan filter that re-scopes MRR to Pro.
    segmented = await series(metrics, segment=segments["Big or Pro"])
    assert mrr(segmented["points"]) == [10000, 30000, 35000]
    plan_filter = await series(metrics, filters=[{"field": "plan", "values": ["Pro"]}])
    assert mrr(plan_filter["points"]) == [0, 20000, 35000]


async def test_compared_segments_are_branches_that_may_overlap(
    metrics: MetricsEngine, segments: dict[str, str]
) -> None:
    names = ["US SaaS", "Big or Pro", "Not US"]
    compared = await series(metrics, compareSegments=[segments[n] for n in names])
    assert [b["key"] for b in compared["breakdown"]] == [[n] for n in names]
    for name, branch in zip(names, compared["breakdown"], strict=True):
        alone = await series(metrics, segment=segments[name])
        assert branch["points"] == alone["points"], name
    march = [branch["points"][2]["customers"] for branch in compared["breakdown"]]
    assert march == [1, 2, 1]  # A is in the first two, C in the last two
    assert sum(march) > compared["points"][2]["customers"] == 3
    assert compared["points"] == (await series(metrics))["points"]  # points stay the total


async def test_compare_with_a_universe_and_dimensions(
    metrics: MetricsEngine, segments: dict[str, str]
) -> None:
    result = await series(
        metrics,
        segment=segments["Big or Pro"],
        compareSegments=[segments["Not US"], segments["US SaaS"]],
        dimensions=["plan"],
    )
    by_key = {tuple(b["key"]): mrr(b["points"]) for b in result["breakdown"]}
    assert by_key == {
        ("Not US", "Pro"): [0, 20000, 20000],  # C
        ("US SaaS", "Basic"): [10000, 10000, 0],  # A
        ("US SaaS", "Pro"): [0, 0, 15000],
    }
    assert mrr(result["points"]) == [10000, 30000, 35000]
    empty = await series(
        metrics,
        segment=segments["US SaaS"],
        compareSegments=[segments["Not US"], segments["US SaaS"]],
    )
    assert [(b["key"], mrr(b["points"])) for b in empty["breakdown"]] == [
        (["Not US"], [0, 0, 0]),  # every compared segment is listed, even an empty one
        (["US SaaS"], [10000, 10000, 15000]),
    ]


async def test_empty_compared_segments_are_listed_with_dimensions_too(
    metrics: MetricsEngine, segments: dict[str, str]
) -> None:
    created = await execute(
        metrics,
        CREATE,
        {"name": "French", "definition": {"field": "customer_country", "values": ["FR"]}},
    )
    french = created["createSegment"]["id"]
    result = await series(
        metrics,
        segment=segments["US SaaS"],
        compareSegments=[segments["Not US"], segments["US SaaS"]],
        dimensions=["attr.industry"],
    )
    # Not US is empty inside US SaaS: listed once, its dimension `(none)`, with zero points.
    assert [(b["key"], b["label"], mrr(b["points"])) for b in result["breakdown"]] == [
        (["Not US", "(none)"], "Not US / (none)", [0, 0, 0]),
        (["US SaaS", "saas"], "US SaaS / saas", [10000, 10000, 15000]),
    ]
    both_empty = await series(
        metrics,
        segment=segments["US SaaS"],
        compareSegments=[french, segments["Not US"]],
        dimensions=["attr.industry", "plan"],
    )
    nobody = (await series(metrics, segment=french))["points"]
    assert [p["mrr"] + p["customers"] for p in nobody] == [0, 0, 0]
    assert [(b["key"], b["points"]) for b in both_empty["breakdown"]] == [
        (["French", "(none)", "(none)"], nobody),
        (["Not US", "(none)", "(none)"], nobody),
    ]


async def test_a_one_day_breakdown_lists_empty_segments_the_same_way(
    metrics: MetricsEngine, segments: dict[str, str]
) -> None:
    query = """query($spec: QuerySpecInput) { series(start: "2024-03-31", end: "2024-03-31",
        interval: DAY, spec: $spec) { breakdown { key points { mrr customers } } } }"""
    spec = {
        "segment": segments["US SaaS"],
        "compareSegments": [segments["Not US"], segments["US SaaS"]],
        "dimensions": ["plan"],
    }
    breakdown = (await execute(metrics, query, {"spec": spec}))["series"]["breakdown"]
    assert breakdown == [
        {"key": ["Not US", "(none)"], "points": [{"mrr": 0, "customers": 0}]},
        {"key": ["US SaaS", "Pro"], "points": [{"mrr": 15000, "customers": 1}]},
    ]


async def test_segments_narrow_customers_churn_and_cohorts(
    metrics: MetricsEngine, segments: dict[str, str]
) -> None:
    listed = await execute(
        metrics,
        """query($spec: QuerySpecInput) { customers(spec: $spec) {
            totalCount edges { node { externalId } } } }""",
        {"spec": {"segment": segments["Not US"]}},
    )
    assert [e["node"]["externalId"] for e in listed["customers"]["edges"]] == ["B", "C"]
    churn = await execute(
        metrics,
        """query($spec: QuerySpecInput) { churn(start: "2024-01-01", end: "2024-03-31",
            spec: $spec) { churnedCustomers { totalCount totalAmount } } }""",
        {"spec": {"segment": segments["Not US"]}},
    )
    assert churn["churn"]["churnedCustomers"] == {"totalCount": 1, "totalAmount": -5000}
    cohorts = await execute(
        metrics,
        """query($spec: QuerySpecInput) { cohorts(start: "2024-01-01", end: "2024-03-31",
            spec: $spec) { cohort size } }""",
        {"spec": {"segment": segments["Big or Pro"]}},
    )
    assert [(c["cohort"], c["size"]) for c in cohorts["cohorts"]] == [
        ("2024-01-01", 1),
        ("2024-02-01", 1),
    ]
    [error] = await execute_errors(
        metrics,
        """query($spec: QuerySpecInput) { cohorts(start: "2024-01-01", end: "2024-03-31",
            spec: $spec) { cohort } }""",
        {"spec": {"compareSegments": [segments["Not US"]]}},
    )
    assert "cohorts take filters, not dimensions or compareSegments" in error["message"]


async def test_not_keeps_customers_whose_field_is_unknown(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    await import_text(
        engine,
        "subscription_id,customer_id,start_date,end_date,monthly_amount,country\n"
        "u1,US1,2024-01-01,,10,US\nx1,NOWHERE,2024-01-01,,20,\n",
    )
    created = await execute(metrics, CREATE, {"name": "Not US", "definition": NOT_US})
    spec = {"segment": created["createSegment"]["id"]}
    listed = await execute(
        metrics,
        "query($spec: QuerySpecInput) { customers(spec: $spec) { edges { node { externalId } } } }",
        {"spec": spec},
    )
    assert [e["node"]["externalId"] for e in listed["customers"]["edges"]] == ["NOWHERE"]
    snapshot = await execute(
        metrics,
        'query($spec: QuerySpecInput) { snapshot(at: "2024-01-31", spec: $spec) { mrr } }',
        {"spec": spec},
    )
    assert snapshot["snapshot"]["mrr"] == 2000


# Each customer's MRR at the end of January, February and March 2024 (tests.test_attributes'
# PEOPLE), and the members of a segment of one condition tree, by the values of VALUES (D
# holds no attribute; B no `enterprise` nor `renewal`).
MONTHLY_MRR = {
    "A": (10000, 10000, 15000),
    "B": (5000, 0, 0),
    "C": (0, 20000, 20000),
    "D": (0, 8000, 8000),
}
INDUSTRY_SAAS = {"field": "attr.industry", "op": "EQ", "values": ["saas"]}
TREES: tuple[tuple[dict[str, Any], set[str]], ...] = (
    (INDUSTRY_SAAS, {"A", "C"}),
    ({"field": "attr.industry", "op": "NEQ", "values": ["saas"]}, {"B", "D"}),
    ({"field": "attr.industry", "op": "IN", "values": ["retail"]}, {"B"}),
    ({"field": "attr.industry", "op": "NOT_IN", "values": ["saas", "retail"]}, {"D"}),
    ({"field": "attr.industry", "op": "CONTAINS", "values": ["AA"]}, {"A", "C"}),
    ({"field": "attr.industry", "op": "IS_NULL"}, {"D"}),
    ({"field": "attr.industry", "op": "IS_NOT_NULL"}, {"A", "B", "C"}),
    ({"field": "attr.seats", "op": "GT", "values": ["5"]}, {"A", "C"}),
    ({"field": "attr.seats", "op": "LTE", "values": ["10"]}, {"A", "B"}),
    ({"field": "attr.seats", "op": "NEQ", "values": ["10"]}, {"B", "C", "D"}),
    ({"field": "attr.enterprise", "op": "EQ", "values": ["true"]}, {"C"}),
    ({"field": "attr.enterprise", "op": "NEQ", "values": ["true"]}, {"A", "B", "D"}),
    ({"field": "attr.renewal", "op": "GTE", "values": ["2025-01-01"]}, {"A"}),
    ({"field": "attr.renewal", "op": "IS_NULL"}, {"B", "C", "D"}),
    ({"not": INDUSTRY_SAAS}, {"B", "D"}),
    (
        {
            "and": [
                {"field": "attr.industry", "op": "NEQ", "values": ["retail"]},
                {"field": "attr.seats", "op": "IS_NULL"},
            ]
        },
        {"D"},
    ),
    (
        {
            "or": [
                {"field": "attr.enterprise", "op": "EQ", "values": ["true"]},
                {"field": "attr.renewal", "op": "IS_NOT_NULL"},
            ]
        },
        {"A", "C"},
    ),
    (
        {
            "not": {
                "or": [
                    {"field": "attr.seats", "op": "GT", "values": ["20"]},
                    {"field": "attr.industry", "op": "IS_NULL"},
                ]
            }
        },
        {"A", "B"},
    ),
    (
        {"and": [INDUSTRY_SAAS, {"field": "customer_country", "op": "NEQ", "values": ["US"]}]},
        {"C"},
    ),
)
MEMBERS = """query($segment: ID!) {
  customers(spec: {segment: $segment}) { edges { node { externalId } } } }"""


async def test_attribute_conditions_select_the_same_customers_everywhere(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    # A segment's metrics and the customers list select, for every operator of every type,
    # the customers VALUES says, those without the attribute included where a complement
    # (NEQ, NOT_IN, IS_NULL) or a `not` takes them.
    await with_attributes(engine, metrics)
    for index, (definition, expected) in enumerate(TREES):
        name = f"tree {index}"
        created = await execute(metrics, CREATE, {"name": name, "definition": definition})
        segment = created["createSegment"]["id"]
        listed = (await execute(metrics, MEMBERS, {"segment": segment}))["customers"]["edges"]
        assert {edge["node"]["externalId"] for edge in listed} == expected, name
        for rollups in (True, False):
            engine_metrics = MetricsEngine(engine, rollups=rollups)
            points = (await series(engine_metrics, segment=segment))["points"]
            assert mrr(points) == [
                sum(MONTHLY_MRR[who][month] for who in expected) for month in range(3)
            ], (name, rollups)
            ends = [sum(MONTHLY_MRR[who][month] > 0 for who in expected) for month in range(3)]
            assert [point["customers"] for point in points] == ends, (name, rollups)


async def test_an_and_of_attribute_conditions_joins_their_holders(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    """An attribute condition is a customer id IN (or NOT IN) its holders' ids, never NULL, so
    it is left bare: the conditions of an `and` become joins with the holders (built once,
    shared by parallel workers), not subplans that every worker hashes again. A customer
    field's condition (NULL where the field is unknown) keeps its subplan-free test."""
    await with_attributes(engine, metrics)
    tree = AllOf(
        (
            Filter("attr.industry", FilterOp.IN, ("saas", "retail")),
            Filter("attr.seats", FilterOp.GTE, ("10",)),
            Filter("customer_country", FilterOp.EQ, ("US",)),
        )
    )
    cube = await metrics.current_cube()
    query = members(cube, tree, sa.literal(datetime.date(2024, 3, 31)))
    sql = query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
    async with engine.connect() as connection:
        plan = "\n".join((await connection.execute(sa.text(f"EXPLAIN {sql}"))).scalars())
        found = (await connection.execute(query)).scalars().all()
        names = (
            await connection.execute(
                sa.text("SELECT external_id FROM customer WHERE id = ANY(:ids)"), {"ids": found}
            )
        ).scalars()
    assert "SubPlan" not in plan, plan
    assert "attr_industry_holders" in plan
    assert "attr_seats_holders" in plan
    assert set(names) == {"A"}  # C is saas with 25.5 seats, but in DE


# Every metric of a segment: the series with a breakdown and compared segments, cohorts,
# trials, churn and usage (the customers list tests each customer's own row, as before).
EVERY_METRIC = f"""query($spec: QuerySpecInput, $cohortSpec: QuerySpecInput) {{
  series(start: "2024-01-01", end: "2024-03-31", spec: $spec) {{
    points {{ {FIELDS} }} breakdown {{ key points {{ {FIELDS} }} }} }}
  snapshot(at: "2024-02-29", spec: $cohortSpec) {{ mrr customers }}
  cohorts(start: "2024-01-01", end: "2024-03-31", spec: $cohortSpec) {{
    cohort size ltv cells {{ month activeCustomers mrr }} }}
  trials(start: "2024-01-01", end: "2024-03-31", spec: $cohortSpec) {{
    points {{ trialsStarted trialsConverted trialsExpired }} funnel {{ started converted }} }}
  churn(start: "2024-01-01", end: "2024-03-31", spec: $cohortSpec) {{
    churnedCustomers {{ totalCount totalAmount events {{ externalId day amount }} }}
    revenueChurn {{ totalCount totalAmount events {{ externalId day kind amount }} }} }} }}"""


async def every_metric(metrics: MetricsEngine, segment: str, compare: list[str]) -> Any:
    spec = {"segment": segment, "compareSegments": compare, "dimensions": ["plan"]}
    variables = {"spec": spec, "cohortSpec": {"segment": segment}}
    return await execute(metrics, EVERY_METRIC, variables)


async def test_members_passed_as_ids_or_found_by_the_statement_give_the_same_numbers(
    engine: AsyncEngine,
    metrics: MetricsEngine,
    segments: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A segment reading attributes or the ledger has its members found once and passed to the
    # statements as ids, unless they are more than MAX_LISTED (then the statements find them,
    # as a segment of customer fields always does): the same answers either way.
    paying = {"field": "mrr", "op": "GTE", "values": ["100"]}  # read at each statement's end
    created = await execute(metrics, CREATE, {"name": "Paying", "definition": paying})
    cases = [
        (segments["US SaaS"], [segments["Big or Pro"], segments["Not US"]]),
        (segments["Big or Pro"], [segments["US SaaS"]]),
        (segments["Not US"], [segments["Big or Pro"]]),
        (created["createSegment"]["id"], [segments["US SaaS"], segments["Not US"]]),
    ]
    listed = [await every_metric(metrics, segment, compare) for segment, compare in cases]
    monkeypatch.setattr(universe, "MAX_LISTED", 0)
    found = [await every_metric(metrics, segment, compare) for segment, compare in cases]
    assert found == listed
    assert mrr(listed[0]["series"]["points"]) == [10000, 10000, 15000]  # A only
    assert mrr(listed[1]["series"]["points"]) == [10000, 30000, 35000]  # A and C
    assert mrr(listed[3]["series"]["points"]) == [10000, 30000, 35000]  # A, C at March's end


async def test_a_segment_is_found_once_per_version_and_per_end_only_if_it_reads_it(
    engine: AsyncEngine, metrics: MetricsEngine, segments: dict[str, str]
) -> None:
    # A series with the LTV runs its points (to March 31) beside its churn history (to
    # February 29): an attribute segment's members are found once for both, those of a
    # segment on the customer's MRR at each end.
    paying = {"field": "mrr", "op": "GTE", "values": ["100"]}
    created = await execute(metrics, CREATE, {"name": "Paying", "definition": paying})
    statements: list[str] = []

    def count(_c: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("SELECT customer.id \nFROM customer"):
            statements.append(statement)

    query = """query($spec: QuerySpecInput) { series(start: "2024-01-01", end: "2024-03-31",
        spec: $spec) { points { mrr ltv } } }"""
    version = await read_version(engine)
    memo = VersionedMemo()
    sa.event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        for segment, found in ((segments["US SaaS"], 1), (created["createSegment"]["id"], 2)):
            statements.clear()
            for _ in range(2):  # the second time from the memo
                reading = metrics.reading(engine, version, memo)
                await execute(reading, query, {"spec": {"segment": segment}})
            assert len(statements) == found, segment
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", count)


async def test_which_segments_are_passed_as_ids(
    engine: AsyncEngine, metrics: MetricsEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await with_attributes(engine, metrics)
    async with engine.connect() as connection:
        rows = await connection.execute(sa.text("SELECT external_id, id FROM customer"))
        people: dict[str, int] = dict(rows.all())
    cube = await metrics.current_cube()
    saas, not_us = parse(INDUSTRY_SAAS)[0], parse(NOT_US)[0]
    end = datetime.date(2024, 3, 31)
    async with engine.connect() as connection:
        spec, ids = await metrics.listing(connection, cube, QuerySpec(segment=saas), end)
        assert spec.listed == {members_key(saas)}
        assert sorted(ids[members_key(saas)]) == sorted(people[n] for n in ("A", "C"))
        # compared segments within a universe: each branch is the universe and the segment
        both = QuerySpec(segment=saas, compare=(SegmentSpec("x", not_us), SegmentSpec("y", saas)))
        spec, ids = await metrics.listing(connection, cube, both, end)
        branches = [AllOf((saas, not_us)), AllOf((saas, saas))]
        assert spec.listed == {members_key(b) for b in branches} == set(ids)
        assert ids[members_key(branches[0])] == [people["C"]]
        assert members_at(cube, saas, end)[1] is None  # an attribute: any day's answer
        paying = parse({"field": "mrr", "op": "GT", "values": ["0"]})[0]
        assert members_at(cube, paying, end)[1] == end
        # customer fields only: each customer's own row, tested by the statement
        spec, ids = await metrics.listing(connection, cube, QuerySpec(segment=not_us), end)
        assert (spec.listed, ids) == (frozenset(), {})
        monkeypatch.setattr(universe, "MAX_LISTED", 1)  # A and C are two
        spec, ids = await metrics.listing(connection, cube, QuerySpec(segment=saas), end)
        assert (spec.listed, ids) == (frozenset(), {})


async def test_a_served_segment_follows_a_write_to_its_members(
    engine: AsyncEngine, metrics: MetricsEngine, database_url: str
) -> None:
    # The server keeps a segment's member ids per data version: an attribute changed is a
    # write, and the next answer has the new members (the result cache off, so each request
    # computes; the members' memo is what is tested).
    people = await with_attributes(engine, metrics)
    created = await execute(metrics, CREATE, {"name": "SaaS", "definition": INDUSTRY_SAAS})
    query = {"query": SERIES, "variables": {"spec": {"segment": created["createSegment"]["id"]}}}
    async with serving(real_app(database_url, result_cache_entries=0)) as client:

        async def served() -> list[int]:
            body = (await client.post("/graphql", json=query)).json()
            return mrr(body["data"]["series"]["points"])

        assert await served() == [10000, 30000, 35000]  # A and C
        assert await served() == [10000, 30000, 35000]
        pairs = [{"key": "industry", "value": "saas"}]
        await execute(metrics, SET, {"id": people["D"], "values": pairs})
        assert await served() == [10000, 38000, 43000]  # and D from February
