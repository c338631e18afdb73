"""Compiled SQL of representative queries is snapshot-tested: any change is a reviewable diff.

Regenerate with `UPDATE_SNAPSHOTS=1 make test` after an intended change.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from app.metrics.mrr import MRR_CUBE, compile_series
from app.metrics.spec import Filter, FilterOp, Interval, QuerySpec, SeriesRequest

SNAPSHOTS = Path(__file__).parent / "snapshots"
START, END = date(2024, 1, 1), date(2024, 12, 31)
# the default PostgreSQL dialect, typed (the dialect classes' constructors are not annotated)
POSTGRESQL = make_url("postgresql://").get_dialect()()

CASES = {
    "series_total_mrr_only": SeriesRequest(START, END, Interval.MONTH, fields=frozenset({"mrr"})),
    "series_total_all_fields": SeriesRequest(START, END, Interval.QUARTER),
    "series_by_country_filtered": SeriesRequest(
        START,
        END,
        Interval.MONTH,
        QuerySpec(("customer_country",), (Filter("customer_country", FilterOp.NEQ, ("US",)),)),
    ),
    "series_by_plan_in_currency": SeriesRequest(
        START,
        END,
        Interval.WEEK,
        QuerySpec(("plan",), (Filter("currency", FilterOp.IN, ("USD", "EUR")),)),
    ),
    "series_with_foreign_currency": SeriesRequest(START, END, Interval.MONTH),
    "series_by_interval_in_two_plans": SeriesRequest(
        START,
        END,
        Interval.MONTH,
        QuerySpec(("plan_interval",), (Filter("plan", FilterOp.IN, ("Basic", "Pro")),)),
    ),
}
PRESENT = {"series_with_foreign_currency": frozenset({"USD", "EUR"})}


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiled_sql_matches_snapshot(name: str) -> None:
    present = PRESENT.get(name, frozenset({"USD"}))
    statement = compile_series(MRR_CUBE, CASES[name], "USD", present)
    text = str(statement.compile(dialect=POSTGRESQL)).strip() + "\n"
    path = SNAPSHOTS / f"{name}.sql"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        path.write_text(text)
    assert path.read_text() == text, f"{path.name} changed: review, then UPDATE_SNAPSHOTS=1"


def test_values_are_bound_parameters_never_sql_text() -> None:
    hostile = "US'; DROP TABLE customer; --"
    request = SeriesRequest(
        START,
        END,
        Interval.MONTH,
        QuerySpec((), (Filter("customer_country", FilterOp.EQ, (hostile,)),)),
    )
    compiled = compile_series(MRR_CUBE, request).compile(dialect=POSTGRESQL)
    assert hostile not in str(compiled)
    assert hostile in compiled.params.values()
    assert compiled.params["start"] == START
    assert compiled.params["end"] == END
