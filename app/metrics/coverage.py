"""The days the data covers: what a client needs to offer "all time", ranges up to today, and
to explain an empty range ("data spans ...")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.expression import Select

from app.tables import subscription_version


@dataclass(frozen=True)
class DataRange:
    first: date | None  # the first day of any subscription's history (None: no data yet)
    last: date | None  # the last day a subscription state started or ended
    today: date  # the server's day (UTC), the end of ranges "up to now"
    base_currency: str  # what amounts are reported in unless a query asks for another


def compile_range() -> Select[Any]:
    versions = subscription_version.c
    last_change = sa.func.greatest(versions.valid_from, versions.valid_to)  # ignores NULL
    return sa.select(sa.func.min(versions.valid_from), sa.func.max(last_change))
