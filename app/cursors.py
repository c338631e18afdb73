"""Opaque keyset cursors: the sort values of a row, joined and base64-encoded."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

from app.ids import BIGINT_MIN, bigint

SEPARATOR = "\x1f"  # ASCII unit separator: never in a date, a number or an id


def encode(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(SEPARATOR.join(map(str, values)).encode()).decode()


def decode(cursor: str, parts: int) -> list[str]:
    """The values of a cursor made by `encode`; ValueError when it is not one of `parts`."""
    try:
        values = base64.urlsafe_b64decode(cursor.encode()).decode().split(SEPARATOR)
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError(f"{cursor!r} is not a cursor") from None
    if len(values) != parts or "\x00" in cursor + "".join(values):
        raise ValueError(f"{cursor!r} is not a cursor")
    return values


def integer(text: str) -> int:
    """A whole number of a cursor that a bigint column holds (app/ids.py) and, as a descending
    sort compares it with the column negated, holds negated too: -(2^63 - 1) to 2^63 - 1.
    ValueError otherwise (the caller says the cursor is not one)."""
    number = bigint(text)
    if number == BIGINT_MIN:
        raise ValueError(f"{text!r} negated is outside the 64-bit range")
    return number
