"""Client commands of `tidemill`: they send the persisted documents in `queries/` to a running
server (TIDEMILL_URL) and print a table, JSON or CSV."""

from __future__ import annotations

import datetime
import json
from enum import StrEnum
from typing import Annotated, Any

import typer

from app.cli.common import (
    AtOption,
    CompareOption,
    DimensionOption,
    EndOption,
    FilterOption,
    FormatOption,
    IntervalChoice,
    IntervalOption,
    SegmentOption,
    StartOption,
    fail,
)
from app.cli.output import Format, cell, render
from app.config import load_settings

MRR_FIELDS = [
    "mrr",
    "customers",
    "arpa",
    "new",
    "expansion",
    "contraction",
    "churn",
    "reactivation",
    "netNewMrr",
]
SUMMARY_METRICS = [
    "mrr",
    "arr",
    "customers",
    "arpa",
    "netNewMrr",
    "churn",
    "customerChurnRate",
    "mrrChurnRate",
    "nrr",
    "quickRatio",
    "ltv",
]

mrr_app = typer.Typer(help="MRR: today, on a day, as a series, or broken down.")


def spec(
    dimensions: list[str] | None,
    filters: list[str] | None,
    segment: str | None = None,
    compare: list[str] | None = None,
) -> dict[str, Any]:
    """--dimension, --filter, --segment and --compare options as a QuerySpecInput."""
    parsed = []
    for item in filters or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise fail(f"--filter {item!r} is not key=value")
        values = value.split(",")
        parsed.append({"field": key, "op": "IN" if len(values) > 1 else "EQ", "values": values})
    return {
        "dimensions": dimensions or [],
        "filters": parsed,
        "segment": segment,
        "compareSegments": compare or [],
    }


def query(name: str, variables: dict[str, Any]) -> dict[str, Any]:
    from app.cli.client import ClientError, run

    try:
        return run(load_settings(), name, variables)
    except ClientError as error:
        raise fail(str(error)) from None


def _today() -> datetime.date:
    return datetime.datetime.now(datetime.UTC).date()


def date_range(
    start: datetime.datetime | None, end: datetime.datetime | None, months: int = 12
) -> tuple[str, str]:
    """[start, end] with defaults: end today, start the first of the month `months` back."""
    last = end.date() if end else _today()
    first = start.date() if start else last.replace(day=1)
    for _ in range(0 if start else months):
        first = (first - datetime.timedelta(days=1)).replace(day=1)
    return first.isoformat(), last.isoformat()


def _series_variables(
    start: datetime.datetime | None,
    end: datetime.datetime | None,
    interval: IntervalChoice,
    query_spec: dict[str, Any],
) -> dict[str, Any]:
    first, last = date_range(start, end)
    return {"start": first, "end": last, "interval": interval.name, "spec": query_spec}


def _point_rows(points: list[dict[str, Any]], fields: list[str]) -> list[dict[str, Any]]:
    return [{"date": p["date"], **{f: p[f] for f in fields}} for p in points]


def _mrr_like(
    fields: list[str],
    at: datetime.datetime | None,
    start: datetime.datetime | None,
    end: datetime.datetime | None,
    interval: IntervalChoice,
    filters: list[str] | None,
    segment: str | None,
    fmt: Format,
) -> None:
    query_spec = spec(None, filters, segment)
    if start is None and end is None:
        day = at.date().isoformat() if at else None
        data = query("MrrSnapshot", {"at": day, "spec": query_spec})["snapshot"]
        render([{"date": data["date"], **{f: data[f] for f in fields if f in data}}], fmt)
        return
    series = query("MrrSeries", _series_variables(start, end, interval, query_spec))["series"]
    render(_point_rows(series["points"], fields), fmt, currency=series["currency"])


@mrr_app.callback(invoke_without_command=True)
def mrr(
    context: typer.Context,
    at: AtOption = None,
    start: StartOption = None,
    end: EndOption = None,
    interval: IntervalOption = IntervalChoice.MONTH,
    filters: FilterOption = None,
    segment: SegmentOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """MRR today (or --at a day), or a series with --start/--end [--interval]."""
    if context.invoked_subcommand is None:
        _mrr_like(MRR_FIELDS, at, start, end, interval, filters, segment, fmt)


@mrr_app.command("breakdown")
def mrr_breakdown(
    dimension: DimensionOption = None,
    compare: CompareOption = None,
    start: StartOption = None,
    end: EndOption = None,
    interval: IntervalOption = IntervalChoice.MONTH,
    filters: FilterOption = None,
    segment: SegmentOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """MRR per value of --dimension (plan, currency, plan_interval, customer_country,
    attr.<key>, ...) and/or per --compare segment."""
    if not dimension and not compare:
        raise fail(
            "give at least one --dimension (see `metrics` in GraphiQL for the names) "
            "or --compare segment"
        )
    variables = _series_variables(start, end, interval, spec(dimension, filters, segment, compare))
    series = query("MrrBreakdown", variables)["series"]
    rows = [
        {"key": entry["label"], "date": p["date"], **{f: p[f] for f in MRR_FIELDS}}
        for entry in series["breakdown"]
        for p in entry["points"]
    ]
    render(rows, fmt, currency=series["currency"])


def arr(
    at: AtOption = None,
    start: StartOption = None,
    end: EndOption = None,
    interval: IntervalOption = IntervalChoice.MONTH,
    filters: FilterOption = None,
    segment: SegmentOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """ARR (12 x MRR) today, --at a day, or as a series."""
    _mrr_like(["arr", "customers"], at, start, end, interval, filters, segment, fmt)


def summary(
    start: StartOption = None,
    end: EndOption = None,
    interval: IntervalOption = IntervalChoice.MONTH,
    filters: FilterOption = None,
    segment: SegmentOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Headline numbers (MRR, ARR, customers, ARPA, churn, NRR, LTV, trial conversion): the
    last period against the one before."""
    first, last = date_range(start, end, months=1)
    variables = {
        "start": first,
        "end": last,
        "interval": interval.name,
        "spec": spec(None, filters, segment),
    }
    data = query("Summary", variables)
    series = data["series"]
    rows = [{"metric": name, **series[name]} for name in SUMMARY_METRICS]
    rows.append(_trial_summary(data["trials"]["trialConversion"]))
    if fmt is Format.TABLE:
        rows = [
            {
                "metric": row["metric"],
                "current": cell(row["metric"], row["current"]),
                "previous": cell(row["metric"], row["previous"]),
                "change": cell("percentageChange", row["percentageChange"]),
            }
            for row in rows
        ]
    render(rows, fmt, currency=series["currency"], title=f"{first} to {last}")


def _trial_summary(points: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [p["conversionRate"] for p in points]
    current = rates[-1] if rates else None
    previous = rates[-2] if len(rates) > 1 else None
    change = (current - previous) / abs(previous) if current is not None and previous else None
    return {
        "metric": "trialConversion",
        "current": current,
        "previous": previous,
        "percentageChange": change,
    }


def churn(
    churn_type: Annotated[str, typer.Option("--type", help="logo or revenue")] = "revenue",
    start: StartOption = None,
    end: EndOption = None,
    filters: FilterOption = None,
    segment: SegmentOption = None,
    first: Annotated[int, typer.Option(help="Events per page (1-500).")] = 100,
    after: Annotated[str | None, typer.Option(help="Cursor of the previous page.")] = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Churned customers (--type logo) or revenue-churn events (--type revenue)."""
    if churn_type not in {"logo", "revenue"}:
        raise fail(f"--type {churn_type!r} is not logo or revenue")
    first_day, last_day = date_range(start, end, months=1)
    variables = {
        "start": first_day,
        "end": last_day,
        "spec": spec(None, filters, segment),
        "first": first,
        "after": after,
        "logo": churn_type == "logo",
    }
    report = query("Churn", variables)["churn"]
    page = report["churnedCustomers" if churn_type == "logo" else "revenueChurn"]
    rows = [
        {
            "day": e["day"],
            "customer": e["externalId"],
            "name": e["name"],
            "kind": e["kind"],
            "amount": e["amount"],
            "mrrBefore": e["mrrBefore"],
            "plans": ", ".join(e["plans"]),
        }
        for e in page["events"]
    ]
    title = f"{page['totalCount']} events, {cell('churn', page['totalAmount'])} in total"
    if page["pageInfo"]["hasNextPage"]:
        title += f" (next page: --after {page['pageInfo']['endCursor']})"
    render(rows, fmt, currency=report["currency"], title=title)


def retention(
    start: StartOption = None,
    end: EndOption = None,
    filters: FilterOption = None,
    segment: SegmentOption = None,
    mrr_based: Annotated[bool, typer.Option("--mrr", help="MRR retention, not logos.")] = False,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """The cohort retention matrix: one row per cohort month, one column per month since."""
    first, last = date_range(start, end)
    cohorts = query(
        "Retention", {"start": first, "end": last, "spec": spec(None, filters, segment)}
    )
    if fmt is not Format.TABLE:
        render(cohorts["cohorts"], fmt)
        return
    field = "mrrRetention" if mrr_based else "customerRetention"
    rows = [
        {
            "key": c["cohort"][:7],
            "size": c["size"],
            **{f"M{cell_['offset']}": cell("nrr", cell_[field]) for cell_ in c["cells"]},
        }
        for c in cohorts["cohorts"]
    ]
    width = max((len(row) for row in rows), default=0)
    rows = [
        {**row, **{f"M{i}": "" for i in range(width - 2) if f"M{i}" not in row}} for row in rows
    ]
    render(rows, fmt, title=f"{field} by cohort")


def ltv(
    start: StartOption = None,
    end: EndOption = None,
    interval: IntervalOption = IntervalChoice.MONTH,
    filters: FilterOption = None,
    segment: SegmentOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """ARPA, the 6-month customer churn average and LTV per period."""
    series = query("Ltv", _series_variables(start, end, interval, spec(None, filters, segment)))[
        "series"
    ]
    fields = ["arpa", "customerChurnRate", "customerChurnAvg", "ltv"]
    render(_point_rows(series["points"], fields), fmt, currency=series["currency"])


def trials(
    start: StartOption = None,
    end: EndOption = None,
    interval: IntervalOption = IntervalChoice.MONTH,
    filters: FilterOption = None,
    segment: SegmentOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Trials started, converted and expired per period, and the funnel."""
    data = query("Trials", _series_variables(start, end, interval, spec(None, filters, segment)))
    fields = ["trialsStarted", "trialsConverted", "trialsExpired", "conversionRate"]
    funnel = data["trials"]["funnel"]
    title = (
        f"funnel: {funnel['started']} started, {funnel['converted']} converted, "
        f"{funnel['expired']} expired, {funnel['inProgress']} in progress"
    )
    render(_point_rows(data["trials"]["points"], fields), fmt, title=title)


class SortChoice(StrEnum):
    NAME = "name"
    MRR = "mrr"
    CUSTOMER_SINCE = "customer_since"


def customers(
    search: Annotated[
        str | None, typer.Option(help="Email (exact), name or external id (substring).")
    ] = None,
    sort: Annotated[SortChoice, typer.Option(help="name, mrr (highest first), customer_since")] = (
        SortChoice.NAME
    ),
    filters: FilterOption = None,
    segment: SegmentOption = None,
    first: Annotated[int, typer.Option(help="Customers per page (1-200).")] = 50,
    after: Annotated[str | None, typer.Option(help="Cursor of the previous page.")] = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Customers with their MRR today (in their own currency) and status."""
    variables = {
        "search": search,
        "sort": sort.name,
        "spec": spec(None, filters, segment),
        "first": first,
        "after": after,
    }
    page = query("Customers", variables)["customers"]
    rows = [
        {
            "id": e["node"]["id"],
            "customer": e["node"]["externalId"],
            "name": e["node"]["name"],
            "country": e["node"]["country"],
            "since": e["node"]["customerSince"],
            "mrr": e["node"]["mrr"],
            "currency": e["node"]["currency"],
            "status": e["node"]["status"],
        }
        for e in page["edges"]
    ]
    title = f"{page['totalCount']} customers"
    if page["pageInfo"]["hasNextPage"]:
        title += f" (next page: --after {page['pageInfo']['endCursor']})"
    render(rows, fmt, currency="each customer's currency", title=title)


def segments(fmt: FormatOption = Format.TABLE) -> None:
    """The saved segments (use an id with --segment or --compare)."""
    found = query("Segments", {})["segments"]
    if fmt is Format.TABLE:
        found = [{**s, "definition": json.dumps(s["definition"])} for s in found]
    render(found, fmt)


def register(cli: typer.Typer) -> None:
    cli.add_typer(mrr_app, name="mrr")
    for command in (arr, summary, churn, retention, ltv, trials, customers, segments):
        cli.command()(command)
