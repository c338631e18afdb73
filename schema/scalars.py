"""Custom scalars: Python types here, their GraphQL definitions in `SCALARS` (schema config)."""

from __future__ import annotations

import dataclasses
import datetime
import re
from typing import NewType

import dateutil.parser
import strawberry
from strawberry.schema.types.base_scalars import DateDefinition, DateTimeDefinition, wrap_parser
from strawberry.types.scalar import ScalarDefinition

from app import strict

Cents = NewType("Cents", int)
# Days a query may name: PostgreSQL and Python run further, but no subscription business does,
# and days far out make date arithmetic overflow or series run for minutes.
FIRST_DAY, LAST_DAY = datetime.date(1900, 1, 1), datetime.date(2200, 12, 31)


FRACTION = re.compile(r"[.,](\d+)")


def _moment(text: str) -> datetime.datetime:
    """An ISO 8601 date-time as Strawberry reads one (dateutil's `isoparse`), in UTC when it
    has no offset; any moment of years 1 to 9999 in UTC (far ends such as 0001-01-01 or
    9999-12-31 stand for "open"). Digits past the microsecond round up: every time stored is
    in whole microseconds, so a bound between two of them keeps what the next one keeps (a
    half-open `[from, to)` as exact as written)."""
    try:
        moment = dateutil.parser.isoparse(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        moment.astimezone(datetime.UTC)  # queries compare it in UTC
        fraction = FRACTION.search(text)
        if fraction and fraction[1][6:].strip("0"):
            moment += datetime.timedelta(microseconds=1)
    except OverflowError:  # 9999-12-31T24:00:00Z, 0001-01-01T00:00:00+01:00
        raise ValueError("Date-times run from year 1 to year 9999 in UTC.") from None
    return moment


def _day(text: str) -> datetime.date:
    day = strict.day(text)  # YYYY-MM-DD only, not the other ISO forms fromisoformat reads
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"Dates run from {FIRST_DAY} to {LAST_DAY}.")
    return day


SCALARS: dict[object, ScalarDefinition] = {
    Cents: strawberry.scalar(
        name="Cents",
        serialize=int,
        parse_value=int,
        description="Integer cents (hundredths of the currency's major unit), 64-bit safe, "
        "serialized as a JSON number.",
    ),
    datetime.date: dataclasses.replace(DateDefinition, parse_value=wrap_parser(_day, "Date")),
    datetime.datetime: dataclasses.replace(
        DateTimeDefinition, parse_value=wrap_parser(_moment, "DateTime")
    ),
}
