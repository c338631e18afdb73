"""Parse a *subscription periods* CSV into canonical rows, one line at a time.

Columns: subscription_id, customer_id, start_date, end_date (exclusive, empty = open) and either
monthly_amount (the subscription's monthly total) or amount + interval [+ interval_count,
quantity]; optional: currency, plan, status, trial_start, trial_end, pricing_model (flat,
per_unit or tiered; default per_unit when the row gives a quantity, else flat), customer_name,
email, country.
"""

from __future__ import annotations

import io
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import partial
from pathlib import Path
from typing import TypeVar

from app import strict
from app.ingest.csvfile import (
    ByteRange,
    CsvRow,
    Part,
    TextLines,
    csv_rows,
    split_records,
    with_header,
)
from app.ingest.rows import AMOUNT_DECIMALS, AMOUNT_DIGITS, PeriodRow
from app.ingest.staging import PROCESSES
from app.limits import MAX_COUNT, day_problem, magnitude_problem, mrr_problem
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
    repeated: tuple[str, ...] = ()
    unreadable: str | None = None  # the header line itself is bad (or there is none)
    names: tuple[str, ...] = ()  # the header's column names, as given

    def problems(self) -> list[str]:
        if self.unreadable:
            return [self.unreadable]
        found = []
        if self.missing:
            found.append(f"missing required column(s): {', '.join(self.missing)}")
        if self.unknown:
            accepted = ", ".join(COLUMNS)
            found.append(f"unknown column(s): {', '.join(self.unknown)} (accepted: {accepted})")
        if self.repeated:
            found.append(f"column(s) given twice: {', '.join(self.repeated)}")
        return found


def check_header(fields: list[str]) -> HeaderCheck:
    missing = [name for name in REQUIRED if name not in fields]
    if "monthly_amount" not in fields and not {"amount", "interval"} <= set(fields):
        missing.append("monthly_amount (or amount and interval)")
    unknown = [name for name in fields if name not in COLUMNS]
    repeated = sorted({name for name in fields if fields.count(name) > 1})
    return HeaderCheck(tuple(missing), tuple(unknown), tuple(repeated), names=tuple(fields))


def _date(name: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        day = strict.day(value)
    except ValueError:
        raise RowError(f"{name} {value!r} is not a date (expected YYYY-MM-DD)") from None
    if problem := day_problem(name, day):
        raise RowError(problem)
    return day


def _decimal(name: str, value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        number = strict.decimal(value)
    except (ValueError, InvalidOperation):
        raise RowError(f"{name} {value!r} is not a number") from None
    if not number.is_finite():
        raise RowError(f"{name} {value!r} is not a finite number")
    if number < 0:
        raise RowError(f"{name} {value!r} is negative (amounts must be >= 0)")
    if problem := magnitude_problem(number, AMOUNT_DIGITS, AMOUNT_DECIMALS):
        raise RowError(f"{name} {value!r} {problem}")
    return number


def _positive_int(name: str, value: str | None, default: int) -> int:
    if value is None:
        return default
    whole = value.isascii() and value.isdigit() and len(value) <= len(str(MAX_COUNT))
    if not whole or not 1 <= int(value) <= MAX_COUNT:
        raise RowError(f"{name} {value!r} is not a whole number between 1 and {MAX_COUNT:,}")
    return int(value)


def _checked_mrr(column: str, text: str | None, mrr: int) -> int:
    if problem := mrr_problem(mrr):
        raise RowError(f"{column} {text!r}: {problem}")
    return mrr


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
        mrr = _checked_mrr("monthly_amount", monthly_text, monthly_cents(monthly, 1, "month", 1))
        return monthly, 1, "month", 1, mrr
    if amount is None:
        raise RowError("monthly_amount (or amount with interval) is required")
    interval = _choice("interval", INTERVALS, "", interval_text)
    quantity = _positive_int("quantity", quantity_text, 1)
    count = _positive_int("interval_count", count_text, 1)
    mrr = _checked_mrr("amount", amount_text, monthly_cents(amount, quantity, interval, count))
    return amount, quantity, interval, count, mrr


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
        # positional, in PeriodRow's order (keywords cost more than the rest of the call)
        return PeriodRow(
            line,
            subscription_id,
            customer_id,
            valid_from,
            valid_to,
            self.status[status],
            plan,
            price[1],  # quantity
            price[0],  # amount
            price[2],  # billing_interval
            price[3],  # interval_count
            self.currency[currency],
            price[4],  # mrr
            customer_name,
            email,
            self.country[country],
            trial_from,
            trial_to,
            models[pricing_model],
        )


def _picker(names: list[str]) -> Callable[[list[str]], tuple[str | None, ...]]:
    """A line's raw values -> its values in the order of COLUMNS: stripped, None where empty or
    absent (a short line's missing values are empty; the header has no repeated column)."""
    width = len(names)
    padding: list[str | None] = [None] * (width + 1)  # the last slot stands for absent columns
    pick = operator.itemgetter(*(names.index(name) if name in names else width for name in COLUMNS))

    def values(raw: list[str]) -> tuple[str | None, ...]:
        found: list[str | None] = [value.strip() or None for value in raw]
        found += padding[len(found) :]
        picked: tuple[str | None, ...] = pick(found)
        return picked

    return values


def read_periods(
    lines: TextLines | Iterable[str], base_currency: str
) -> tuple[HeaderCheck, Iterator[PeriodRow | tuple[int, str]]]:
    """The header check and a stream of rows, or (line, reason) for each bad line."""
    names, unreadable, rows = with_header(lines)
    if unreadable:
        return HeaderCheck((), (), unreadable=unreadable), iter(())
    return check_header(names), _periods(rows, names, base_currency)


def _periods(
    rows: Iterable[CsvRow], names: list[str], base_currency: str
) -> Iterator[PeriodRow | tuple[int, str]]:
    values, parse = _picker(names), RowParser(base_currency)
    for line, raw, problem in rows:
        if problem:
            yield line, problem
        elif len(raw) > len(names):
            yield line, "more values than columns in the header"
        elif raw:
            try:
                yield parse(line, values(raw))
            except RowError as error:
                yield line, str(error)


@dataclass(frozen=True)
class PeriodsFile:
    """A periods file whose header passed `check_header`, to be read in parts by several
    processes (app.ingest.staging): picklable, each part read as the whole file would be."""

    path: Path
    names: tuple[str, ...]
    base_currency: str
    processes: int = PROCESSES

    def parts(self, count: int) -> list[Part]:
        return split_records(self.path, count)

    def read(self, part: Part) -> tuple[Iterator[PeriodRow | tuple[int, str]], ByteRange]:
        """The rows of one part, and the stream they are read from (its `read_bytes`)."""
        start, end, first_line = part
        stream = ByteRange(self.path, start, end)
        lines = TextLines(io.BufferedReader(stream, 1 << 20), first_line=first_line)
        return _periods(csv_rows(lines), list(self.names), self.base_currency), stream
