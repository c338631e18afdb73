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


def monthly_factor(interval: str, interval_count: int) -> Fraction:
    """How many of a price's billing periods make one month (METRICS.md 2, step 2)."""
    match interval:
        case "month":
            return Fraction(1, interval_count)
        case "year":
            return Fraction(1, 12 * interval_count)
        case "week":
            return Fraction(52, 12 * interval_count)
        case "day":
            return Fraction(365, 12 * interval_count)
        case _:
            raise ValueError(f"unknown interval {interval!r}; accepted: {', '.join(INTERVALS)}")


def round_half_even(value: Fraction) -> int:
    """Round an exact number of cents to an integer, half to even."""
    floor = value.numerator // value.denominator
    remainder = value - floor
    if remainder > Fraction(1, 2) or (remainder == Fraction(1, 2) and floor % 2 == 1):
        return floor + 1
    return floor


def monthly_cents(amount: Decimal, quantity: int, interval: str, interval_count: int) -> int:
    """MRR in cents of `quantity` units at `amount` major units per billing period."""
    exact = Fraction(amount) * 100 * quantity * monthly_factor(interval, interval_count)
    return round_half_even(exact)


def ratio_cents(numerator: int, denominator: int) -> int | None:
    """`numerator / denominator` cents rounded half to even; None when the denominator is 0."""
    if denominator == 0:
        return None
    return round_half_even(Fraction(numerator, denominator))
