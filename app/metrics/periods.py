"""Calendar periods of METRICS.md 1: a point's `date` and `endDate` clipped to the range."""

from __future__ import annotations

from datetime import date, timedelta

from app.metrics.spec import Interval

MONTHS_PER = {Interval.MONTH: 1, Interval.QUARTER: 3, Interval.YEAR: 12}


def add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def period_start(day: date, interval: Interval) -> date:
    """The first day of the calendar period that holds `day` (ISO weeks start on Monday)."""
    match interval:
        case Interval.DAY:
            return day
        case Interval.WEEK:
            return day - timedelta(days=day.weekday())
        case Interval.MONTH:
            return day.replace(day=1)
        case Interval.QUARTER:
            return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
        case Interval.YEAR:
            return date(day.year, 1, 1)


def period_end(first: date, interval: Interval) -> date:
    """The last day of the period whose first day is `first`."""
    match interval:
        case Interval.DAY:
            return first
        case Interval.WEEK:
            return first + timedelta(days=6)
        case Interval.MONTH | Interval.QUARTER | Interval.YEAR:
            return add_months(first, MONTHS_PER[interval]) - timedelta(days=1)


def period_count(start: date, end: date, interval: Interval) -> int:
    """How many points a series over [start, end] has."""
    first = period_start(start, interval)
    if interval is Interval.DAY:
        return (end - start).days + 1
    if interval is Interval.WEEK:
        return (period_start(end, interval) - first).days // 7 + 1
    months = (end.year - first.year) * 12 + end.month - first.month
    return months // MONTHS_PER[interval] + 1


def periods(start: date, end: date, interval: Interval) -> list[tuple[date, date]]:
    """The (date, endDate) of every point of a series over [start, end]."""
    found, first = [], period_start(start, interval)
    while first <= end:
        found.append((max(first, start), min(period_end(first, interval), end)))
        first = period_end(first, interval) + timedelta(days=1)
    return found
