"""Money arithmetic of METRICS.md 2: exact, then half to even once."""

from decimal import Decimal
from fractions import Fraction

import pytest

from app.metrics.points import rate
from app.money import divide_half_even, monthly_cents, ratio_cents, round_half_even


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Fraction(25, 2), 12),
        (Fraction(27, 2), 14),
        (Fraction(-25, 2), -12),
        (Fraction(7, 3), 2),
        (Fraction(8, 3), 3),
        (Fraction(0), 0),
    ],
)
def test_round_half_even(value: Fraction, expected: int) -> None:
    assert round_half_even(value) == expected
    assert divide_half_even(value.numerator, value.denominator) == expected


@pytest.mark.parametrize(
    ("amount", "quantity", "interval", "count", "cents"),
    [
        ("49.99", 1, "month", 1, 4999),
        ("1200", 1, "year", 1, 10000),
        ("10", 1, "week", 1, 4333),
        ("300", 2, "month", 3, 20000),
        ("0.125", 1, "month", 1, 12),
        ("0.375", 1, "month", 1, 38),
        ("1", 3, "day", 1, 9125),
        ("99", 1, "year", 2, 412),
    ],
)
def test_monthly_cents(amount: str, quantity: int, interval: str, count: int, cents: int) -> None:
    assert monthly_cents(Decimal(amount), quantity, interval, count) == cents


def test_ratio_cents_null_on_zero_and_sign_safe() -> None:
    assert ratio_cents(10, 0) is None
    assert ratio_cents(5, 2) == 2
    assert ratio_cents(-5, -2) == 2


@pytest.mark.parametrize(
    ("numerator", "denominator"),
    [
        (1, 3),
        (-2, 3),
        (2, -3),
        (0, 7),
        (10**30 + 1, 3 * 10**29),  # beyond 2**53: no conversion to float before dividing
        (2**53 + 1, 2**53),  # the exact quotient lies between two floats
        (9_007_199_254_740_993, 1),
        (1, 10**40),
    ],
)
def test_rate_is_the_exact_fraction_rounded_once(numerator: int, denominator: int) -> None:
    assert rate(numerator, denominator) == float(Fraction(numerator, denominator))


def test_rate_null_on_zero() -> None:
    assert rate(5, 0) is None
