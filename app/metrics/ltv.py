"""Customer churn average and LTV per point (METRICS.md 4).

`customerChurnAvg` at a point is the mean of the monthly `customerChurnRate` of the six calendar
months before the month holding the point's endDate (months whose rate is null are skipped);
`ltv = arpa / customerChurnAvg`, rounded half to even to cents. Both come from a monthly churn
history computed by the same series compiler, so they agree with the monthly churn rates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

from app.metrics.periods import add_months, period_start
from app.metrics.spec import Interval, SeriesRequest
from app.money import divide_half_even

HISTORY_MONTHS = 6
LTV_FIELDS = frozenset({"customer_churn_avg", "ltv"})

# a month's customerChurnRate as its exact fraction: (churned customers, customers before)
Rate = tuple[int, int]
Rates = dict[tuple[tuple[str, ...], date], Rate | None]
LtvFields = tuple[float | None, int | None]  # a point's (customerChurnAvg, ltv)
LtvOf = Callable[[tuple[str, ...], date, int | None], LtvFields]  # of (group, endDate, arpa)


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
        rates[key] = (row["churned_customers"], customers_before) if customers_before else None
    return rates


def churn_average(rates: Rates, group: tuple[str, ...], day: date) -> Rate | None:
    """The mean of the known rates of the HISTORY_MONTHS months before the one holding `day`,
    exactly: (numerator, denominator), summed over a common denominator in integers (the
    fractions' own arithmetic reduces at every step, several times slower)."""
    month = period_start(day, Interval.MONTH)
    numerator, denominator, known = 0, 1, 0
    for offset in range(1, HISTORY_MONTHS + 1):
        rate = rates.get((group, add_months(month, -offset)))
        if rate is not None:
            churned, before = rate
            numerator = numerator * before + churned * denominator
            denominator *= before
            known += 1
    return (numerator, denominator * known) if known else None


def ltv_of(rates: Rates) -> LtvOf:
    """A point's customerChurnAvg (the exact mean as the nearest float) and ltv (arpa divided
    by that mean, rounded half to even to cents; none when the mean is 0 or there is no
    arpa), each group's average computed once per month."""
    averages: dict[tuple[tuple[str, ...], date], Rate | None] = {}

    def of(group: tuple[str, ...], end_date: date, arpa: int | None) -> LtvFields:
        key = (group, period_start(end_date, Interval.MONTH))
        if key not in averages:
            averages[key] = churn_average(rates, group, end_date)
        average = averages[key]
        if average is None:
            return None, None
        numerator, denominator = average
        ltv = None
        if numerator and arpa is not None:
            ltv = divide_half_even(arpa * denominator, numerator)
        return numerator / denominator, ltv

    return of
