"""Numbers, days, ids, keys and currencies are read in their one documented form: Python's
parsers take more (any Unicode digit, underscores, the other ISO 8601 forms of a day, a
newline before `$`), which gave values a client did not mean (app/strict.py)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app import strict
from app.metrics.service import MetricsEngine
from app.metrics.usage import PROPERTY_NAME
from tests.conftest import execute, execute_errors, table_counts
from tests.test_attributes import DEFINE, SET, with_attributes

ARABIC_THREE = "\u0663"


@pytest.fixture
async def people(engine: AsyncEngine, metrics: MetricsEngine) -> dict[str, str]:
    return await with_attributes(engine, metrics)


@pytest.mark.parametrize(
    ("text", "value"), [("0", 0), ("-12", -12), ("007", 7), (str(2**70), 2**70)]
)
def test_an_integer_is_ascii_digits_with_an_optional_minus(text: str, value: int) -> None:
    assert strict.integer(text) == value


@pytest.mark.parametrize("text", [ARABIC_THREE, "1_0", " 1", "1 ", "+1", "1.0", "", "-", "0x1"])
def test_other_integer_spellings_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a whole number"):
        strict.integer(text)


@pytest.mark.parametrize("text", ["20240101", "2024-W01-1", "2024-001", " 2024-01-01", "2024-1-1"])
def test_a_day_is_written_yyyy_mm_dd_only(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a date \(YYYY-MM-DD\)"):
        strict.day(text)


@pytest.mark.parametrize("text", [ARABIC_THREE, "1_000", "1,5", "", "."])
def test_other_number_spellings_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a number"):
        strict.decimal(text)


@pytest.mark.parametrize(("text", "value"), [("25.5", "25.5"), ("-.5", "-0.5"), ("1e3", "1E+3")])
def test_a_decimal_keeps_its_ascii_forms(text: str, value: str) -> None:
    assert str(strict.decimal(text)) == value


async def test_ids_in_other_spellings_name_no_customer(
    engine: AsyncEngine, metrics: MetricsEngine
) -> None:
    for text in (ARABIC_THREE, " 1", "+1", "1_0"):
        [error] = await execute_errors(
            metrics, "query($id: ID!) { customer(id: $id) { id } }", {"id": text}
        )
        assert error["extensions"]["code"] == "BAD_USER_INPUT", text
        assert f"customer id {text!r} is not a customer id" in error["message"]


@pytest.mark.parametrize("day", ["20240101", "2024-W01-1"])
async def test_the_date_scalar_takes_yyyy_mm_dd_only(metrics: MetricsEngine, day: str) -> None:
    [error] = await execute_errors(
        metrics, "query($at: Date!) { snapshot(at: $at) { mrr } }", {"at": day}
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert day in error["message"]


async def test_an_empty_currency_is_refused_not_read_as_the_base(metrics: MetricsEngine) -> None:
    [error] = await execute_errors(metrics, '{ snapshot(spec: {currency: ""}) { mrr } }')
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "currency '' is not an ISO 4217 code" in error["message"]


async def test_an_attribute_key_ending_in_a_newline_is_refused(metrics: MetricsEngine) -> None:
    [error] = await execute_errors(
        metrics, DEFINE, {"key": "tier\n", "label": "Tier", "type": "STRING"}
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert await execute(metrics, "{ attributes { key } }") == {"attributes": []}


@pytest.mark.parametrize(
    ("key", "text", "problem"),
    [
        ("seats", ARABIC_THREE, f"seats: {ARABIC_THREE!r} is not a number (type number)"),
        ("seats", "1_0", "seats: '1_0' is not a number (type number)"),
        ("renewal", "20250101", "renewal: '20250101' is not a date (YYYY-MM-DD) (type date)"),
        (
            "renewal",
            "0001-01-01",
            "renewal: '0001-01-01' is outside 1900-01-01..2200-12-31 (type date)",
        ),
    ],
)
async def test_attribute_values_in_other_forms_are_refused(
    engine: AsyncEngine,
    metrics: MetricsEngine,
    people: dict[str, str],
    key: str,
    text: str,
    problem: str,
) -> None:
    before = await table_counts(engine)
    [error] = await execute_errors(
        metrics, SET, {"id": people["D"], "values": [{"key": key, "value": text}]}
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == problem
    assert await table_counts(engine) == before


async def test_an_attribute_given_twice_is_refused(
    engine: AsyncEngine, metrics: MetricsEngine, people: dict[str, str]
) -> None:
    before = await table_counts(engine)
    twice = [{"key": "seats", "value": "4"}, {"key": "seats", "value": "5"}]
    [error] = await execute_errors(metrics, SET, {"id": people["D"], "values": twice})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"] == "seats: given 2 times; give each key once"
    assert await table_counts(engine) == before


@pytest.mark.parametrize("name", ["model\n", "model\r\n", ""])
def test_a_property_name_ending_in_a_newline_is_not_a_name(name: str) -> None:
    assert PROPERTY_NAME.match(name) is None
    assert PROPERTY_NAME.match("model") is not None


async def test_names_ending_in_a_newline_are_refused(metrics: MetricsEngine) -> None:
    """A usage metric's name: its pattern's `$` matched before a final newline."""
    create = """mutation($input: UsageMetricInput!) { createUsageMetric(input: $input) { name } }"""
    metric = {"name": "calls\n", "eventName": "api_call", "aggregation": "COUNT"}
    [error] = await execute_errors(metrics, create, {"input": metric})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "'calls\\n'" in error["message"]
    metric["name"] = "calls"
    assert await execute(metrics, create, {"input": metric}) == {
        "createUsageMetric": {"name": "calls"}
    }
