"""Compiled SQL of representative usage queries, snapshot-tested like the MRR series'
(tests/test_sql_snapshots.py); property names and values are always bound parameters."""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import pytest

from app.metrics.mrr import MRR_CUBE
from app.metrics.spec import Filter, FilterOp, Interval, QuerySpec
from app.metrics.usage import (
    USAGE_CUBE,
    Aggregation,
    PropertyFilter,
    QueryType,
    UsageMetric,
    UsageQuery,
    ValueType,
    Window,
    compile_usage,
    with_properties,
)
from tests.test_sql_snapshots import POSTGRESQL

SNAPSHOTS = Path(__file__).parent / "snapshots"
NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
YEAR = Window.days(datetime.date(2025, 1, 1), datetime.date(2025, 12, 31))


def metric(
    aggregation: Aggregation, query_type: QueryType, prop: str | None = "tokens"
) -> UsageMetric:
    filters = (PropertyFilter("model", FilterOp.IN, ("a", "b")),)
    return UsageMetric(
        1,
        "m",
        "",
        "api_call",
        aggregation,
        prop,
        ValueType.FLOAT,
        filters,
        query_type,
        None,
        NOW,
        NOW,
    )


def query(
    found: UsageMetric, spec: QuerySpec, interval: Interval | None = Interval.MONTH
) -> UsageQuery:
    cube = with_properties(USAGE_CUBE, spec)
    return UsageQuery(found, YEAR, spec, interval, cube, MRR_CUBE)


CASES = {
    "usage_simple_sum_by_property": query(
        metric(Aggregation.SUM, QueryType.SIMPLE),
        QuerySpec(("property.region",), (Filter("customer_country", FilterOp.NEQ, ("US",)),)),
    ),
    "usage_indexed_avg_by_country": query(
        metric(Aggregation.AVG, QueryType.INDEXED), QuerySpec(("customer_country",))
    ),
    "usage_indexed_sum_total": query(metric(Aggregation.SUM, QueryType.INDEXED), QuerySpec()),
    "usage_indexed_unique_count_total": query(
        metric(Aggregation.UNIQUE_COUNT, QueryType.INDEXED, "user"), QuerySpec()
    ),
    "usage_simple_latest_one_customer": query(
        metric(Aggregation.LATEST, QueryType.SIMPLE),
        QuerySpec(filters=(Filter("customer", FilterOp.EQ, ("7",)),)),
        None,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_usage_sql_matches_snapshot(name: str) -> None:
    text = str(compile_usage(CASES[name]).compile(dialect=POSTGRESQL)).strip() + "\n"
    path = SNAPSHOTS / f"{name}.sql"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.write_text(text)
    assert path.read_text() == text, f"{path.name} changed: review, then UPDATE_SNAPSHOTS=1"


def test_property_names_and_values_are_bound_parameters() -> None:
    hostile = "x'); DROP TABLE usage_event; --"
    found = UsageMetric(
        1,
        "m",
        "",
        "api_call",
        Aggregation.SUM,
        hostile,
        ValueType.FLOAT,
        (PropertyFilter(hostile, FilterOp.EQ, (hostile,)),),
        QueryType.SIMPLE,
        None,
        NOW,
        NOW,
    )
    compiled = compile_usage(query(found, QuerySpec())).compile(dialect=POSTGRESQL)
    assert hostile not in str(compiled)
    assert hostile in compiled.params.values()


def test_an_indexed_metric_reads_events_for_a_part_of_a_day() -> None:
    found = metric(Aggregation.SUM, QueryType.INDEXED)
    whole = str(compile_usage(query(found, QuerySpec())).compile(dialect=POSTGRESQL))
    noon = datetime.datetime(2025, 6, 1, 12, tzinfo=datetime.UTC)
    partial = UsageQuery(found, Window(noon, None), QuerySpec(), None, USAGE_CUBE, MRR_CUBE)
    part = str(compile_usage(partial).compile(dialect=POSTGRESQL))
    assert "FROM usage_rollup" in whole
    assert "usage_rollup" not in part
    assert "FROM usage_event" in part
