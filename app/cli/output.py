"""Printing results for the CLI: a rich table (default), JSON or CSV."""

from __future__ import annotations

import csv
import enum
import io
import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table

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
        "amount",
        "mrrBefore",
        "mrrAfter",
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
        "customerRetention",
        "mrrRetention",
        "trialConversion",
    }
)


class Format(enum.StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


def money(cents: int | float) -> str:
    """Cents as an amount of the major unit with thousands separators: 1234567 -> 12,345.67."""
    amount = Decimal(int(cents)) / 100
    return f"{amount:,.2f}"


def cell(field: str, value: Any) -> str:
    if value is None:
        return "—"
    if field in MONEY_FIELDS:
        return money(value)
    if field in RATE_FIELDS:
        return f"{100 * float(value):.2f} %"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def render(
    rows: Sequence[dict[str, Any]],
    fmt: Format,
    *,
    currency: str = "USD",
    title: str = "",
    console: Console | None = None,
) -> None:
    console = console or Console()
    if fmt is Format.JSON:
        console.print_json(json.dumps(list(rows)))
        return
    columns = list(rows[0]) if rows else []
    if fmt is Format.CSV:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        console.out(buffer.getvalue(), end="")
        return
    table = Table(title=title or None, caption=f"amounts in {currency}")
    for column in columns:
        table.add_column(
            column, justify="left" if column in {"date", "endDate", "key"} else "right"
        )
    for row in rows:
        table.add_row(*(cell(column, row[column]) for column in columns))
    console.print(table)
