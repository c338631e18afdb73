"""Canonical rows every connector produces."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import NamedTuple

from app.limits import (
    FIRST_DAY,
    LAST_DAY,
    MAX_COUNT,
    MAX_MRR,
    count_problem,
    day_problem,
    magnitude_problem,
    mrr_problem,
)


class PeriodRow(NamedTuple):
    """One state of a subscription on [valid_from, valid_to) (valid_to None = still running).

    A named tuple, not a dataclass: an import makes one per line, and a tuple is built several
    times faster (it is also most of its COPY record already)."""

    line: int
    subscription_id: str
    customer_id: str
    valid_from: date
    valid_to: date | None
    status: str
    plan: str | None
    quantity: int
    amount: Decimal  # per unit per billing period, major units
    billing_interval: str
    interval_count: int
    currency: str
    mrr: int  # cents, METRICS.md 2
    customer_name: str | None
    email: str | None
    country: str | None
    trial_start: date | None = None
    trial_end: date | None = None
    pricing_model: str = "flat"  # flat | per_unit | tiered


AMOUNT_DIGITS, AMOUNT_DECIMALS = 24, 20  # an amount's bounds, major units
# characters of an id or a plan (each is a key of a unique index, whose entries have a size
# limit): as an event's customer, which names a customer by that id (app/usage/events.py)
MAX_ID = 200


def period_problem(row: PeriodRow) -> str | None:
    """Why a canonical row cannot be stored (app.limits), whatever its source. A good row is
    passed by one expression (this runs for every row of every import)."""
    valid_to, trial_start, trial_end = row.valid_to, row.trial_start, row.trial_end
    if (
        0 <= row.mrr <= MAX_MRR
        and 0 <= row.quantity <= MAX_COUNT
        and 1 <= row.interval_count <= MAX_COUNT
        and FIRST_DAY <= row.valid_from <= LAST_DAY
        and (valid_to is None or valid_to <= LAST_DAY)
        and (trial_start is None or FIRST_DAY <= trial_start <= LAST_DAY)
        and (trial_end is None or FIRST_DAY <= trial_end <= LAST_DAY)
        and _amount_problem(row.amount) is None
        and len(row.subscription_id) <= MAX_ID
        and len(row.customer_id) <= MAX_ID
        and (row.plan is None or len(row.plan) <= MAX_ID)
        and "\x00" not in f"{row.subscription_id}{row.customer_id}{row.plan}{row.customer_name}"
        and (row.email is None or "\x00" not in row.email)
    ):
        return None
    return _first_problem(row)


def _first_problem(row: PeriodRow) -> str | None:
    texts = (row.subscription_id, row.customer_id, row.plan, row.customer_name, row.email)
    return (
        mrr_problem(row.mrr)
        or count_problem("quantity", row.quantity)
        or count_problem("interval count", row.interval_count, least=1)
        or day_problem("start date", row.valid_from)
        or day_problem("end date", row.valid_to)
        or day_problem("trial start", row.trial_start)
        or day_problem("trial end", row.trial_end)
        or _amount_problem(row.amount)
        or _id_problem(row)
        or ("a text value holds a NUL byte" if any(t and "\x00" in t for t in texts) else None)
    )


def _id_problem(row: PeriodRow) -> str | None:
    ids = {"subscription_id": row.subscription_id, "customer_id": row.customer_id}
    for column, text in {**ids, "plan": row.plan}.items():
        if text is not None and len(text) > MAX_ID:
            return f"{column} is {len(text):,} characters long; at most {MAX_ID}"
    return None


@lru_cache(maxsize=4096)
def _amount_problem(amount: Decimal) -> str | None:
    """(Remembered: a source repeats a few prices on many rows.)"""
    if not amount.is_finite() or amount < 0:
        return f"amount {amount} is not a finite number >= 0"
    problem = magnitude_problem(amount, AMOUNT_DIGITS, AMOUNT_DECIMALS)
    return problem and f"amount {amount} {problem}"
