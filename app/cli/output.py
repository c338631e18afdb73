"""Printing results for the CLI: a rich table (default), JSON or CSV.

A command builds a `View`: its rows are the data, printed as they are by `--format json` and
`--format csv` (money as integer cents, counts as integers, rates as fractions); the table shows
the same rows formatted (or its own `table_rows`, e.g. the retention matrix). A table never cuts
a value: when it is wider than the terminal, its columns are split over several tables that
each repeat the leading key columns; in a pipe or a file (no terminal, no COLUMNS) it is printed
at its natural width.
"""

from __future__ import annotations

import csv
import enum
import io
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from rich.cells import cell_len
from rich.console import Console, JustifyMethod
from rich.table import Table
from rich.text import Text

MONEY_FIELDS = frozenset(
    {
        "mrr",
        "arr",
        "arpa",
        "asp",
        "new",
        "expansion",
        "contraction",
        "churn",
        "reactivation",
        "netNewMrr",
        "ltv",
        "cohortLtv",
        "amount",
        "mrrBefore",
        "mrrAfter",
        "totalAmount",
        "fxAdjustment",
    }
)
RATE_FIELDS = frozenset(
    {
        "customerChurnRate",
        "mrrChurnRate",
        "netMrrChurnRate",
        "customerRetentionRate",
        "mrrRetentionRate",
        "nrr",
        "grr",
        "percentageChange",
        "customerChurnAvg",
        "conversionRate",
        "funnelConversionRate",
        "customerRetention",
        "mrrRetention",
        "trialConversion",
    }
)
COUNT_FIELDS = frozenset(
    {
        "customers",
        "size",
        "offset",
        "activeCustomers",
        "churnedCustomers",
        "trialsStarted",
        "trialsConverted",
        "trialsExpired",
        "funnelStarted",
        "funnelConverted",
        "funnelExpired",
        "funnelInProgress",
        "totalCount",
    }
)
RATIO_FIELDS = frozenset({"quickRatio"})
NUMBER_FIELDS = frozenset({"value"})  # a usage metric's value (the API's Float)


class Format(enum.StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


def unit(field: str) -> str:
    """How a field's values read: cents, count, rate (a fraction), ratio, number, or text."""
    if field in MONEY_FIELDS:
        return "cents"
    if field in COUNT_FIELDS:
        return "count"
    if field in RATE_FIELDS:
        return "rate"
    if field in RATIO_FIELDS:
        return "ratio"
    if field in NUMBER_FIELDS:
        return "number"
    return "text"


def typed(kind: str, value: Any) -> Any:
    """A value as data of `kind`: integer cents and counts (the API's Float summaries are
    whole numbers of them), fractions as floats."""
    if value is None:
        return None
    if kind in {"cents", "count"}:
        return round(value)
    if kind in {"rate", "ratio"}:
        return float(value)
    return value


def money(cents: int | float) -> str:
    """Cents as an amount of the major unit with thousands separators: 1234567 -> 12,345.67."""
    amount = Decimal(round(cents)) / 100
    return f"{amount:,.2f}"


def number(value: float) -> str:
    """A number as it was given, with thousands separators: 537292.0 -> 537,292; 5.25 ->
    5.25 (the shortest text that reads back as the same float)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        value = int(value)
    return f"{value:,}"


def formatted(kind: str, value: Any) -> str:
    """A value as the table shows it."""
    if value is None or value == "":
        return "—" if value is None else ""
    match kind:
        case "cents":
            return money(value)
        case "count":
            return f"{round(value):,}"
        case "rate":
            return f"{100 * float(value):.2f} %"
        case "ratio":
            return f"{float(value):,.2f}"
        case "number" if isinstance(value, int | float) and not isinstance(value, bool):
            return number(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def cell(field: str, value: Any) -> str:
    return formatted(unit(field), value)


@dataclass(frozen=True)
class View:
    """What a command prints. `rows` are the data (JSON and CSV); the table shows `columns` of
    them (default: all), or `table_rows` when it has a shape of its own."""

    rows: Sequence[Mapping[str, Any]]
    columns: Sequence[str] = ()
    table_rows: Sequence[Mapping[str, Any]] | None = None
    title: str = ""
    caption: str = ""
    keys: int = 1  # leading columns repeated when a wide table is split
    empty: str = "no data"  # said instead of an empty result


def render(view: View, fmt: Format, console: Console | None = None) -> None:
    console = console or Console()
    if not view.rows:
        _say_empty(view.empty, fmt, console)
    elif fmt is Format.JSON:
        console.print_json(json.dumps([dict(row) for row in view.rows]))
    elif fmt is Format.CSV:
        console.out(to_csv(view.rows), end="", highlight=False)
    else:
        print_table(view, console)


def _say_empty(message: str, fmt: Format, console: Console) -> None:
    """The message, on stderr when stdout carries data (JSON: an empty list, CSV: nothing)."""
    if fmt is Format.TABLE:
        console.print(Text(message))
        return
    if fmt is Format.JSON:
        console.out("[]", highlight=False)
    Console(stderr=True).print(Text(message))


def csv_header(field: str) -> str:
    """CSV has no types: money columns say their unit in their name."""
    return f"{field}_cents" if field in MONEY_FIELDS else field


def _csv_value(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return "; ".join(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    columns = list(rows[0])
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([csv_header(column) for column in columns])
    for row in rows:
        writer.writerow([_csv_value(row.get(column)) for column in columns])
    return buffer.getvalue()


def _table_cells(view: View) -> tuple[list[str], list[list[str]]]:
    """The table's header and cell texts (`table_rows` come formatted already)."""
    if view.table_rows is not None:
        columns = list(view.table_rows[0]) if view.table_rows else []
        return columns, [[str(row[column]) for column in columns] for row in view.table_rows]
    columns = list(view.columns or view.rows[0])
    return columns, [[cell(column, row.get(column)) for column in columns] for row in view.rows]


NUMERIC = re.compile(r"^(-?[\d,]+(\.\d+)?( %)?|—|)$")


def _justify(cells: Sequence[Sequence[str]], index: int) -> JustifyMethod:
    """Numbers right-aligned, text left."""
    numeric = all(NUMERIC.match(row[index]) for row in cells)
    return "right" if numeric and any(row[index] for row in cells) else "left"


def _width(widths: Sequence[int]) -> int:
    """A rich table's width: each column padded by 1 on each side, plus its borders."""
    return sum(widths) + 3 * len(widths) + 1


def available_width(console: Console) -> int | None:
    """The terminal's width, or COLUMNS; None in a pipe or file (no limit)."""
    if console.is_terminal or os.environ.get("COLUMNS", "").isdigit():
        return console.width
    return None


def column_groups(widths: Sequence[int], keys: int, limit: int | None) -> list[list[int]]:
    """Column indexes per table: the key columns, then as many others as fit in `limit`."""
    leading = list(range(min(keys, len(widths))))
    groups: list[list[int]] = []
    current = list(leading)
    for index in range(len(leading), len(widths)):
        wider = [*current, index]
        if limit is None or current == leading or _width([widths[i] for i in wider]) <= limit:
            current = wider
            continue
        groups.append(current)
        current = [*leading, index]
    groups.append(current)
    return groups


def print_table(view: View, console: Console) -> None:
    columns, cells = _table_cells(view)
    widths = [
        max([cell_len(column), *(cell_len(row[i]) for row in cells)])
        for i, column in enumerate(columns)
    ]
    limit = available_width(console)
    groups = column_groups(widths, view.keys, limit)
    for number, group in enumerate(groups):
        table = Table(
            title=view.title if number == 0 and view.title else None,
            caption=view.caption if number == len(groups) - 1 and view.caption else None,
        )
        for index in group:
            justify = _justify(cells, index)
            table.add_column(columns[index], justify=justify, overflow="fold")
        for row in cells:
            table.add_row(*(Text(row[index]) for index in group))
        if limit is None:  # a pipe or a file: as wide as the table needs
            needed = max(_width([widths[i] for i in group]), cell_len(view.title))
            Console(file=console.file, width=needed, color_system=None).print(table)
        else:
            console.print(table)
