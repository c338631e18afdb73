"""Client commands of `tidemill`: they send the persisted documents in `queries/` to a running
server (TIDEMILL_URL) and print a table, JSON or CSV (app/cli/output.py)."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping, Sequence
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
    Group,
    IntervalChoice,
    IntervalOption,
    SegmentOption,
    StartOption,
    fail,
)
from app.cli.output import Format, View, cell, render, typed, unit
from app.config import load_settings
from app.text import plural

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
SNAPSHOT_FIELDS = ["mrr", "arr", "customers", "arpa"]
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
TRIAL_FIELDS = ["trialsStarted", "trialsConverted", "trialsExpired", "conversionRate"]
LTV_FIELDS = ["arpa", "customerChurnRate", "customerChurnAvg", "ltv"]

mrr_app = typer.Typer(cls=Group, help="MRR: today, on a day, as a series, or broken down.")


def spec(
    dimensions: list[str] | None,
    filters: list[str] | None,
    segment: str | None = None,
    compare: list[str] | None = None,
) -> dict[str, Any]:
    """--dimension, --filter, --segment and --compare options as a QuerySpecInput."""
    return {
        "dimensions": dimensions or [],
        "filters": [filter_input(item) for item in filters or []],
        "segment": segment,
        "compareSegments": compare or [],
    }


# --filter KEY<op>VALUE: the first operator after the key (a key holds none of `!<>=~`)
FILTER = re.compile(r"([^!<>=~]+)(!=|>=|<=|=|>|<|~)(.*)", re.DOTALL)
SINGLE_VALUED = {">": "GT", ">=": "GTE", "<": "LT", "<=": "LTE", "~": "CONTAINS"}
FILTER_SYNTAX = (
    "key=value, key=v1,v2 (any of), key!=value, key!=v1,v2 (none of), key>value, key>=value, "
    "key<value, key<=value, key~text (contains)"
)


def filter_input(item: str) -> dict[str, Any]:
    """One --filter as a FilterInput (FILTER_SYNTAX; spaces around the operator and the
    commas are ignored); the server checks the field, and the operator and values against
    the field's type."""
    found = FILTER.fullmatch(item)
    if found is None or not found[1].strip():
        raise fail(f"--filter {item!r} is not a condition; write {FILTER_SYNTAX}")
    key, sign, value = found[1].strip(), found[2], found[3]
    values = [value.strip()] if sign in SINGLE_VALUED else [p.strip() for p in value.split(",")]
    if not all(values):  # `plan=`, `plan=a,,b`: a value left out, not a value to match
        raise fail(f"--filter {item!r} has an empty value; write {FILTER_SYNTAX}")
    if sign in SINGLE_VALUED:
        return {"field": key, "op": SINGLE_VALUED[sign], "values": values}
    many = len(values) > 1
    op = ("IN" if many else "EQ") if sign == "=" else ("NOT_IN" if many else "NEQ")
    return {"field": key, "op": op, "values": values}


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


def no_data(first: str, last: str, what: str = "no data") -> Callable[[], str]:
    """The message for an empty result, with the span of the stored data (one more request)."""

    def message() -> str:
        where = f"on {first}" if first == last else f"in {first}..{last}"
        return f"{what} {where}{_span()}"

    return message


def _span() -> str:
    """' (data spans FIRST..LAST)', or '' from a server that cannot tell."""
    from app.cli.client import ClientError, run

    try:
        span = run(load_settings(), "DataRange", {})["dataRange"]
    except ClientError:
        return ""
    if not span["first"]:
        return " (no data stored yet)"
    return f" (data spans {span['first']}..{span['last']})"


def is_blank(rows: Sequence[Mapping[str, Any]], fields: Sequence[str]) -> bool:
    """Nothing happened: every value is 0 or null (a range before or after the data)."""
    return all(not row.get(field) for row in rows for field in fields)


def _values(source: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    return {field: typed(unit(field), source.get(field)) for field in fields}


def _point_rows(
    points: list[dict[str, Any]], fields: list[str], currency: str
) -> list[dict[str, Any]]:
    return [
        {"date": p["date"], "endDate": p["endDate"], **_values(p, fields), "currency": currency}
        for p in points
    ]


def show(
    rows: Sequence[Mapping[str, Any]],
    fmt: Format,
    empty: Callable[[], str] | str,
    **table: Any,
) -> None:
    """Print `rows` (the message of `empty` instead when there are none)."""
    message = (empty if isinstance(empty, str) else empty()) if not rows else ""
    render(View(rows, empty=message, **table), fmt)


def _series_variables(
    start: datetime.datetime | None,
    end: datetime.datetime | None,
    interval: IntervalChoice,
    query_spec: dict[str, Any],
) -> dict[str, Any]:
    first, last = date_range(start, end)
    return {"start": first, "end": last, "interval": interval.name, "spec": query_spec}


def _snapshot(fields: list[str], at: datetime.datetime | None, fmt: Format, spec_: Any) -> None:
    day = (at.date() if at else _today()).isoformat()
    variables = {"start": day, "end": day, "interval": "DAY", "spec": spec_}
    series = query("MrrSeries", variables)["series"]
    [point] = series["points"]
    rows = [{"date": day, **_values(point, fields), "currency": series["currency"]}]
    blank = is_blank(rows, fields)
    table = {"columns": ["date", *fields], "caption": f"amounts in {series['currency']}"}
    show([] if blank else rows, fmt, no_data(day, day), **table)


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
        _snapshot([f for f in fields if f in SNAPSHOT_FIELDS], at, fmt, query_spec)
        return
    variables = _series_variables(start, end, interval, query_spec)
    series = query("MrrSeries", variables)["series"]
    rows = _point_rows(series["points"], fields, series["currency"])
    empty = no_data(variables["start"], variables["end"])
    table = {"columns": ["date", *fields], "caption": f"amounts in {series['currency']}"}
    show([] if is_blank(rows, fields) else rows, fmt, empty, **table)


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
        {"key": entry["label"], **row}
        for entry in series["breakdown"]
        for row in _point_rows(entry["points"], MRR_FIELDS, series["currency"])
    ]
    table = {
        "columns": ["key", "date", *MRR_FIELDS],
        "keys": 2,
        "caption": f"amounts in {series['currency']}",
    }
    empty = no_data(variables["start"], variables["end"])
    show(rows, fmt, empty, **table)


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


def _summary_row(metric: str, values: Mapping[str, Any], period: dict[str, str]) -> dict[str, Any]:
    kind = unit(metric)
    return {
        "metric": metric,
        "unit": kind,
        "current": typed(kind, values["current"]),
        "previous": typed(kind, values["previous"]),
        "percentageChange": values["percentageChange"],
        **period,
    }


def _summary_cells(row: Mapping[str, Any]) -> dict[str, str]:
    return {
        "metric": row["metric"],
        "current": cell(row["metric"], row["current"]),
        "previous": cell(row["metric"], row["previous"]),
        "change": cell("percentageChange", row["percentageChange"]),
    }


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
    period = {"start": first, "end": last, "currency": series["currency"]}
    values = {name: series[name] for name in SUMMARY_METRICS}
    values["trialConversion"] = _trial_summary(data["trials"]["trialConversion"])
    rows = [_summary_row(name, found, period) for name, found in values.items()]
    blank = is_blank(rows, ["current", "previous"])
    table = {
        "table_rows": [_summary_cells(row) for row in rows],
        "title": f"{first} to {last}",
        "caption": f"amounts in {series['currency']}",
    }
    show([] if blank else rows, fmt, no_data(first, last), **table)


def _trial_summary(points: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [p["conversionRate"] for p in points]
    current = rates[-1] if rates else None
    previous = rates[-2] if len(rates) > 1 else None
    change = (current - previous) / abs(previous) if current is not None and previous else None
    return {"current": current, "previous": previous, "percentageChange": change}


CHURN_COLUMNS = ["day", "externalId", "name", "kind", "amount", "mrrBefore", "mrrAfter", "plans"]


def _churn_title(page: Mapping[str, Any], noun: str) -> str:
    title = f"{plural(page['totalCount'], noun)}, {cell('churn', page['totalAmount'])} in total"
    if page["pageInfo"]["hasNextPage"]:
        title += f" (next page: --after {page['pageInfo']['endCursor']})"
    return title


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
    meta = {
        "currency": report["currency"],
        "totalCount": page["totalCount"],
        "totalAmount": page["totalAmount"],
        **page["pageInfo"],
    }
    rows = [{field: event[field] for field in CHURN_COLUMNS} | meta for event in page["events"]]
    noun = "churned customer" if churn_type == "logo" else "churn event"
    table = {
        "columns": CHURN_COLUMNS,
        "keys": 2,
        "title": _churn_title(page, noun),
        "caption": f"amounts in {report['currency']}",
    }
    empty = no_data(first_day, last_day, f"no {noun}s")
    show(rows, fmt, empty, **table)


RETENTION_CELL = ["offset", "month", "activeCustomers", "mrr", "customerRetention", "mrrRetention"]


def _retention_rows(cohorts: list[dict[str, Any]], currency: str) -> list[dict[str, Any]]:
    return [
        {
            "cohort": c["cohort"],
            "size": c["size"],
            "cohortLtv": c["ltv"],
            **{field: cell_[field] for field in RETENTION_CELL},
            "currency": currency,
        }
        for c in cohorts
        for cell_ in c["cells"]
    ]


def _retention_matrix(cohorts: list[dict[str, Any]], field: str) -> list[dict[str, Any]]:
    width = max((len(c["cells"]) for c in cohorts), default=0)
    rows = []
    for c in cohorts:
        by_offset = {item["offset"]: cell("nrr", item[field]) for item in c["cells"]}
        months = {f"M{i}": by_offset.get(i, "") for i in range(width)}
        rows.append({"cohort": c["cohort"][:7], "size": cell("size", c["size"]), **months})
    return rows


def retention(
    start: StartOption = None,
    end: EndOption = None,
    filters: FilterOption = None,
    segment: SegmentOption = None,
    mrr_based: Annotated[bool, typer.Option("--mrr", help="MRR retention, not logos.")] = False,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """The cohort retention matrix: one row per cohort month, one column per month since
    (JSON and CSV: one row per cohort and month, with customers, MRR and both rates)."""
    first, last = date_range(start, end)
    data = query("Retention", {"start": first, "end": last, "spec": spec(None, filters, segment)})
    cohorts = data["cohorts"]
    field = "mrrRetention" if mrr_based else "customerRetention"
    table = {
        "table_rows": _retention_matrix(cohorts, field),
        "keys": 2,
        "title": f"{field} by cohort",
    }
    rows = _retention_rows(cohorts, data["series"]["currency"])
    show(rows, fmt, no_data(first, last, "no cohorts"), **table)


def ltv(
    start: StartOption = None,
    end: EndOption = None,
    interval: IntervalOption = IntervalChoice.MONTH,
    filters: FilterOption = None,
    segment: SegmentOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """ARPA, the 6-month customer churn average and LTV per period."""
    variables = _series_variables(start, end, interval, spec(None, filters, segment))
    series = query("Ltv", variables)["series"]
    rows = _point_rows(series["points"], LTV_FIELDS, series["currency"])
    table = {"columns": ["date", *LTV_FIELDS], "caption": f"amounts in {series['currency']}"}
    empty = no_data(variables["start"], variables["end"])
    show([] if is_blank(rows, LTV_FIELDS) else rows, fmt, empty, **table)


def _funnel_title(funnel: Mapping[str, Any]) -> str:
    rate = cell("conversionRate", funnel["conversionRate"])
    return (
        f"funnel: {funnel['started']} started, {funnel['converted']} converted, "
        f"{funnel['expired']} expired, {funnel['inProgress']} in progress ({rate} converted)"
    )


def trials(
    start: StartOption = None,
    end: EndOption = None,
    interval: IntervalOption = IntervalChoice.MONTH,
    filters: FilterOption = None,
    segment: SegmentOption = None,
    fmt: FormatOption = Format.TABLE,
) -> None:
    """Trials started, converted and expired per period, and the funnel of the whole range
    (JSON and CSV: funnel* columns on every row)."""
    variables = _series_variables(start, end, interval, spec(None, filters, segment))
    data = query("Trials", variables)["trials"]
    funnel = data["funnel"]
    totals = {f"funnel{name[0].upper()}{name[1:]}": value for name, value in funnel.items()}
    rows = [
        {"date": p["date"], "endDate": p["endDate"], **_values(p, TRIAL_FIELDS), **totals}
        for p in data["points"]
    ]
    blank = is_blank(rows, [*TRIAL_FIELDS, "funnelInProgress"])
    table = {"columns": ["date", *TRIAL_FIELDS], "title": _funnel_title(funnel)}
    empty = no_data(variables["start"], variables["end"], "no trials")
    show([] if blank else rows, fmt, empty, **table)


class SortChoice(StrEnum):
    NAME = "name"
    MRR = "mrr"
    CUSTOMER_SINCE = "customer_since"


CUSTOMER_FIELDS = [
    "id",
    "externalId",
    "name",
    "email",
    "country",
    "customerSince",
    "mrr",
    "currency",
    "status",
    "churnedAt",
]
CUSTOMER_TABLE = ["id", "externalId", "name", "country", "customerSince", "mrr", "currency"]


def _customers_title(page: Mapping[str, Any]) -> str:
    title = plural(page["totalCount"], "customer")
    if page["pageInfo"]["hasNextPage"]:
        title += f" (next page: --after {page['pageInfo']['endCursor']})"
    return title


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
    """Customers with their MRR today (in their own currency) and status (JSON and CSV: each
    row's cursor, totalCount and hasNextPage; --after the last cursor gives the next page)."""
    variables = {
        "search": search,
        "sort": sort.name,
        "spec": spec(None, filters, segment),
        "first": first,
        "after": after,
    }
    page = query("Customers", variables)["customers"]
    meta = {"totalCount": page["totalCount"], "hasNextPage": page["pageInfo"]["hasNextPage"]}
    rows = [
        {field: edge["node"][field] for field in CUSTOMER_FIELDS} | {"cursor": edge["cursor"]}
        for edge in page["edges"]
    ]
    table = {
        "columns": [*CUSTOMER_TABLE, "status"],
        "keys": 2,
        "title": _customers_title(page),
        "caption": "amounts in each customer's currency",
    }
    show([row | meta for row in rows], fmt, "no customers match", **table)


def segments(fmt: FormatOption = Format.TABLE) -> None:
    """The saved segments (use an id with --segment or --compare)."""
    found = query("Segments", {})["segments"]
    empty = "no saved segments yet (the createSegment mutation saves one)"
    show(found, fmt, empty, columns=["id", "name", "description", "definition"])


def register(cli: typer.Typer) -> None:
    from app.cli.usage import usage_app

    cli.add_typer(mrr_app, name="mrr")
    cli.add_typer(usage_app, name="usage")
    for command in (arr, summary, churn, retention, ltv, trials, customers, segments):
        cli.command()(command)
