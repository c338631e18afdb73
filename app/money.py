"""Money arithmetic of METRICS.md sections 1-2: exact until cents, then round half to even once."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

# ISO 4217 active codes (2024 list). Amounts are always counted in hundredths of the major unit.
ISO_CURRENCIES = frozenset(
    [
        "AED",
        "AFN",
        "ALL",
        "AMD",
        "ANG",
        "AOA",
        "ARS",
        "AUD",
        "AWG",
        "AZN",
        "BAM",
        "BBD",
        "BDT",
        "BGN",
        "BHD",
        "BIF",
        "BMD",
        "BND",
        "BOB",
        "BRL",
        "BSD",
        "BTN",
        "BWP",
        "BYN",
        "BZD",
        "CAD",
        "CDF",
        "CHF",
        "CLP",
        "CNY",
        "COP",
        "CRC",
        "CUC",
        "CUP",
        "CVE",
        "CZK",
        "DJF",
        "DKK",
        "DOP",
        "DZD",
        "EGP",
        "ERN",
        "ETB",
        "EUR",
        "FJD",
        "FKP",
        "GBP",
        "GEL",
        "GHS",
        "GIP",
        "GMD",
        "GNF",
        "GTQ",
        "GYD",
        "HKD",
        "HNL",
        "HTG",
        "HUF",
        "IDR",
        "ILS",
        "INR",
        "IQD",
        "IRR",
        "ISK",
        "JMD",
        "JOD",
        "JPY",
        "KES",
        "KGS",
        "KHR",
        "KMF",
        "KPW",
        "KRW",
        "KWD",
        "KYD",
        "KZT",
        "LAK",
        "LBP",
        "LKR",
        "LRD",
        "LSL",
        "LYD",
        "MAD",
        "MDL",
        "MGA",
        "MKD",
        "MMK",
        "MNT",
        "MOP",
        "MRU",
        "MUR",
        "MVR",
        "MWK",
        "MXN",
        "MYR",
        "MZN",
        "NAD",
        "NGN",
        "NIO",
        "NOK",
        "NPR",
        "NZD",
        "OMR",
        "PAB",
        "PEN",
        "PGK",
        "PHP",
        "PKR",
        "PLN",
        "PYG",
        "QAR",
        "RON",
        "RSD",
        "RUB",
        "RWF",
        "SAR",
        "SBD",
        "SCR",
        "SDG",
        "SEK",
        "SGD",
        "SHP",
        "SLE",
        "SLL",
        "SOS",
        "SRD",
        "SSP",
        "STN",
        "SVC",
        "SYP",
        "SZL",
        "THB",
        "TJS",
        "TMT",
        "TND",
        "TOP",
        "TRY",
        "TTD",
        "TWD",
        "TZS",
        "UAH",
        "UGX",
        "USD",
        "UYU",
        "UZS",
        "VES",
        "VND",
        "VUV",
        "WST",
        "XAF",
        "XCD",
        "XOF",
        "XPF",
        "YER",
        "ZAR",
        "ZMW",
        "ZWL",
    ]
)

INTERVALS = ("day", "week", "month", "year")


# Billing periods per month for each interval, as (numerator, denominator) (METRICS.md 2).
PER_MONTH = {"month": (1, 1), "year": (1, 12), "week": (52, 12), "day": (365, 12)}


def monthly_factor(interval: str, interval_count: int) -> Fraction:
    """How many of a price's billing periods make one month (METRICS.md 2, step 2)."""
    if interval not in PER_MONTH:
        raise ValueError(f"unknown interval {interval!r}; accepted: {', '.join(INTERVALS)}")
    numerator, denominator = PER_MONTH[interval]
    return Fraction(numerator, denominator * interval_count)


def divide_half_even(numerator: int, denominator: int) -> int:
    """numerator / denominator (denominator > 0) rounded to an integer, half to even."""
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        return quotient + 1
    return quotient


def round_half_even(value: Fraction) -> int:
    """Round an exact number of cents to an integer, half to even."""
    return divide_half_even(value.numerator, value.denominator)


def monthly_cents(amount: Decimal, quantity: int, interval: str, interval_count: int) -> int:
    """MRR in cents of `quantity` units at `amount` major units per billing period
    (integer arithmetic only: exact, and fast enough for imports)."""
    factor = monthly_factor(interval, interval_count)
    numerator, denominator = amount.as_integer_ratio()
    return divide_half_even(
        numerator * 100 * quantity * factor.numerator, denominator * factor.denominator
    )


def ratio_cents(numerator: int, denominator: int) -> int | None:
    """`numerator / denominator` cents rounded half to even; None when the denominator is 0."""
    if denominator == 0:
        return None
    if denominator < 0:
        numerator, denominator = -numerator, -denominator
    return divide_half_even(numerator, denominator)
