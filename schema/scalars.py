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

Cents = NewType("Cents", int)
# Days a query may name: PostgreSQL and Python run further, but no subscription business does,
# and days far out make date arithmetic overflow or series run for minutes.
FIRST_DAY, LAST_DAY = datetime.date(1900, 1, 1), datetime.date(2200, 12, 31)


# Moments (a timeframe's ends) over the same days: from the first day's start to the last's end.
FIRST_MOMENT = datetime.datetime.combine(FIRST_DAY, datetime.time(), datetime.UTC)
LAST_MOMENT = datetime.datetime.combine(
    LAST_DAY, datetime.time(), datetime.UTC
) + datetime.timedelta(days=1)
FRACTION = re.compile(r"[.,](\d+)")


def _moment(text: str) -> datetime.datetime:
    """An ISO 8601 date-time as Strawberry reads one (dateutil's `isoparse`), in UTC when it
    has no offset. Digits past the microsecond round up: every time stored is in whole
    microseconds, so a bound between two of them keeps what the next one keeps (a half-open
    `[from, to)` as exact as written)."""
    first, last = (m.strftime("%Y-%m-%dT%H:%M:%SZ") for m in (FIRST_MOMENT, LAST_MOMENT))
    out_of_range = ValueError(f"Date-times run from {first} to {last}.")
    try:
        moment = dateutil.parser.isoparse(text)
    except OverflowError:  # 9999-12-31T24:00:00: the day after the last Python has
        raise out_of_range from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    if not FIRST_MOMENT <= moment <= LAST_MOMENT:
        raise out_of_range
    fraction = FRACTION.search(text)
    if moment < LAST_MOMENT and fraction and fraction[1][6:].strip("0"):
        moment += datetime.timedelta(microseconds=1)
    return moment


def _day(text: str) -> datetime.date:
    day = datetime.date.fromisoformat(text)
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
