"""Parse a *subscription periods* CSV into canonical rows, one line at a time.

Columns: subscription_id, customer_id, start_date, end_date (exclusive, empty = open) and either
monthly_amount (the subscription's monthly total) or amount + interval [+ interval_count,
quantity]; optional: currency, plan, status, trial_start, trial_end, pricing_model (flat,
per_unit or tiered; default per_unit when the row gives a quantity, else flat), customer_name,
email, country.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation

from app.ingest.rows import PeriodRow
from app.money import INTERVALS, ISO_CURRENCIES, monthly_cents

REQUIRED = ("subscription_id", "customer_id", "start_date", "end_date")
STATUSES = (
    "active",
    "past_due",
    "trialing",
    "incomplete",
    "incomplete_expired",
    "unpaid",
    "paused",
    "canceled",
)
PRICING_MODELS = ("flat", "per_unit", "tiered")
OPTIONAL = (
    "monthly_amount",
    "amount",
    "interval",
    "interval_count",
    "quantity",
    "currency",
    "plan",
    "status",
    "trial_start",
    "trial_end",
    "pricing_model",
    "customer_name",
    "email",
    "country",
)


class RowError(ValueError):
    """A line of the file is not acceptable; the message says why."""


@dataclass(frozen=True)
class HeaderCheck:
    missing: tuple[str, ...]
    unknown: tuple[str, ...]

    def problems(self) -> list[str]:
        found = []
        if self.missing:
            found.append(f"missing required column(s): {', '.join(self.missing)}")
        if self.unknown:
            accepted = ", ".join(REQUIRED + OPTIONAL)
            found.append(f"unknown column(s): {', '.join(self.unknown)} (accepted: {accepted})")
        return found


def check_header(fields: list[str]) -> HeaderCheck:
    missing = [name for name in REQUIRED if name not in fields]
    if "monthly_amount" not in fields and not {"amount", "interval"} <= set(fields):
        missing.append("monthly_amount (or amount and interval)")
    unknown = [name for name in fields if name not in REQUIRED + OPTIONAL]
    return HeaderCheck(tuple(missing), tuple(unknown))


def _date(row: dict[str, str], name: str) -> date | None:
    value = row.get(name)
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RowError(f"{name} {value!r} is not a date (expected YYYY-MM-DD)") from None


def _decimal(row: dict[str, str], name: str) -> Decimal | None:
    value = row.get(name)
    if value is None:
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise RowError(f"{name} {value!r} is not a number") from None
    if not number.is_finite():
        raise RowError(f"{name} {value!r} is not a finite number")
    if number < 0:
        raise RowError(f"{name} {value!r} is negative (amounts must be >= 0)")
    return number


def _positive_int(row: dict[str, str], name: str, default: int) -> int:
    value = row.get(name)
    if value is None:
        return default
    if not value.isdigit() or int(value) < 1:
        raise RowError(f"{name} {value!r} is not a whole number >= 1")
    return int(value)


def _choice(row: dict[str, str], name: str, accepted: tuple[str, ...], default: str) -> str:
    value = (row.get(name) or default).lower()
    if value not in accepted:
        raise RowError(f"{name} {value!r} is not one of: {', '.join(accepted)}")
    return value


def _currency(row: dict[str, str], base_currency: str) -> str:
    value = (row.get("currency") or base_currency).upper()
    if value not in ISO_CURRENCIES:
        raise RowError(f"currency {value!r} is not an ISO 4217 currency code (e.g. USD, EUR)")
    return value


def _country(row: dict[str, str]) -> str | None:
    value = row.get("country")
    if value is None:
        return None
    if len(value) != 2 or not value.isalpha():
        raise RowError(f"country {value!r} is not a two-letter ISO 3166 code (e.g. US, DE)")
    return value.upper()


def _price(row: dict[str, str]) -> tuple[Decimal, int, str, int]:
    """(amount per unit, quantity, interval, interval_count) of a row."""
    monthly = _decimal(row, "monthly_amount")
    amount = _decimal(row, "amount")
    if monthly is not None and amount is not None:
        raise RowError("give either monthly_amount or amount, not both")
    if monthly is not None:
        return monthly, 1, "month", 1
    if amount is None:
        raise RowError("monthly_amount (or amount with interval) is required")
    interval = _choice(row, "interval", INTERVALS, "")
    return (
        amount,
        _positive_int(row, "quantity", 1),
        interval,
        _positive_int(row, "interval_count", 1),
    )


def parse_row(line: int, row: dict[str, str], base_currency: str) -> PeriodRow:
    """One line as a canonical row; `row` holds only non-empty, stripped values."""
    subscription_id = row.get("subscription_id")
    customer_id = row.get("customer_id")
    if subscription_id is None or customer_id is None:
        raise RowError("subscription_id and customer_id must not be empty")
    valid_from = _date(row, "start_date")
    if valid_from is None:
        raise RowError("start_date must not be empty")
    valid_to = _date(row, "end_date")
    if valid_to is not None and valid_to <= valid_from:
        raise RowError(f"end_date {valid_to} is not after start_date {valid_from}")
    amount, quantity, interval, count = _price(row)
    default_model = "per_unit" if "quantity" in row else "flat"
    trial_start, trial_end = _date(row, "trial_start"), _date(row, "trial_end")
    if trial_start and trial_end and trial_end < trial_start:
        raise RowError(f"trial_end {trial_end} is before trial_start {trial_start}")
    return PeriodRow(
        line=line,
        subscription_id=subscription_id,
        customer_id=customer_id,
        valid_from=valid_from,
        valid_to=valid_to,
        status=_choice(row, "status", STATUSES, "active"),
        plan=row.get("plan"),
        quantity=quantity,
        amount=amount,
        billing_interval=interval,
        interval_count=count,
        currency=_currency(row, base_currency),
        mrr=monthly_cents(amount, quantity, interval, count),
        trial_start=trial_start,
        trial_end=trial_end,
        customer_name=row.get("customer_name"),
        email=row.get("email"),
        country=_country(row),
        pricing_model=_choice(row, "pricing_model", PRICING_MODELS, default_model),
    )


def read_periods(
    lines: Iterable[str], base_currency: str
) -> tuple[HeaderCheck, Iterator[PeriodRow | tuple[int, str]]]:
    """The header check and a stream of rows, or (line, reason) for each bad line."""
    reader = csv.reader(lines)
    names = [name.strip() for name in next(reader, [])]
    header = check_header(names)

    def rows() -> Iterator[PeriodRow | tuple[int, str]]:
        for raw in reader:
            line = reader.line_num
            if len(raw) > len(names):
                yield line, "more values than columns in the header"
                continue
            if not raw:
                continue
            values = zip(names, raw, strict=False)  # short rows: missing values are empty
            stripped = {name: value.strip() for name, value in values if value}
            try:
                yield parse_row(line, stripped, base_currency)
            except RowError as error:
                yield line, str(error)

    return header, rows()
