"""Numbers and days that clients send as text, read strictly.

Python reads more than the forms documented: `int()` and `Decimal()` take any Unicode digit
(the Arabic-Indic one and zero are 10), underscores ("1_000") and surrounding blanks;
`date.fromisoformat` takes the other ISO 8601 forms of a day ("20240101", "2024-W01-1"). Each
is a value a client did not mean, or a second spelling of the same one. Here a number is ASCII
digits (an optional sign, decimal point and exponent) and a day is YYYY-MM-DD, nothing else;
callers strip the blanks they allow first. A ValueError says the text is not of the form.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SPECIAL = frozenset({"nan", "snan", "inf", "infinity"})  # what Decimal reads besides numbers


def integer(text: str) -> int:
    """A whole number in ASCII digits, with an optional minus sign."""
    if not _INTEGER.fullmatch(text):
        raise ValueError(f"{text!r} is not a whole number")
    return int(text)


def decimal(text: str) -> Decimal:
    """A number in ASCII digits (sign, point and exponent optional); NaN and infinities too, as
    Decimal reads them, for the caller to refuse with its own words."""
    if not _DECIMAL.fullmatch(text) and text.lstrip("+-").lower() not in _SPECIAL:
        raise ValueError(f"{text!r} is not a number")
    return Decimal(text)


def day(text: str) -> date:
    """A day written YYYY-MM-DD."""
    if not _DAY.fullmatch(text):
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD)")
    return date.fromisoformat(text)
