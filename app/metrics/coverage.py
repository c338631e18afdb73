"""The days the data covers: what a client needs to offer "all time" and ranges up to today."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.expression import Select

from app.tables import movement


@dataclass(frozen=True)
class DataRange:
    first: date | None  # the day of the first movement (None: no data yet)
    last: date | None  # the day of the latest movement
    today: date  # the server's day (UTC), the end of ranges "up to now"
    base_currency: str  # what amounts are reported in unless a query asks for another


def compile_range() -> Select[Any]:
    return sa.select(sa.func.min(movement.c.day), sa.func.max(movement.c.day))
