"""Bad GraphQL arguments: BAD_USER_INPUT errors naming what is wrong and what is accepted."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.metrics.service import MetricsEngine
from tests.conftest import execute_errors, import_text, table_counts

SERIES = """query($spec: QuerySpecInput, $start: Date! = "2024-01-01", $end: Date! = "2024-03-31") {
  series(start: $start, end: $end, spec: $spec) { points { mrr } } }"""
VALID = (
    "plan, currency, plan_interval, customer_country, region, customer_age, status, pricing_model, "
    "product, collection_method"
)


async def test_unknown_dimension_and_filter_list_the_valid_names(
    metrics: MetricsEngine,
) -> None:
    spec = {"dimensions": ["planet"], "filters": [{"field": "colour", "values": ["red"]}]}
    [error] = await execute_errors(metrics, SERIES, {"spec": spec})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["problems"] == [
        f"unknown dimension 'planet'; valid: {VALID}",
        f"unknown filter field 'colour'; valid: {VALID}",
    ]


async def test_start_after_end(metrics: MetricsEngine) -> None:
    [error] = await execute_errors(metrics, SERIES, {"start": "2024-05-01", "end": "2024-04-01"})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == "start 2024-05-01 is after end 2024-04-01"


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        (
            '{ series(start: "2024-01-01", end: "2024-02-01", interval: MONTHLY) { end } }',
            "Value 'MONTHLY' does not exist in 'Interval' enum",
        ),
        ('{ series(start: "2024-02-30", end: "2024-03-01") { end } }', "2024-02-30"),
        (
            '{ series(start: "2024-01-01", end: "2024-02-01") { points { bogus } } }',
            "Cannot query field 'bogus'",
        ),
    ],
)
async def test_malformed_arguments_are_user_errors(
    metrics: MetricsEngine, query: str, fragment: str
) -> None:
    [error] = await execute_errors(metrics, query)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert fragment in error["message"]


@pytest.mark.parametrize(
    ("filters", "problem"),
    [
        ([{"field": "plan", "op": "EQ", "values": []}], "filter plan EQ needs exactly one value"),
        ([{"field": "plan", "op": "IN", "values": []}], "filter plan IN needs at least one value"),
        ([{"field": "plan", "op": "IS_NULL", "values": ["x"]}], "filter plan IS_NULL takes no"),
    ],
)
async def test_filter_values_must_fit_the_operator(
    metrics: MetricsEngine, filters: list[dict[str, object]], problem: str
) -> None:
    [error] = await execute_errors(metrics, SERIES, {"spec": {"filters": filters}})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"].startswith(problem)


async def test_too_long_a_series_is_refused(metrics: MetricsEngine) -> None:
    query = '{ series(start: "2000-01-01", end: "2024-12-31", interval: DAY) { end } }'
    [error] = await execute_errors(metrics, query)
    assert "the series would have 9132 points; at most 3700" in error["message"]


async def test_unknown_summary_field(metrics: MetricsEngine) -> None:
    query = (
        '{ series(start: "2024-01-01", end: "2024-02-01") { summary(field: "mmr") { current } } }'
    )
    [error] = await execute_errors(metrics, query)
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "unknown summary field 'mmr'; valid: mrr, arr, customers" in error["message"]


async def test_bad_queries_leave_data_unchanged(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    await import_text(
        engine,
        "subscription_id,customer_id,start_date,end_date,monthly_amount\ns1,C1,2024-01-01,,10\n",
    )
    before = await table_counts(engine)
    await execute_errors(metrics, SERIES, {"spec": {"dimensions": ["x'; DROP TABLE plan; --"]}})
    await execute_errors(
        metrics,
        SERIES,
        {"spec": {"filters": [{"field": "plan", "op": "GT", "values": ["a", "b"]}]}},
    )
    assert await table_counts(engine) == before


async def test_internal_errors_are_masked_with_a_request_id(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    broken = MetricsEngine(engine)
    broken.engine = None  # type: ignore[assignment]  # any unexpected failure in a resolver
    with caplog.at_level(logging.ERROR, logger="tidemill.graphql"):
        [error] = await execute_errors(broken, SERIES)
    assert error["extensions"]["code"] == "INTERNAL"
    request_id = error["extensions"]["requestId"]
    assert error["message"] == f"Internal error (request id {request_id})."
    assert "Traceback" not in error["message"]
    assert "NoneType" not in error["message"]
    assert any(request_id in record.getMessage() for record in caplog.records)
