"""The span of the stored data: from the first day of any subscription's history to the last
day one started or ended. Clients use it to explain an empty range ("data spans ...")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa

from app.tables import subscription_version


@dataclass(frozen=True)
class DataRange:
    first: date
    last: date


def compile_data_range() -> sa.Select[Any]:
    versions = subscription_version.c
    last_change = sa.func.greatest(versions.valid_from, versions.valid_to)  # ignores NULL
    return sa.select(
        sa.func.min(versions.valid_from).label("first"), sa.func.max(last_change).label("last")
    )


def build_data_range(row: Any) -> DataRange | None:
    """None when nothing is stored."""
    return DataRange(row.first, row.last) if row.first is not None else None
