"""customerChurnAvg and ltv (METRICS.md 4) from the monthly churn history, computed in
integers, equal the definition written with exact fractions: the mean of the known monthly
rates of the six months before the point's month, as the nearest float, and arpa divided by
it, rounded half to even to cents."""

from __future__ import annotations

import random
from datetime import date
from fractions import Fraction

import pytest

from app.metrics.ltv import HISTORY_MONTHS, Rates, ltv_of
from app.metrics.periods import add_months, period_start
from app.metrics.spec import Interval
from app.money import round_half_even


def by_definition(
    rates: Rates, group: tuple[str, ...], day: date, arpa: int | None
) -> tuple[float | None, int | None]:
    month = period_start(day, Interval.MONTH)
    known = [
        Fraction(*rate)
        for offset in range(1, HISTORY_MONTHS + 1)
        if (rate := rates.get((group, add_months(month, -offset)))) is not None
    ]
    if not known:
        return None, None
    mean = sum(known, Fraction(0)) / len(known)
    ltv = round_half_even(Fraction(arpa) / mean) if mean and arpa is not None else None
    return float(mean), ltv


@pytest.mark.parametrize(
    ("rate", "arpa", "expected"),
    [((2, 3), 1, 2), ((2, 3), 3, 4), ((2, 3), 5, 8), ((0, 7), 900, None), ((1, 4), None, None)],
)
def test_halves_round_to_even_and_a_zero_mean_has_no_ltv(
    rate: tuple[int, int], arpa: int | None, expected: int | None
) -> None:
    """arpa / (2/3) is 1.5, 4.5 and 7.5 cents: 2, 4 and 8."""
    rates: Rates = {((), date(2024, 1, 1)): rate}
    average, ltv = ltv_of(rates)((), date(2024, 2, 10), arpa)
    assert average == rate[0] / rate[1]
    assert ltv == expected


@pytest.mark.parametrize("seed", range(5))
def test_equal_to_the_definition_in_fractions(seed: int) -> None:
    rng = random.Random(seed)
    groups = [(), ("EUR",), ("USD", "Pro")]
    rates: Rates = {}
    for group in groups:
        for months in range(36):
            before = rng.choice([0, 1, 3, 7, 1_000, 999_983, 10**9 + 7])
            churned = rng.randint(0, before)
            known = before and rng.random() > 0.15
            rates[(group, add_months(date(2022, 1, 1), months))] = (
                (churned, before) if known else None
            )
    of = ltv_of(rates)
    for _ in range(400):
        group = rng.choice(groups)
        day = date(2022, 1, 1).replace(day=rng.randint(1, 28))
        day = add_months(day, rng.randint(0, 40))
        arpa = rng.choice([None, 0, 1, 4_999, 123_457, 10**12 + 3])
        assert of(group, day, arpa) == by_definition(rates, group, day, arpa), (group, day, arpa)
