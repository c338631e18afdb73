"""`tidemill usage metrics|value|series|top`: usage metrics from a running server (GraphQL)."""

from __future__ import annotations

import datetime
from typing import Annotated, Any

import typer

from app.cli.common import (
    CompareOption,
    DimensionOption,
    EndOption,
    FilterOption,
    FormatOption,
    Group,
    IntervalChoice,
    IntervalOption,
    SegmentOption,
    StartOption,
    fail,
)
from app.cli.metrics import date_range, query, show, spec
from app.cli.output import Format

usage_app = typer.Typer(
    cls=Group, help="Usage metrics: definitions, a customer's value, series, customers ranked."
)
MetricArgument = Annotated[str, typer.Argument(help="The metric's id or name.")]
MOMENT_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]
METRIC_COLUMNS = ["id", "name", "eventName", "aggregation", "property", "queryType"]


def metric_id(metric: str) -> str:
    """The id of a metric given by id or name (names are looked up among live metrics)."""
    if metric.isdigit():
        return metric
    found = query("UsageMetrics", {"includeDeleted": False})["usageMetrics"]
    ids = {item["name"]: item["id"] for item in found}
    if metric not in ids:
        known = ", ".join(sorted(ids)) or "none defined"
        raise fail(f"no usage metric named {metric!r}; metrics: {known}")
    return str(ids[metric])


@usage_app.command("metrics")
def metrics(
    deleted: Annotated[bool, typer.Option("--deleted", help="Include deleted metrics.")] = False,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """The usage metric definitions."""
    found = query("UsageMetrics", {"includeDeleted": deleted})["usageMetrics"]
    columns = METRIC_COLUMNS + (["deletedAt"] if deleted else [])
    empty = "no usage metrics yet (the createUsageMetric mutation defines one)"
    show(found, fmt, empty, columns=columns)


def _moment(value: datetime.datetime | None) -> str | None:
    return value.isoformat() if value else None


@usage_app.command("value")
def value(
    metric: MetricArgument,
    customer: Annotated[str, typer.Option("--customer", help="The customer's Tidemill id.")],
    start: Annotated[
        datetime.datetime | None,
        typer.Option("--from", formats=MOMENT_FORMATS, help="Included (UTC without offset)."),
    ] = None,
    end: Annotated[
        datetime.datetime | None,
        typer.Option("--to", formats=MOMENT_FORMATS, help="Excluded (UTC without offset)."),
    ] = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """One customer's value of a usage metric over [--from, --to) (default: all time)."""
    timeframe = {"from": _moment(start), "to": _moment(end)}
    variables = {"id": metric_id(metric), "customerId": customer, "timeframe": timeframe}
    found = query("UsageValue", variables)["usageMetricValue"]
    row: dict[str, Any] = {**found, **found.pop("timeframe")}
    show([row], fmt, "", columns=["name", "customerId", "value", "from", "to", "queryType"])


@usage_app.command("series")
def series(
    metric: MetricArgument,
    start: StartOption = None,
    end: EndOption = None,
    interval: IntervalOption = IntervalChoice.MONTH,
    dimension: DimensionOption = None,
    compare: CompareOption = None,
    filters: FilterOption = None,
    segment: SegmentOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """A usage metric per period (and per --dimension value: customer_country, plan, customer,
    attr.<key>, property.<name>; or per --compare segment)."""
    first, last = date_range(start, end)
    variables = {
        "id": metric_id(metric),
        "start": first,
        "end": last,
        "interval": interval.name,
        "spec": spec(dimension, filters, segment, compare),
    }
    found = query("UsageSeries", variables)["usageSeries"]
    if dimension or compare:
        rows = [{"key": b["label"], **p} for b in found["breakdown"] for p in b["points"]]
        show(rows, fmt, f"no usage in {first}..{last}", columns=["key", "date", "value"], keys=2)
        return
    show(found["points"], fmt, "", columns=["date", "endDate", "value"])


@usage_app.command("top")
def top(
    metric: MetricArgument,
    start: StartOption = None,
    end: EndOption = None,
    first: Annotated[int, typer.Option("--first", help="How many customers (1-1000).")] = 10,
    filters: FilterOption = None,
    segment: SegmentOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Customers ranked by a usage metric over [--start, --end] (default: this month), highest
    first, among those --filter and --segment keep."""
    first_day, last_day = date_range(start, end, months=0)
    variables = {
        "id": metric_id(metric),
        "start": first_day,
        "end": last_day,
        "first": first,
        "spec": spec(None, filters, segment),
    }
    found = query("UsageTop", variables)["usageTop"]
    rows = [
        {"customerId": r["customerId"], **(r["customer"] or {}), "value": r["value"]} for r in found
    ]
    columns = ["customerId", "externalId", "name", "value"]
    show(rows, fmt, f"no usage in {first_day}..{last_day}", columns=columns)
