"""Observed objects: one state of one source object at one event's time (table source_object)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Json = Mapping[str, Any]


@dataclass(frozen=True)
class Observed:
    object_type: str
    object_id: str
    observed_at: datetime
    event_id: str
    payload: Json
    customer_ref: str | None = None  # the source's id of the customer it belongs to
    refs: tuple[str, ...] = ()  # ids of the objects its translation reads (prices, coupons)

    @property
    def order(self) -> tuple[datetime, str]:
        """Event time, then the event id: the same order whatever the delivery order."""
        return (self.observed_at, self.event_id)


@dataclass(frozen=True)
class Event:
    """An event as a translator reads it from a delivery."""

    event_id: str
    type: str
    occurred_at: datetime
    api_version: str | None
    objects: tuple[Observed, ...] = ()
    handled: bool = True  # False: an unknown type, stored and marked ignored
    payload: Json = field(default_factory=dict)
