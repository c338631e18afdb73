"""Customer churn average and LTV per point (METRICS.md 4).

`customerChurnAvg` at a point is the mean of the monthly `customerChurnRate` of the six calendar
months before the month holding the point's endDate (months whose rate is null are skipped);
`ltv = arpa / customerChurnAvg`, rounded half to even to cents. Both come from a monthly churn
history computed by the same series compiler, so they agree with the monthly churn rates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import date, timedelta
from fractions import Fraction
from typing import Any

from app.metrics.periods import add_months, period_start
from app.metrics.points import Point
from app.metrics.spec import Interval, SeriesRequest
from app.money import round_half_even

HISTORY_MONTHS = 6
LTV_FIELDS = frozenset({"customer_churn_avg", "ltv"})

Rates = dict[tuple[tuple[str, ...], date], Fraction | None]


def wants_ltv(request: SeriesRequest) -> bool:
    return not request.fields or bool(request.fields & LTV_FIELDS)


def history_request(request: SeriesRequest) -> SeriesRequest:
    """Monthly churn over the months any point's average can need."""
    first_month = period_start(request.start, Interval.MONTH)
    return replace(
        request,
        start=add_months(first_month, -HISTORY_MONTHS),
        end=period_start(request.end, Interval.MONTH) - timedelta(days=1),
        interval=Interval.MONTH,
        fields=frozenset({"churned_customers"}),
    )


def monthly_rates(rows: Iterable[Mapping[str, Any]], groups: list[str]) -> Rates:
    """customerChurnRate per (group key, month) from compiled series rows, as exact fractions."""
    rates: Rates = {}
    for row in rows:
        customers_before = row["customers_end"] - row["customers_net"]
        key = (tuple(str(row[g]) for g in groups), row["k"])
        rates[key] = (
            Fraction(row["churned_customers"], customers_before) if customers_before else None
        )
    return rates


def churn_average(rates: Rates, group: tuple[str, ...], day: date) -> Fraction | None:
    month = period_start(day, Interval.MONTH)
    known = [
        rate
        for offset in range(1, HISTORY_MONTHS + 1)
        if (rate := rates.get((group, add_months(month, -offset)))) is not None
    ]
    return sum(known, Fraction(0)) / len(known) if known else None


def with_ltv(point: Point, rates: Rates, group: tuple[str, ...] = ()) -> Point:
    average = churn_average(rates, group, point.end_date)
    ltv = None
    if average and point.arpa is not None:
        ltv = round_half_even(Fraction(point.arpa) / average)
    return replace(
        point,
        customer_churn_avg=None if average is None else float(average),
        ltv=ltv,
    )
