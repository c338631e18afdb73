"""Usage metrics (METRICS.md 9): values computed by hand from a small stream of events.

acme (FR) and beta (DE) call an API; `tokens` and `model` are properties:

    e1 acme 2026-10-01T00:00:00Z tokens 10 model a
    e6 acme 2026-10-10T00:00:00Z tokens  2 model b
    e2 acme 2026-10-15T12:00:00Z tokens 30 model b
    e4 beta 2026-10-20T08:00:00Z tokens 100 model a
    e5 acme 2026-10-20T09:00:00Z login (another event name)
    e3 acme 2026-11-01T00:00:00Z tokens  5 model a   (exactly at the end of October)

acme in October [2026-10-01, 2026-11-01): e1, e6, e2 -> COUNT 3, SUM 42, MIN 2, MAX 30,
AVG 14, UNIQUE_COUNT(model) 2, LATEST 30 (e2). e3 sits at `to` and is excluded.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app import attributes, segments
from app.attributes import AttributeDefinition, AttributeType
from app.metrics.service import MetricsEngine
from app.tables import customer, usage_event, usage_rollup
from app.usage.ingest import ingest
from tests.conftest import execute, execute_errors

EVENTS = [
    ("e1", "acme", "api_call", "2026-10-01T00:00:00Z", {"tokens": 10, "model": "a"}),
    ("e6", "acme", "api_call", "2026-10-10T00:00:00Z", {"tokens": 2, "model": "b"}),
    ("e2", "acme", "api_call", "2026-10-15T12:00:00Z", {"tokens": 30, "model": "b"}),
    ("e4", "beta", "api_call", "2026-10-20T08:00:00Z", {"tokens": 100, "model": "a"}),
    ("e5", "acme", "login", "2026-10-20T09:00:00Z", {}),
    ("e3", "acme", "api_call", "2026-11-01T00:00:00Z", {"tokens": 5, "model": "a"}),
]
OCTOBER = {"from": "2026-10-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"}
ACME, BETA = "1", "2"

CREATE = """mutation($input: UsageMetricInput!) { createUsageMetric(input: $input) {
    id name aggregation queryType valueType filters { property op values } deletedAt } }"""
VALUE = """query($id: ID!, $customer: ID!, $timeframe: TimeframeInput) {
    usageMetricValue(id: $id, customerId: $customer, timeframe: $timeframe) {
        id name customerId value queryType timeframe { from to } } }"""
SERIES = """query($id: ID!, $spec: QuerySpecInput) {
    usageSeries(id: $id, start: "2026-10-01", end: "2026-11-30", spec: $spec) {
        points { date endDate value } breakdown { key points { value } } } }"""


def event(ident: str, who: str, name: str, at: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {"id": ident, "customer": who, "name": name, "timestamp": at, "properties": properties}


@pytest.fixture
async def stream(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            sa.insert(customer),
            [
                {"source": "csv", "external_id": "acme", "country": "FR"},
                {"source": "csv", "external_id": "beta", "country": "DE"},
                {"source": "csv", "external_id": "gamma", "country": "DE"},
            ],
        )
    result = await ingest(engine, [event(*e) for e in EVENTS])
    assert (result.accepted, result.duplicates, result.rejected) == (6, 0, [])


async def create(metrics: MetricsEngine, **given: Any) -> str:
    defaults = {"eventName": "api_call", "queryType": "SIMPLE"}
    data = await execute(metrics, CREATE, {"input": {**defaults, **given}})
    return str(data["createUsageMetric"]["id"])


async def value(
    metrics: MetricsEngine, ident: str, who: str = ACME, timeframe: Any = OCTOBER
) -> Any:
    data = await execute(metrics, VALUE, {"id": ident, "customer": who, "timeframe": timeframe})
    return data["usageMetricValue"]["value"]


AGGREGATIONS = [
    ("COUNT", None, 3, 2),
    ("SUM", "tokens", 42, 32),
    ("MIN", "tokens", 2, 2),
    ("MAX", "tokens", 30, 30),
    ("AVG", "tokens", 14, 16),
    ("UNIQUE_COUNT", "model", 2, 1),
    ("LATEST", "tokens", 30, 30),
]


@pytest.mark.usefixtures("stream")
@pytest.mark.parametrize("query_type", ["SIMPLE", "INDEXED"])
@pytest.mark.parametrize(("aggregation", "prop", "october", "model_b"), AGGREGATIONS)
async def test_every_aggregation_over_october_with_and_without_a_filter(
    metrics: MetricsEngine,
    query_type: str,
    aggregation: str,
    prop: str | None,
    october: float,
    model_b: float,
) -> None:
    given = {"aggregation": aggregation, "property": prop, "queryType": query_type}
    plain = await create(metrics, name="plain", **given)
    only_b = [{"property": "model", "op": "EQ", "values": ["b"]}]
    filtered = await create(metrics, name="only_b", filters=only_b, **given)
    assert await value(metrics, plain) == october
    assert await value(metrics, filtered) == model_b


@pytest.mark.parametrize("query_type", ["SIMPLE", "INDEXED"])
async def test_an_average_is_the_float_nearest_the_exact_quotient(
    engine: AsyncEngine, metrics: MetricsEngine, query_type: str
) -> None:
    """Seven calls of 100,000,000 tokens but one of 269,013,671: 869,013,671 / 7, whose
    nearest float is 124144810.14285715. PostgreSQL's avg() and numeric division keep 17
    digits here, 124144810.14285714, whose nearest float is 124144810.14285713."""
    tokens = [100_000_000] * 6 + [269_013_671]
    calls = [
        event(f"t{n}", "delta", "api_call", f"2026-10-0{n + 1}T10:00:00Z", {"tokens": amount})
        for n, amount in enumerate(tokens)
    ]
    assert (await ingest(engine, calls)).accepted == 7
    mean = await create(
        metrics, name="mean", aggregation="AVG", property="tokens", queryType=query_type
    )
    [delta] = (await execute(metrics, "{ customers { edges { node { id } } } }"))["customers"][
        "edges"
    ]
    assert await value(metrics, mean, delta["node"]["id"], None) == 869_013_671 / 7
    assert 869_013_671 / 7 == 124144810.14285715


@pytest.mark.usefixtures("stream")
@pytest.mark.parametrize("query_type", ["SIMPLE", "INDEXED"])
async def test_timeframes_are_half_open(metrics: MetricsEngine, query_type: str) -> None:
    tokens = await create(
        metrics, name="tokens", aggregation="SUM", property="tokens", queryType=query_type
    )
    assert await value(metrics, tokens) == 42  # e3 at exactly `to` is out
    november = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}
    assert await value(metrics, tokens, timeframe=november) == 5  # ... and in from `from`
    assert await value(metrics, tokens, timeframe=None) == 47  # all time
    mid_day = {"from": "2026-10-01T00:00:01Z", "to": "2026-10-15T12:00:00Z"}
    assert await value(metrics, tokens, timeframe=mid_day) == 2  # e6 only
    assert await value(metrics, tokens, BETA) == 100
    data = await execute(metrics, VALUE, {"id": tokens, "customer": ACME, "timeframe": OCTOBER})
    found = data["usageMetricValue"]
    assert found["timeframe"] == {
        "from": "2026-10-01T00:00:00+00:00",
        "to": "2026-11-01T00:00:00+00:00",
    }
    assert (found["name"], found["customerId"], found["queryType"]) == ("tokens", ACME, query_type)
    # finer than a microsecond (RFC 3339 with nanoseconds, as Go writes it): a bound just past
    # e1 (2026-10-01 midnight) leaves it out of `from` and in `to`; it was cut to midnight
    nanos = {"from": "2026-10-01T00:00:00.000000001Z", "to": "2026-11-01T00:00:00.0000001Z"}
    assert await value(metrics, tokens, timeframe=nanos) == 2 + 30 + 5  # e6, e2, e3
    just_after = {"to": "2026-10-01T00:00:00,0000005+00:00"}
    assert await value(metrics, tokens, timeframe=just_after) == 10  # e1 alone
    # the far ends clients send for "open" (Go's zero time, the last second of 9999) are
    # fine; `to` at the first moment there is used to overflow the day arithmetic (INTERNAL)
    ends = {"from": "0001-01-01T00:00:00Z", "to": "9999-12-31T23:59:59.999999Z"}
    assert await value(metrics, tokens, timeframe=ends) == 47
    assert await value(metrics, tokens, timeframe={"to": "0001-01-01T00:00:00Z"}) == 0
    for bound in ("9999-12-31T24:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:00-05:00"):
        given = {"id": tokens, "customer": ACME, "timeframe": {"to": bound}}
        [error] = await execute_errors(metrics, VALUE, given)
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert "Date-times run from year 1 to year 9999 in UTC" in error["message"]


@pytest.mark.usefixtures("stream")
async def test_numeric_filters_and_no_events(metrics: MetricsEngine) -> None:
    big = [{"property": "tokens", "op": "GT", "values": ["5"]}]
    tokens = await create(metrics, name="big", aggregation="SUM", property="tokens", filters=big)
    assert await value(metrics, tokens) == 40  # e1 + e2
    peak = await create(metrics, name="peak", aggregation="MAX", property="tokens")
    gamma = "3"
    assert await value(metrics, tokens, gamma) == 0  # a sum of nothing is 0
    assert await value(metrics, peak, gamma) is None  # a max of nothing is null


@pytest.mark.usefixtures("stream")
@pytest.mark.parametrize("query_type", ["SIMPLE", "INDEXED"])
async def test_series_breakdowns_and_top(metrics: MetricsEngine, query_type: str) -> None:
    tokens = await create(
        metrics, name="tokens", aggregation="SUM", property="tokens", queryType=query_type
    )
    data = await execute(
        metrics, SERIES, {"id": tokens, "spec": {"dimensions": ["customer_country"]}}
    )
    series = data["usageSeries"]
    assert [p["value"] for p in series["points"]] == [142, 5]
    assert [p["date"] for p in series["points"]] == ["2026-10-01", "2026-11-01"]
    by_country = {tuple(b["key"]): [p["value"] for p in b["points"]] for b in series["breakdown"]}
    assert by_country == {("DE",): [100, 0], ("FR",): [42, 5]}
    spec = {
        "dimensions": ["property.model"],
        "filters": [{"field": "customer_country", "values": ["FR"]}],
    }
    data = await execute(metrics, SERIES, {"id": tokens, "spec": spec})
    by_model = {
        b["key"][0]: [p["value"] for p in b["points"]] for b in data["usageSeries"]["breakdown"]
    }
    assert by_model == {"a": [10, 5], "b": [32, 0]}
    top = await execute(
        metrics,
        'query($id: ID!) { usageTop(id: $id, start: "2026-10-01", '
        'end: "2026-11-30", first: 5) { customerId value } }',
        {"id": tokens},
    )
    assert top["usageTop"] == [
        {"customerId": BETA, "value": 100},
        {"customerId": ACME, "value": 47},
    ]
    narrowed = """query($id: ID!, $spec: QuerySpecInput) { usageTop(id: $id, start: "2026-10-01",
        end: "2026-11-30", first: 5, spec: $spec) { customerId value } }"""
    for filters, expected in [
        ([{"field": "customer_country", "values": ["FR"]}], [(ACME, 47)]),
        ([{"field": "property.model", "values": ["b"]}], [(ACME, 32)]),  # e6, e2
        ([{"field": "property.tokens", "op": "GTE", "values": ["10"]}], [(BETA, 100), (ACME, 40)]),
    ]:
        found = await execute(metrics, narrowed, {"id": tokens, "spec": {"filters": filters}})
        assert [(r["customerId"], r["value"]) for r in found["usageTop"]] == expected, filters
    [error] = await execute_errors(
        metrics, narrowed, {"id": tokens, "spec": {"dimensions": ["customer_country"]}}
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "a ranking is by customer: its spec takes filters and a segment" in error["message"]


@pytest.mark.usefixtures("stream")
@pytest.mark.parametrize("query_type", ["SIMPLE", "INDEXED"])
async def test_series_filters_compare_properties_as_numbers_in_order(
    engine: AsyncEngine, metrics: MetricsEngine, query_type: str
) -> None:
    """COUNT of api_call by `property.tokens` filters; e7 (beta, October) holds tokens as
    the text "50": the ordered operators compare JSON numbers only, EQ compares text.
    October: e1 10, e6 2, e2 30 (acme), e4 100, e7 "50" (beta); November: e3 5 (acme)."""
    late = event("e7", "beta", "api_call", "2026-10-21T00:00:00Z", {"tokens": "50"})
    assert (await ingest(engine, [late])).accepted == 1
    calls = await create(metrics, name="calls", aggregation="COUNT", queryType=query_type)

    async def points(op: str, value: str, dimensions: Any = ()) -> Any:
        spec = {
            "dimensions": list(dimensions),
            "filters": [{"field": "property.tokens", "op": op, "values": [value]}],
        }
        data = (await execute(metrics, SERIES, {"id": calls, "spec": spec}))["usageSeries"]
        if dimensions:
            return {b["key"][0]: [p["value"] for p in b["points"]] for b in data["breakdown"]}
        return [p["value"] for p in data["points"]]

    assert await points("GT", "5") == [3, 0]  # 10, 30, 100 (not "50": text)
    assert await points("GTE", "5") == [3, 1]
    assert await points("LT", "10") == [1, 1]  # 2; 5
    assert await points("LTE", "1e1") == [2, 1]  # 10, 2; 5
    assert await points("GT", "9.5", ["customer_country"]) == {"DE": [1, 0], "FR": [2, 0]}
    assert await points("EQ", "50") == [1, 0]  # as text: e7
    assert await points("IN", "10") == [1, 0]
    [error] = await execute_errors(
        metrics,
        SERIES,
        {
            "id": calls,
            "spec": {"filters": [{"field": "property.tokens", "op": "GT", "values": ["many"]}]},
        },
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "filter property.tokens: 'many' is not a number" in error["message"]


PERIODS = """query($id: ID!, $start: Date!, $end: Date!, $interval: Interval!) {
    usageSeries(id: $id, start: $start, end: $end, interval: $interval) {
        points { date endDate value } } }"""
# Over every customer, from 2026-10-12 (e2 30 b, e4 100 a; e1 and e6 are before it), November
# (e3 5 a) and December (no event); then the fourth quarter whole (e1, e6, e2, e4, e3).
SERIES_BY_AGGREGATION = [
    ("COUNT", None, [2, 1, 0], 5),
    ("SUM", "tokens", [130, 5, 0], 147),
    ("MIN", "tokens", [30, 5, None], 2),
    ("MAX", "tokens", [100, 5, None], 100),
    ("AVG", "tokens", [65, 5, None], 29.4),
    ("UNIQUE_COUNT", "model", [2, 1, 0], 2),
    ("LATEST", "tokens", [100, 5, None], 5),
]


@pytest.mark.usefixtures("stream")
@pytest.mark.parametrize("query_type", ["SIMPLE", "INDEXED"])
@pytest.mark.parametrize(("aggregation", "prop", "months", "quarter"), SERIES_BY_AGGREGATION)
async def test_every_aggregation_as_a_series_of_months_and_quarters(
    metrics: MetricsEngine,
    query_type: str,
    aggregation: str,
    prop: str | None,
    months: list[float | None],
    quarter: float,
) -> None:
    """A SIMPLE series of whole months is one aggregate per period (a union), an INDEXED
    one reads the per-day totals: the same values, the first period cut at `start`."""
    ident = await create(
        metrics, name="m", aggregation=aggregation, property=prop, queryType=query_type
    )
    given = {"id": ident, "start": "2026-10-12", "end": "2026-12-31", "interval": "MONTH"}
    points = (await execute(metrics, PERIODS, given))["usageSeries"]["points"]
    assert [p["value"] for p in points] == months
    assert [(p["date"], p["endDate"]) for p in points] == [
        ("2026-10-12", "2026-10-31"),
        ("2026-11-01", "2026-11-30"),
        ("2026-12-01", "2026-12-31"),
    ]
    given |= {"start": "2026-10-01", "interval": "QUARTER"}
    points = (await execute(metrics, PERIODS, given))["usageSeries"]["points"]
    assert [(p["date"], p["value"]) for p in points] == [("2026-10-01", quarter)]


@pytest.mark.usefixtures("stream")
async def test_a_late_event_changes_an_indexed_metrics_past_day(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    tokens = await create(
        metrics, name="tokens", aggregation="SUM", property="tokens", queryType="INDEXED"
    )
    latest = await create(
        metrics, name="latest", aggregation="LATEST", property="tokens", queryType="INDEXED"
    )
    late = [
        event("e7", "acme", "api_call", "2026-10-02T00:00:00Z", {"tokens": 8, "model": "c"}),
        event("e8", "acme", "api_call", "2026-10-31T23:59:59Z", {"tokens": 4}),
    ]
    assert (await ingest(engine, late)).accepted == 2
    assert await value(metrics, tokens) == 42 + 8 + 4
    assert await value(metrics, latest) == 4  # e8 is now October's latest
    series = await execute(metrics, SERIES, {"id": tokens})  # from the per-day totals
    assert [p["value"] for p in series["usageSeries"]["points"]] == [142 + 8 + 4, 5]
    series = await execute(metrics, SERIES, {"id": latest})
    assert [p["value"] for p in series["usageSeries"]["points"]] == [4, 5]
    day = sa.select(usage_rollup.c.sum).where(
        usage_rollup.c.metric_id == int(tokens), usage_rollup.c.day == datetime.date(2026, 10, 2)
    )
    async with engine.connect() as connection:
        assert await connection.scalar(day) == 8


@pytest.mark.usefixtures("stream")
async def test_duplicates_are_counted_and_never_applied_twice(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    tokens = await create(
        metrics, name="tokens", aggregation="SUM", property="tokens", queryType="INDEXED"
    )
    again = event("e1", "acme", "api_call", "2026-10-03T00:00:00Z", {"tokens": 999})
    twice = event("e9", "acme", "api_call", "2026-10-03T00:00:00Z", {"tokens": 1})
    result = await ingest(engine, [again, twice, twice])
    assert (result.accepted, result.duplicates) == (1, 2)
    assert await value(metrics, tokens) == 43
    other_source = await ingest(engine, [again], source="import")
    assert other_source.accepted == 1  # ids are unique per source


@pytest.mark.usefixtures("stream")
async def test_composite_metrics_and_a_zero_denominator(metrics: MetricsEngine) -> None:
    await create(metrics, name="tokens", aggregation="SUM", property="tokens")
    await create(metrics, name="calls", aggregation="COUNT", queryType="INDEXED")
    per_call = await create(
        metrics, name="per_call", queryType="COMPOSITE", eventName=None, expression="tokens / calls"
    )
    assert await value(metrics, per_call) == 14
    assert await value(metrics, per_call, "3") is None  # gamma: 0 / 0
    both = await create(
        metrics,
        name="both",
        queryType="COMPOSITE",
        eventName=None,
        expression="-(tokens + 2 * calls) / 4",
    )
    assert await value(metrics, both) == -(42 + 6) / 4
    tenths = await create(
        metrics, name="tenths", queryType="COMPOSITE", eventName=None, expression="0.1 + 0.2"
    )
    assert await value(metrics, tenths) == 0.3  # decimal arithmetic: not 0.30000000000000004
    # numbers as written, not as Python reads them: 42.00000000000000001 is not 42.0, and
    # 1e-330 is not 0 (below the smallest float)
    for expression, expected in [
        ("tokens - 42.00000000000000001", -1e-17),
        ("tokens * 1e-330 * 1e300 * 1e30", 42),
        ("tokens / (1e-330 * 1e300 * 1e30)", 42),
        ("(tokens - 42) / 1e-330", 0),  # not a zero denominator
        ("0x10 + 0o10 + 0b10 + 1_000", 1026),
    ]:
        ident = await create(
            metrics, name="as_written", queryType="COMPOSITE", eventName=None, expression=expression
        )
        assert await value(metrics, ident) == expected, expression
        await execute(
            metrics, "mutation($id: ID!) { deleteUsageMetric(id: $id) { id } }", {"id": ident}
        )
    huge = await create(
        metrics, name="huge", queryType="COMPOSITE", eventName=None, expression="tokens * 1e308"
    )
    [beyond] = await execute_errors(
        metrics, VALUE, {"id": huge, "customer": ACME, "timeframe": OCTOBER}
    )
    assert beyond["extensions"]["code"] == "BAD_USER_INPUT"
    assert "a value of 4.200000E+309 is beyond what a Float holds" in beyond["message"]
    for expression, problem in [
        ("1e400", "the number 1e400 is beyond what a Float holds"),
        ("tokens * 1e-1001", "the number 1e-1001 has more than 1000 decimal places"),
        ("__import__('os')", "is not allowed"),
        ("tokens ** 2", "is not allowed"),
        ("tokens +", "does not parse"),
        ("nothing + 1", "no metric named 'nothing'"),
    ]:
        given = {
            "name": "bad",
            "queryType": "COMPOSITE",
            "eventName": None,
            "expression": expression,
        }
        [error] = await execute_errors(metrics, CREATE, {"input": given})
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert problem in error["message"]


UPDATE = """mutation($id: ID!, $input: UsageMetricUpdateInput!) {
    updateUsageMetric(id: $id, input: $input) { id name filters { property } } }"""


@pytest.mark.usefixtures("stream")
async def test_a_metric_a_composite_reads_keeps_its_name_and_stays(metrics: MetricsEngine) -> None:
    """A COMPOSITE names the metrics it reads: renaming one of them broke it ("reads 'tokens',
    which is not defined"), as deleting one would. Both are refused, with the readers named;
    once no COMPOSITE reads it, the rename goes through."""
    tokens = await create(metrics, name="tokens", aggregation="SUM", property="tokens")
    await create(metrics, name="calls", aggregation="COUNT")
    per_call = await create(
        metrics, name="per_call", queryType="COMPOSITE", eventName=None, expression="tokens / calls"
    )
    [renamed] = await execute_errors(metrics, UPDATE, {"id": tokens, "input": {"name": "t2"}})
    assert renamed["extensions"]["code"] == "BAD_USER_INPUT"
    assert renamed["message"] == (
        "metric 'tokens' is read by COMPOSITE per_call, which name it; redefine those first "
        "to rename it"
    )
    [deleted] = await execute_errors(
        metrics, "mutation($id: ID!) { deleteUsageMetric(id: $id) { id } }", {"id": tokens}
    )
    assert deleted["message"] == (
        "metric 'tokens' is read by COMPOSITE per_call; delete or redefine those first"
    )
    assert await value(metrics, per_call) == 14  # still reads tokens
    described = {"description": "tokens per call"}  # a change that keeps the name is fine
    await execute(metrics, UPDATE, {"id": tokens, "input": described})
    await execute(metrics, UPDATE, {"id": per_call, "input": {"expression": "calls * 2"}})
    done = await execute(metrics, UPDATE, {"id": tokens, "input": {"name": "t2"}})
    assert done["updateUsageMetric"]["name"] == "t2"


@pytest.mark.usefixtures("stream")
async def test_aggregation_and_value_type_are_immutable(metrics: MetricsEngine) -> None:
    tokens = await create(
        metrics, name="tokens", aggregation="SUM", property="tokens", queryType="INDEXED"
    )
    for field, changed in (("aggregation", "AVG"), ("valueType", "INTEGER")):
        [error] = await execute_errors(metrics, UPDATE, {"id": tokens, "input": {field: changed}})
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert error["message"].startswith(f"{field} is immutable")
    only_b = [{"property": "model", "values": ["b"]}]
    same = {"aggregation": "SUM", "filters": only_b, "name": "b_tokens"}
    data = await execute(metrics, UPDATE, {"id": tokens, "input": same})
    assert data["updateUsageMetric"]["name"] == "b_tokens"
    assert await value(metrics, tokens) == 32  # the rollup is rebuilt for the new filter


@pytest.mark.usefixtures("stream")
@pytest.mark.parametrize("query_type", ["SIMPLE", "INDEXED"])
async def test_a_value_follows_every_change_of_its_metric(
    metrics: MetricsEngine, query_type: str
) -> None:
    """A customer's value is compiled from the definition read last time, checked in the
    same statement: each change below must show in the very next value."""
    tokens = await create(
        metrics, name="tokens", aggregation="SUM", property="tokens", queryType=query_type
    )
    assert await value(metrics, tokens) == 42
    assert await value(metrics, tokens, BETA) == 100
    only_b = [{"property": "model", "values": ["b"]}]
    await execute(metrics, UPDATE, {"id": tokens, "input": {"filters": only_b}})
    assert await value(metrics, tokens) == 32  # e6 2 + e2 30
    await execute(metrics, UPDATE, {"id": tokens, "input": {"property": "missing"}})
    assert await value(metrics, tokens) == 0
    await execute(metrics, UPDATE, {"id": tokens, "input": {"property": "tokens", "filters": []}})
    [nobody] = await execute_errors(metrics, VALUE, {"id": tokens, "customer": "999"})
    assert nobody["extensions"]["code"] == "NOT_FOUND"
    assert nobody["message"] == "no customer with id 999"
    await execute(
        metrics, "mutation($id: ID!) { deleteUsageMetric(id: $id) { id } }", {"id": tokens}
    )
    assert await value(metrics, tokens) == 42  # deleted: read from the events


@pytest.mark.usefixtures("stream")
async def test_soft_delete(metrics: MetricsEngine) -> None:
    tokens = await create(
        metrics, name="tokens", aggregation="SUM", property="tokens", queryType="INDEXED"
    )
    deleted = await execute(
        metrics, "mutation($id: ID!) { deleteUsageMetric(id: $id) { deletedAt } }", {"id": tokens}
    )
    assert deleted["deleteUsageMetric"]["deletedAt"] is not None
    listed = await execute(
        metrics, "{ usageMetrics { id } all: usageMetrics(includeDeleted: true) { id } }"
    )
    assert listed == {"usageMetrics": [], "all": [{"id": tokens}]}
    one = await execute(
        metrics, "query($id: ID!) { usageMetric(id: $id) { name deletedAt } }", {"id": tokens}
    )
    assert one["usageMetric"]["name"] == "tokens"
    assert one["usageMetric"]["deletedAt"] is not None
    assert await value(metrics, tokens) == 42  # history stays queryable
    [error] = await execute_errors(metrics, UPDATE, {"id": tokens, "input": {"name": "x"}})
    assert "deleted" in error["message"]
    again = await create(metrics, name="tokens", aggregation="SUM", property="tokens")
    assert again != tokens  # the name is free again


@pytest.mark.usefixtures("stream")
async def test_unknown_ids_and_bad_definitions(metrics: MetricsEngine) -> None:
    [missing] = await execute_errors(metrics, VALUE, {"id": "999", "customer": ACME})
    assert missing["extensions"]["code"] == "NOT_FOUND"
    assert missing["message"] == "no usage metric with id 999; see `usageMetrics`"
    tokens = await create(metrics, name="tokens", aggregation="SUM", property="tokens")
    [nobody] = await execute_errors(metrics, VALUE, {"id": tokens, "customer": "999"})
    assert nobody["extensions"]["code"] == "NOT_FOUND"
    bad = {
        "name": "9lives",
        "aggregation": "SUM",
        "valueType": "STRING",
        "filters": [{"property": "tokens", "op": "GT", "values": ["many"]}],
    }
    [error] = await execute_errors(metrics, CREATE, {"input": bad})
    problems = error["extensions"]["problems"]
    assert any("must be an identifier" in p for p in problems)
    assert any("SUM needs a property" in p for p in problems)
    assert any("valueType must be INTEGER or FLOAT" in p for p in problems)
    assert any("'many' is not a number" in p for p in problems)
    [dimension] = await execute_errors(
        metrics, SERIES, {"id": tokens, "spec": {"dimensions": ["plan_interval"]}}
    )
    assert "unknown dimension 'plan_interval'" in dimension["message"]


@pytest.mark.usefixtures("stream")
async def test_numbers_out_of_bounds_are_refused_never_an_internal_error(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    """Filter values of 10^1000 or more, or of more than 1,000 decimal places, used to reach
    the database driver (INTERNAL; a 200,000-digit one was even read as a small number and
    matched everything); a value beyond the largest float is an error, not infinity."""
    for bound, problem in [
        ("1e1000", "is too large (at most 1000 digits before the decimal point)"),
        ("-1" + "0" * 200_000, "is too large"),
        ("1e-1001", "has more than 1000 decimal places"),
    ]:
        given = {
            "name": "big",
            "aggregation": "COUNT",
            "filters": [{"property": "tokens", "op": "GT", "values": [bound]}],
        }
        [error] = await execute_errors(
            metrics, CREATE, {"input": {"eventName": "api_call", **given}}
        )
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert problem in error["message"]
        calls = await create(metrics, name=f"calls_{len(bound)}", aggregation="COUNT")
        spec = {"filters": [{"field": "property.tokens", "op": "LT", "values": [bound]}]}
        [error] = await execute_errors(metrics, SERIES, {"id": calls, "spec": spec})
        assert error["extensions"]["code"] == "BAD_USER_INPUT"
        assert problem in error["message"]
    spec = {"filters": [{"field": "property.tokens", "op": "LT", "values": ["9" * 1000]}]}
    points = (await execute(metrics, SERIES, {"id": calls, "spec": spec}))["usageSeries"]["points"]
    assert [p["value"] for p in points] == [4, 1]  # every api_call of October and November
    huge = [
        event(f"h{i}", "gamma", "api_call", "2026-10-05T00:00:00Z", {"tokens": 1.5e308})
        for i in (1, 2)
    ]
    assert (await ingest(engine, huge)).accepted == 2
    tokens = await create(metrics, name="tokens", aggregation="SUM", property="tokens")
    [error] = await execute_errors(
        metrics, VALUE, {"id": tokens, "customer": "3", "timeframe": OCTOBER}
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "a value of 3.000000E+308 is beyond what a Float holds" in error["message"]
    assert await value(metrics, tokens) == 42  # acme's is served as before


@pytest.mark.usefixtures("stream")
async def test_events_are_checked_one_by_one(engine: AsyncEngine, metrics: MetricsEngine) -> None:
    await create(metrics, name="tokens", aggregation="SUM", property="tokens")
    batch: list[object] = [
        {"customer": "acme", "name": "api_call", "timestamp": "2026-10-05T00:00:00Z"},
        {"id": "x2", "customer": "acme", "name": "api_call"},
        event("x3", "acme", "api_call", "2026-10-05T00:00:00Z", {"tokens": "lots"}),
        event("x4", "acme", "api_call", "yesterday", {}),
        "not an event",
        event("x6", "newco", "api_call", "2026-10-05T00:00:00+02:00", {"tokens": 1}),
    ]
    result = await ingest(engine, batch)
    reasons = {item.index: item.reason for item in result.rejected}
    assert result.accepted == 1
    assert reasons[0].startswith("id is missing")
    assert reasons[1].startswith("timestamp must be an ISO 8601")
    assert reasons[2] == (
        "property 'tokens' is 'lots', not a number; metric 'tokens' (SUM) reads it as one"
    )
    assert "not an ISO 8601 date-time" in reasons[3]
    assert reasons[4].startswith("an event is a JSON object")
    async with engine.connect() as connection:
        created = (
            await connection.execute(
                sa.select(customer.c.source, customer.c.name).where(
                    customer.c.external_id == "newco"
                )
            )
        ).one()
    assert tuple(created) == ("events", None)  # an unknown customer is created bare


async def test_a_nul_in_a_property_key_or_text_is_refused_with_its_reason(
    engine: AsyncEngine,
) -> None:
    """JSON writes U+0000 as the escape `\\u0000`, which PostgreSQL's jsonb refuses: such an
    event is rejected on its own (the batch's COPY failed whole, a 500). The same six
    characters written as text (a backslash, then u0000) are only text, and kept."""
    at = "2026-10-05T00:00:00Z"
    batch = [
        event("n1", "acme", "api_call", at, {"\x00": 1}),
        event("n2", "acme", "api_call", at, {"tags": ["ok", {"deep": "a\x00b"}]}),
        event("n3", "acme", "api_call", at, {"path": "C:\\u0000"}),
        event("n4", "acme", "api_call", at, {"tokens": 4}),
    ]
    result = await ingest(engine, batch)
    assert result.accepted == 2
    reasons = {item.id: item.reason for item in result.rejected}
    assert reasons == {
        "n1": "properties hold a NUL character (U+0000) in a key or a text",
        "n2": "properties hold a NUL character (U+0000) in a key or a text",
    }
    async with engine.connect() as connection:
        stored = await connection.execute(
            sa.select(usage_event.c.event_id, usage_event.c.properties).order_by("event_id")
        )
        assert stored.all() == [("n3", {"path": "C:\\u0000"}), ("n4", {"tokens": 4})]


@pytest.fixture
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    sa.event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_customer_usage_costs_the_same_statements_for_3_and_30_customers(
    engine: AsyncEngine, metrics: MetricsEngine, statements: list[str]
) -> None:
    events = [
        event(f"c{i}-{j}", f"cust{i:02}", "api_call", "2026-10-05T00:00:00Z", {"tokens": i})
        for i in range(30)
        for j in range(2)
    ]
    assert (await ingest(engine, events)).accepted == 60
    tokens = await create(metrics, name="tokens", aggregation="SUM", property="tokens")
    query = """query($first: Int!, $id: ID!) { customers(first: $first) { edges { node {
        externalId usage(metricId: $id, timeframe: {from: "2026-10-01T00:00:00Z"}) } } } }"""
    counts = []
    for size in (3, 30):
        statements.clear()
        data = await execute(metrics, query, {"first": size, "id": tokens})
        for edge in data["customers"]["edges"]:
            node = edge["node"]
            assert node["usage"] == 2 * int(node["externalId"].removeprefix("cust"))
        counts.append(len(statements))
    assert counts[0] == counts[1]


@pytest.mark.usefixtures("stream")
async def test_series_by_attribute_segment_and_compared_segments(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    tier = AttributeDefinition("tier", "Tier", AttributeType.STRING, "csv", "")
    await attributes.create(engine, tier)
    await attributes.import_csv(engine, ["customer,tier\n", "acme,gold\n", "beta,silver\n"], "t")
    cube = await metrics.current_cube()
    french = await segments.create(
        engine, cube, "French", "", {"field": "customer_country", "values": ["FR"]}
    )
    gold = await segments.create(
        engine, cube, "Gold", "", {"field": "attr.tier", "op": "IN", "values": ["gold", "silver"]}
    )
    tokens = await create(
        metrics, name="tokens", aggregation="SUM", property="tokens", queryType="INDEXED"
    )
    by_tier = await execute(metrics, SERIES, {"id": tokens, "spec": {"dimensions": ["attr.tier"]}})
    found = {
        b["key"][0]: [p["value"] for p in b["points"]] for b in by_tier["usageSeries"]["breakdown"]
    }
    assert found == {"gold": [42, 5], "silver": [100, 0]}
    only = await execute(metrics, SERIES, {"id": tokens, "spec": {"segment": str(french.id)}})
    assert [p["value"] for p in only["usageSeries"]["points"]] == [42, 5]
    spec = {"compareSegments": [str(gold.id), str(french.id)]}
    compared = await execute(metrics, SERIES, {"id": tokens, "spec": spec})
    branches = [
        (b["key"], [p["value"] for p in b["points"]]) for b in compared["usageSeries"]["breakdown"]
    ]
    assert branches == [(["Gold"], [142, 5]), (["French"], [42, 5])]
    top = """query($id: ID!, $spec: QuerySpecInput) { usageTop(id: $id, start: "2026-10-01",
        end: "2026-11-30", spec: $spec) { customerId value } }"""
    ranked = await execute(metrics, top, {"id": tokens, "spec": {"segment": str(french.id)}})
    assert ranked["usageTop"] == [{"customerId": ACME, "value": 47}]


@pytest.mark.usefixtures("stream")
@pytest.mark.parametrize("query_type", ["SIMPLE", "INDEXED"])
async def test_a_non_number_stored_before_the_metric_is_skipped(
    engine: AsyncEngine, metrics: MetricsEngine, query_type: str
) -> None:
    odd = event("odd", "acme", "api_call", "2026-10-03T00:00:00Z", {"tokens": "lots"})
    assert (await ingest(engine, [odd])).accepted == 1  # no numeric metric reads it yet
    tokens = await create(
        metrics, name="tokens", aggregation="SUM", property="tokens", queryType=query_type
    )
    assert await value(metrics, tokens) == 42
    calls = await create(metrics, name="calls", aggregation="COUNT", property="tokens")
    assert await value(metrics, calls) == 4  # COUNT counts the events holding it
