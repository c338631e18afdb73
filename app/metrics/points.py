"""Series points of METRICS.md 4, assembled from the integer aggregates the SQL returns."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from app.metrics.ltv import LtvOf
from app.metrics.periods import period_end
from app.metrics.spec import SeriesRequest
from app.money import ratio_cents


@dataclass(frozen=True)
class Point:
    date: datetime.date
    end_date: datetime.date
    mrr: int
    arr: int
    customers: int
    arpa: int | None
    asp: int | None
    new: int
    expansion: int
    contraction: int
    churn: int
    reactivation: int
    net_new_mrr: int
    customers_diff: int
    new_customers: int
    expansion_customers: int
    contraction_customers: int
    churn_customers: int
    reactivation_customers: int
    churned_customers: int
    customer_churn_rate: float | None
    mrr_churn_rate: float | None
    net_mrr_churn_rate: float | None
    customer_retention_rate: float | None
    mrr_retention_rate: float | None
    nrr: float | None
    grr: float | None
    quick_ratio: float | None
    customer_churn_avg: float | None = None  # from app.metrics.ltv
    ltv: int | None = None
    fx_adjustment: int = 0


@dataclass(frozen=True)
class Breakdown:
    """The series of one value combination of a breakdown (or of one compared segment)."""

    key: tuple[str, ...]
    label: str
    points: tuple[Point, ...]
    other: bool = False  # every value beyond a breakdown's `top`, as one scope


@dataclass(frozen=True)
class Summary:
    current: float | None
    previous: float | None
    percentage_change: float | None


def rate(numerator: int, denominator: int) -> float | None:
    """A fraction, or None when the denominator is 0 (METRICS.md 1). Python divides two
    ints correctly rounded, whatever their size: the float nearest the exact quotient, the
    same as `float(Fraction(numerator, denominator))` at a fraction of its cost."""
    return None if denominator == 0 else numerator / denominator


# A series' points share a few dozen period ends: looked up, not computed, per point
# (with `row.get` bound once: 11.2 -> 7.6 µs a point; docs/benchmarks.md, twenty-second session)
_period_end = functools.lru_cache(maxsize=4096)(period_end)


def build_point(
    row: Mapping[str, Any],
    request: SeriesRequest,
    ltv: LtvOf | None = None,
    group: tuple[str, ...] = (),
) -> Point:
    """A Point from one result row of `compile_series` (a, b = the clipped period); `ltv`:
    its customerChurnAvg and ltv (app.metrics.ltv.ltv_of), of the breakdown's `group`."""
    key: datetime.date = row["k"]
    mrr, customers = row["mrr_end"], row["customers_end"]
    fx_adjustment = row["reval_end"] - row["reval_start"]
    mrr_before = mrr - row["net"] - fx_adjustment
    customers_before = customers - row["customers_net"]
    new, expansion, reactivation = row["new"], row["expansion"], row["reactivation"]
    contraction, churn = row["contraction"], row["churn"]
    counted = row.get  # a count the request's fields did not need is not in the row: 0
    churned, new_customers = counted("churned_customers", 0), counted("new_customers", 0)
    customer_churn = rate(churned, customers_before)
    mrr_churn = rate(-(churn + contraction), mrr_before)
    end_date = min(_period_end(key, request.interval), request.end)
    arpa = ratio_cents(mrr, customers)
    churn_avg, lifetime_value = (None, None) if ltv is None else ltv(group, end_date, arpa)
    return Point(
        date=max(key, request.start),
        end_date=end_date,
        mrr=mrr,
        arr=12 * mrr,
        customers=customers,
        arpa=arpa,
        asp=ratio_cents(new, new_customers),
        new=new,
        expansion=expansion,
        contraction=contraction,
        churn=churn,
        reactivation=reactivation,
        net_new_mrr=row["net"],
        customers_diff=row["customers_net"],
        new_customers=new_customers,
        expansion_customers=counted("expansion_customers", 0),
        contraction_customers=counted("contraction_customers", 0),
        churn_customers=counted("churn_customers", 0),
        reactivation_customers=counted("reactivation_customers", 0),
        churned_customers=churned,
        customer_churn_rate=customer_churn,
        mrr_churn_rate=mrr_churn,
        net_mrr_churn_rate=rate(-(churn + contraction + expansion + reactivation), mrr_before),
        customer_retention_rate=rate(customers_before - churned, customers_before),
        mrr_retention_rate=rate(mrr_before + churn + contraction, mrr_before),
        nrr=rate(mrr_before + counted("retained_delta", 0), mrr_before),
        grr=rate(mrr_before + counted("gross_retained_delta", 0), mrr_before),
        quick_ratio=rate(new + expansion + reactivation, -(contraction + churn)),
        customer_churn_avg=churn_avg,
        ltv=lifetime_value,
        fx_adjustment=fx_adjustment,
    )


def summarize(points: Sequence[Point], field: str) -> Summary:
    """{current, previous, percentageChange} of a series field (METRICS.md 4)."""
    values = [getattr(point, field) for point in points]
    current = values[-1] if values else None
    previous = values[-2] if len(values) > 1 else None
    change = None
    if current is not None and previous:
        change = float((Fraction(current) - Fraction(previous)) / abs(Fraction(previous)))
    return Summary(
        current=None if current is None else float(current),
        previous=None if previous is None else float(previous),
        percentage_change=change,
    )
