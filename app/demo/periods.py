"""The demo company as subscription periods: the canonical rows an import takes, or a CSV."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from pathlib import Path

from app.demo import company
from app.demo.company import (
    DEFAULT_RATES,
    DEMO_START,
    LOCAL_CURRENCIES,
    REFERENCE_MONTHS,
    Customer,
    History,
    Rates,
    Segment,
    add_months,
    histories,
)
from app.ingest.rows import PeriodRow
from app.money import monthly_cents

CSV_COLUMNS = (
    "subscription_id",
    "customer_id",
    "start_date",
    "end_date",
    "amount",
    "interval",
    "interval_count",
    "quantity",
    "currency",
    "plan",
    "status",
    "trial_start",
    "trial_end",
    "customer_name",
    "email",
    "country",
)


def _row(
    line: int, customer: Customer, history: History, segment: Segment, valid_to: date | None
) -> PeriodRow:
    price = segment.price
    interval, count = price.interval
    trial_start, trial_end = history.trial or (None, None)
    return PeriodRow(
        line=line,
        subscription_id=history.subscription_id,
        customer_id=customer.id,
        valid_from=segment.start,
        valid_to=valid_to,
        status=segment.status,
        plan=price.plan.name,
        quantity=price.quantity,
        amount=price.amount,
        billing_interval=interval,
        interval_count=count,
        currency=customer.currency,
        mrr=monthly_cents(price.amount, price.quantity, interval, count),
        trial_start=trial_start,
        trial_end=trial_end,
        customer_name=customer.name,
        email=customer.email,
        country=customer.country,
    )


def _periods(history: History, today: date) -> Iterator[tuple[Segment, date | None]]:
    """Each segment known at `today` with its end; an end after `today` is still open."""
    ends = [segment.start for segment in history.segments[1:]] + [history.end]
    for segment, end in zip(history.segments, ends, strict=True):
        if segment.start > today:
            return
        yield segment, None if end is None or end > today else end


def customer_periods(
    signed_up: Iterable[Customer], seed: int, today: date, rates: Rates = DEFAULT_RATES
) -> Iterator[PeriodRow]:
    """The periods of the customers `signed_up` as they stand at the end of `today`."""
    line = 2
    for customer in signed_up:
        for history in histories(seed, customer, today, rates):
            for segment, valid_to in _periods(history, today):
                yield _row(line, customer, history, segment, valid_to)
                line += 1


def generate_periods(
    customers: int = 300,
    seed: int = 7,
    start: date = DEMO_START,
    months: int = REFERENCE_MONTHS,
    today: date | None = None,
    *,
    rates: Rates = DEFAULT_RATES,
    currencies: Mapping[str, str] = LOCAL_CURRENCIES,
) -> Iterator[PeriodRow]:
    """The periods of a company where `customers` customers sign up in the `months` months
    from `start` (more each month), up to `today` (default: the end of those months).
    `currencies` maps a country to the currency its customers are billed in (else USD)."""
    cutoff = today or add_months(start, months)
    signed_up = company.customers(customers, seed, start, months, cutoff, currencies)
    return customer_periods(signed_up, seed, cutoff, rates)


def _day(value: date | None) -> str:
    return value.isoformat() if value else ""


def _csv_values(row: PeriodRow) -> tuple[object, ...]:
    return (
        row.subscription_id,
        row.customer_id,
        row.valid_from.isoformat(),
        _day(row.valid_to),
        row.amount,
        row.billing_interval,
        row.interval_count,
        row.quantity,
        row.currency,
        row.plan or "",
        row.status,
        _day(row.trial_start),
        _day(row.trial_end),
        row.customer_name or "",
        row.email or "",
        row.country or "",
    )


def write_csv(rows: Iterable[PeriodRow], path: Path) -> int:
    """Write rows as a subscription-periods CSV (connectors/csv/subscriptions.py); the count."""
    count = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for row in rows:
            writer.writerow(_csv_values(row))
            count += 1
    return count
