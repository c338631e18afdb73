"""Many rows in one statement through one JSON parameter, read back as typed columns by
`jsonb_to_recordset`: one round trip and one execution where an executemany runs the
statement once per row (most of the cost of a worker batch's inserts), and the same SQL text
whatever the number of rows (compiled once, unlike a multi-row VALUES).

Exact: decimals travel as strings (PostgreSQL parses them as `numeric`), days and instants in
ISO 8601."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, Insert, insert


def _encode(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def recordset(
    table: sa.Table, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> sa.Select[Any]:
    """`SELECT <columns> FROM jsonb_to_recordset(:rows) AS r(<column> <type>, ...)`: the rows
    (dicts keyed by column name; a missing key is NULL) typed as `table`'s columns."""
    document = json.dumps(rows, default=_encode, separators=(",", ":"))
    parameter = sa.cast(sa.bindparam("recordset", document, sa.Text), JSONB)
    typed = [sa.column(name, table.c[name].type) for name in columns]
    found = (
        sa.func.jsonb_to_recordset(parameter)
        .table_valued(*typed)
        .render_derived(name="r", with_types=True)
    )
    return sa.select(*(found.c[name] for name in columns))


def insert_rows(table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> Insert:
    """An INSERT of the rows (the columns of the first one) into `table`: a PostgreSQL insert,
    so the caller may add an ON CONFLICT clause and RETURNING."""
    columns = list(rows[0])
    return insert(table).from_select(columns, recordset(table, columns, rows))
