"""What a live source's translator produces for one customer: its canonical rows, whole.

A translator rebuilds a customer from every state observed of its objects, so the result does
not depend on the order the events came in; `app.ingest.apply` stores it and recomputes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal


@dataclass(frozen=True)
class CustomerRecord:
    external_id: str
    name: str | None = None
    email: str | None = None
    country: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)  # metadata, as text


@dataclass(frozen=True)
class PlanRecord:
    external_id: str
    name: str
    product: str | None = None


@dataclass(frozen=True)
class ItemRecord:
    plan: str | None  # PlanRecord.external_id
    quantity: int
    amount: Decimal  # per unit per billing period, major units (tiered: the average)
    mrr: int  # cents: its share of the version's MRR
    billing_interval: str
    interval_count: int
    pricing_model: str  # flat | per_unit | tiered
    usage_type: str = "licensed"  # licensed | metered


@dataclass(frozen=True)
class VersionRecord:
    """A subscription's state on [valid_from, valid_to) (valid_to None: still so)."""

    valid_from: date
    valid_to: date | None
    status: str
    currency: str
    mrr: int  # cents, METRICS.md 2
    items: tuple[ItemRecord, ...]
    trial_start: date | None = None
    trial_end: date | None = None
    collection_method: str | None = None


@dataclass(frozen=True)
class SubscriptionRecord:
    external_id: str
    versions: tuple[VersionRecord, ...]


@dataclass(frozen=True)
class CustomerBundle:
    customer: CustomerRecord
    plans: tuple[PlanRecord, ...] = ()
    subscriptions: tuple[SubscriptionRecord, ...] = ()
