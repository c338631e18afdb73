"""Canonical rows every connector produces."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import NamedTuple


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
