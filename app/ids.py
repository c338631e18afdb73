"""Numbers clients send as text (GraphQL `ID`s, cursor parts) that PostgreSQL stores as bigint."""

from __future__ import annotations

from app import strict
from app.errors import UserError

BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1


def bigint(text: str) -> int:
    """`text` as an integer that fits a bigint; ValueError when it is not one (ASCII digits
    only: app/strict.py)."""
    number = strict.integer(text)
    if not BIGINT_MIN <= number <= BIGINT_MAX:
        raise ValueError(f"{text!r} is outside the 64-bit range")
    return number


def parse_id(text: str, kind: str) -> int:
    """The id of a `kind` (customer, segment) in `text`; a UserError naming what is accepted."""
    try:
        return bigint(text)
    except ValueError:
        raise UserError(
            f"{kind} id {text!r} is not a {kind} id (a whole number up to {BIGINT_MAX})"
        ) from None
