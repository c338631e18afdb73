"""The Python API and discovery: the same service, the same numbers as GraphQL."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app import MetricsEngine, QuerySpec
from app.errors import UserError
from app.metrics.spec import AnyOf, Filter, FilterOp, Not, SegmentSpec
from tests.conftest import execute, import_text
from tests.test_movements import COMPANY


async def test_query_gives_the_graphql_numbers(engine: AsyncEngine) -> None:
    await import_text(engine, COMPANY)
    metrics = MetricsEngine(engine)
    points = await metrics.query(
        "mrr", {"query_type": "series", "start": "2024-01-01", "end": "2024-04-30"}
    )
    data = await execute(
        metrics,
        """{ series(start: "2024-01-01", end: "2024-04-30") {
        points { mrr churn nrr ltv } } }""",
    )
    assert [(p.mrr, p.churn, p.nrr, p.ltv) for p in points] == [
        (p["mrr"], p["churn"], p["nrr"], p["ltv"]) for p in data["series"]["points"]
    ]
    pro = await metrics.query(
        "mrr",
        {"query_type": "snapshot", "at": date(2024, 3, 31)},
        spec=QuerySpec(filters=(Filter("plan", values=("Pro",)),)),
    )
    assert pro.mrr == 12000
    cohorts = await metrics.query("cohorts", {"start": "2024-01-01", "end": "2024-04-30"})
    assert [c.size for c in cohorts] == [3, 1, 1]
    churn = await metrics.query(
        "churn", {"start": "2024-01-01", "end": "2024-04-30", "type": "logo"}
    )
    assert churn.total_count == 2


async def test_query_refuses_unknown_metrics_and_bad_params(engine: AsyncEngine) -> None:
    metrics = MetricsEngine(engine)
    with pytest.raises(UserError, match="unknown metric or query type 'arpu'"):
        await metrics.query("arpu", {})
    with pytest.raises(UserError, match="interval 'fortnight' is not one of: day, week"):
        await metrics.query(
            "mrr", {"start": "2024-01-01", "end": "2024-02-01", "interval": "fortnight"}
        )
    with pytest.raises(UserError, match="start 'soon' is not a date"):
        await metrics.query("cohorts", {"start": "soon", "end": "2024-02-01"})


async def test_discovery_is_generated_from_the_declarations(engine: AsyncEngine) -> None:
    metrics = MetricsEngine(engine)
    data = await execute(
        metrics,
        """{ metrics { name unit fields { name unit }
        dimensions { name level } filters { name ops } } }""",
    )
    families = {m["name"]: m for m in data["metrics"]}
    assert list(families) == ["mrr", "cohorts", "trials", "churn"]
    mrr = families["mrr"]
    assert {d["name"]: d["level"] for d in mrr["dimensions"]}["plan"] == "subscription"
    assert [d["name"] for d in mrr["dimensions"]] == [
        d.name for d in (await metrics.available_metrics())[0].dimensions
    ]
    fields = {f["name"]: f["unit"] for f in mrr["fields"]}
    assert (fields["mrr"], fields["nrr"], fields["customers"], fields["date"]) == (
        "cents",
        "ratio",
        "count",
        "date",
    )
    introspected = await execute(metrics, '{ __type(name: "Point") { fields { name } } }')
    point_fields = {field["name"] for field in introspected["__type"]["fields"]}
    assert point_fields == set(fields), "every Point field is described in the catalog"
    assert "IN" in families["trials"]["filters"][0]["ops"]


async def test_segment_trees_in_a_python_spec(engine: AsyncEngine) -> None:
    await import_text(engine, COMPANY)
    metrics = MetricsEngine(engine)
    pro = Filter("plan", values=("Pro",))
    big = Filter("mrr", FilterOp.GTE, ("100",))  # MRR at the end of the range, major units
    day = {"start": "2024-03-31", "end": "2024-03-31", "interval": "day"}
    either = await metrics.query(
        "mrr", {"query_type": "series", **day}, spec=QuerySpec(segment=AnyOf((pro, big)))
    )
    assert [p.mrr for p in either] == [27000]  # A (150 a month) and C (120, on Pro)
    neither = await metrics.query(
        "mrr", {"query_type": "series", **day}, spec=QuerySpec(segment=Not(AnyOf((pro, big))))
    )
    assert [p.mrr for p in neither] == [3000]  # D; B and E are not active
    branches = (SegmentSpec("Pro", pro), SegmentSpec("Big", big))
    compared = await metrics.query(
        "mrr", {"query_type": "breakdown", **day}, spec=QuerySpec(compare=branches)
    )
    assert [(b.key, b.points[0].mrr) for b in compared] == [(("Pro",), 12000), (("Big",), 27000)]
