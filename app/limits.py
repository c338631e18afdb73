"""Bounds of what is stored, so every total fits in 64-bit cents and every day in a series'
date arithmetic (README, "Import"). Every source is held to them: the CSV parsers say which
column is wrong, and the canonical upsert checks again for sources without a parser of ours.

A subscription's MRR is at most MAX_MRR cents (10 billion major units a month): a company's
MRR and ARR (12 x MRR) stay below 2^63 cents (9.2 x 10^18) while fewer than 768,000
subscriptions sit at that ceiling at once.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

MAX_MRR = 10**12  # cents a month, per subscription
MAX_COUNT = 2**31 - 1  # quantity, interval_count (32-bit columns)
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(2200, 12, 31)
# a number written in a usage metric's filter or expression, or a usage series' filter: far
# beyond any JSON number an event holds, and within what PostgreSQL's numeric is sent as
LITERAL_DIGITS = LITERAL_DECIMALS = 1_000
DAYS = f"{FIRST_DAY}..{LAST_DAY}"


def day_problem(name: str, day: date | None) -> str | None:
    if day is None or FIRST_DAY <= day <= LAST_DAY:
        return None
    return f"{name} {day} is outside {DAYS}"


def mrr_problem(mrr: int) -> str | None:
    if 0 <= mrr <= MAX_MRR:
        return None
    if mrr < 0:
        return f"an MRR of {mrr} cents is negative"
    major, cents = divmod(mrr, 100)
    return (
        f"an MRR of {major:,}.{cents:02d} a month is over the limit of "
        f"{MAX_MRR // 100:,} a month per subscription"
    )


def count_problem(name: str, value: int, least: int = 0) -> str | None:
    if least <= value <= MAX_COUNT:
        return None
    return f"{name} {value} is not between {least} and {MAX_COUNT:,}"


def magnitude_problem(number: Decimal, below: int, decimals: int) -> str | None:
    """Why a finite number is out of bounds: |number| >= 10^below, or more decimal places
    than `decimals` (trailing zeros aside). Checked before any arithmetic on the number, so an
    exponent like 1e999999999 costs nothing."""
    if number and number.adjusted() >= below:
        return f"is too large (at most {below} digits before the decimal point)"
    if _exponent(number) < -decimals and _exponent(number.normalize()) < -decimals:
        return f"has more than {decimals} decimal places"
    return None


def literal_problem(number: Decimal) -> str | None:
    """Why a finite number written in a usage definition or filter is refused (LITERAL_DIGITS)."""
    return magnitude_problem(number, LITERAL_DIGITS, LITERAL_DECIMALS)


def _exponent(number: Decimal) -> int:
    exponent = number.as_tuple().exponent
    return exponent if isinstance(exponent, int) else 0
