"""Parse a *subscription periods* CSV into canonical rows, one line at a time.

Columns: subscription_id, customer_id, start_date, end_date (exclusive, empty = open) and either
monthly_amount (the subscription's monthly total) or amount + interval [+ interval_count,
quantity]; optional: currency, plan, status, trial_start, trial_end, pricing_model (flat,
per_unit or tiered; default per_unit when the row gives a quantity, else flat), customer_name,
email, country.
"""

from __future__ import annotations

import csv
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import TypeVar

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
COLUMNS = REQUIRED + OPTIONAL
MEMO_LIMIT = 100_000  # remembered values per column; a file of ever-new values starts over
_K = TypeVar("_K")
_V = TypeVar("_V")
Price = tuple[Decimal, int, str, int, int]  # amount, quantity, interval, interval_count, mrr


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
            accepted = ", ".join(COLUMNS)
            found.append(f"unknown column(s): {', '.join(self.unknown)} (accepted: {accepted})")
        return found


def check_header(fields: list[str]) -> HeaderCheck:
    missing = [name for name in REQUIRED if name not in fields]
    if "monthly_amount" not in fields and not {"amount", "interval"} <= set(fields):
        missing.append("monthly_amount (or amount and interval)")
    unknown = [name for name in fields if name not in COLUMNS]
    return HeaderCheck(tuple(missing), tuple(unknown))


def _date(name: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise RowError(f"{name} {value!r} is not a date (expected YYYY-MM-DD)") from None


def _decimal(name: str, value: str | None) -> Decimal | None:
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


def _positive_int(name: str, value: str | None, default: int) -> int:
    if value is None:
        return default
    if not value.isdigit() or int(value) < 1:
        raise RowError(f"{name} {value!r} is not a whole number >= 1")
    return int(value)


def _choice(name: str, accepted: tuple[str, ...], default: str, value: str | None) -> str:
    chosen = (value or default).lower()
    if chosen not in accepted:
        raise RowError(f"{name} {chosen!r} is not one of: {', '.join(accepted)}")
    return chosen


def _currency(base_currency: str, value: str | None) -> str:
    code = (value or base_currency).upper()
    if code not in ISO_CURRENCIES:
        raise RowError(f"currency {code!r} is not an ISO 4217 currency code (e.g. USD, EUR)")
    return code


def _country(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value) != 2 or not value.isalpha():
        raise RowError(f"country {value!r} is not a two-letter ISO 3166 code (e.g. US, DE)")
    return value.upper()


def _price(values: tuple[str | None, ...]) -> Price:
    """(amount per unit, quantity, interval, interval_count, MRR in cents) of a row's
    (monthly_amount, amount, interval, interval_count, quantity)."""
    monthly_text, amount_text, interval_text, count_text, quantity_text = values
    monthly = _decimal("monthly_amount", monthly_text)
    amount = _decimal("amount", amount_text)
    if monthly is not None and amount is not None:
        raise RowError("give either monthly_amount or amount, not both")
    if monthly is not None:
        return monthly, 1, "month", 1, monthly_cents(monthly, 1, "month", 1)
    if amount is None:
        raise RowError("monthly_amount (or amount with interval) is required")
    interval = _choice("interval", INTERVALS, "", interval_text)
    quantity = _positive_int("quantity", quantity_text, 1)
    count = _positive_int("interval_count", count_text, 1)
    return amount, quantity, interval, count, monthly_cents(amount, quantity, interval, count)


class _Memo(dict[_K, _V]):
    """A pure conversion, remembered by its input (a failed one raises and is not kept): files
    repeat the same dates, prices and codes on many lines."""

    def __init__(self, convert: Callable[[_K], _V]) -> None:
        super().__init__()
        self.convert = convert

    def __missing__(self, key: _K) -> _V:
        value = self.convert(key)
        if len(self) >= MEMO_LIMIT:
            self.clear()
        self[key] = value
        return value


def _dates(name: str) -> _Memo[str | None, date | None]:
    return _Memo(partial(_date, name))


class RowParser:
    """One line's values (in the order of COLUMNS; None = empty) as a canonical row, or a
    RowError saying what is wrong with the first problem found."""

    def __init__(self, base_currency: str) -> None:
        self.start_date, self.end_date = _dates("start_date"), _dates("end_date")
        self.trial_start, self.trial_end = _dates("trial_start"), _dates("trial_end")
        self.price = _Memo(_price)
        self.status = _Memo(partial(_choice, "status", STATUSES, "active"))
        self.currency = _Memo(partial(_currency, base_currency))
        self.country = _Memo(_country)
        self.flat_model = _Memo(partial(_choice, "pricing_model", PRICING_MODELS, "flat"))
        self.per_unit_model = _Memo(partial(_choice, "pricing_model", PRICING_MODELS, "per_unit"))

    def __call__(self, line: int, values: Sequence[str | None]) -> PeriodRow:
        (subscription_id, customer_id, start_date, end_date, monthly_amount, amount, interval,
         interval_count, quantity, currency, plan, status, trial_start, trial_end, pricing_model,
         customer_name, email, country) = values  # fmt: skip
        if subscription_id is None or customer_id is None:
            raise RowError("subscription_id and customer_id must not be empty")
        valid_from = self.start_date[start_date]
        if valid_from is None:
            raise RowError("start_date must not be empty")
        valid_to = self.end_date[end_date]
        if valid_to is not None and valid_to <= valid_from:
            raise RowError(f"end_date {valid_to} is not after start_date {valid_from}")
        price = self.price[monthly_amount, amount, interval, interval_count, quantity]
        models = self.flat_model if quantity is None else self.per_unit_model
        trial_from, trial_to = self.trial_start[trial_start], self.trial_end[trial_end]
        if trial_from and trial_to and trial_to < trial_from:
            raise RowError(f"trial_end {trial_to} is before trial_start {trial_from}")
        return PeriodRow(
            line=line,
            subscription_id=subscription_id,
            customer_id=customer_id,
            valid_from=valid_from,
            valid_to=valid_to,
            status=self.status[status],
            plan=plan,
            quantity=price[1],
            amount=price[0],
            billing_interval=price[2],
            interval_count=price[3],
            currency=self.currency[currency],
            mrr=price[4],
            trial_start=trial_from,
            trial_end=trial_to,
            customer_name=customer_name,
            email=email,
            country=self.country[country],
            pricing_model=models[pricing_model],
        )


def _picker(names: list[str]) -> Callable[[list[str]], tuple[str | None, ...]]:
    """A line's raw values -> its values in the order of COLUMNS: stripped, None where empty or
    absent (a short line's missing values are empty; of a repeated column, the last non-empty
    value counts)."""
    width = len(names)
    padding: list[str | None] = [None] * (width + 1)  # the last slot stands for absent columns
    slots = {name: [i for i, given in enumerate(names) if given == name] for name in COLUMNS}
    repeated = [indexes for indexes in slots.values() if len(indexes) > 1]
    positions = [indexes[-1] if indexes else width for indexes in slots.values()]
    for extra, indexes in enumerate(repeated, start=width + 1):
        positions[positions.index(indexes[-1])] = extra
    pick = operator.itemgetter(*positions)

    def values(raw: list[str]) -> tuple[str | None, ...]:
        found: list[str | None] = [value.strip() if value else None for value in raw]
        found += padding[len(found) :]
        for indexes in repeated:
            found.append(next((v for i in reversed(indexes) if (v := found[i]) is not None), None))
        picked: tuple[str | None, ...] = pick(found)
        return picked

    return values


def read_periods(
    lines: Iterable[str], base_currency: str
) -> tuple[HeaderCheck, Iterator[PeriodRow | tuple[int, str]]]:
    """The header check and a stream of rows, or (line, reason) for each bad line."""
    reader = csv.reader(lines)
    names = [name.strip() for name in next(reader, [])]
    header = check_header(names)

    def rows() -> Iterator[PeriodRow | tuple[int, str]]:
        values, parse = _picker(names), RowParser(base_currency)
        for raw in reader:
            line = reader.line_num
            if len(raw) > len(names):
                yield line, "more values than columns in the header"
                continue
            if not raw:
                continue
            try:
                yield parse(line, values(raw))
            except RowError as error:
                yield line, str(error)

    return header, rows()
