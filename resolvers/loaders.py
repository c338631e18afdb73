"""Dataloaders, created per request: per-customer facts for a whole page in one query each."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from typing import TypeVar

from aiodataloader import DataLoader

from app import attributes, customers
from app.customers import MrrAt
from app.db import Database
from app.metrics.service import MetricsEngine
from app.metrics.usage import Window
from app.usage.service import UsageService

T = TypeVar("T")


def _loader(fetch: Callable[[Sequence[int]], Awaitable[Sequence[T]]]) -> DataLoader[int, T]:
    async def batch(ids: list[int]) -> list[T]:
        return list(await fetch(ids))

    return DataLoader(batch)


class Loaders:
    """One loader per per-customer fact; keys are customer ids."""

    def __init__(self, engine: Database, today: date) -> None:
        self.customer = _loader(lambda ids: customers.customers_by_id(engine, ids))
        self.state = _loader(lambda ids: customers.states(engine, ids, today))
        self.subscriptions = _loader(lambda ids: customers.subscriptions_of(engine, ids, today))
        self.activities = _loader(lambda ids: customers.activities_of(engine, ids))
        self.attributes = _loader(lambda ids: attributes.values_of(engine, ids))
        self.engine = engine
        self._mrr_series: dict[customers.MrrSeriesRequest, DataLoader[int, list[MrrAt]]] = {}
        self._usage: dict[tuple[int, Window], DataLoader[int, float | None]] = {}

    def mrr_series(self, request: customers.MrrSeriesRequest) -> DataLoader[int, list[MrrAt]]:
        """The loader of customers' MRR series over one range (one per range asked)."""
        if request not in self._mrr_series:
            engine = self.engine
            self._mrr_series[request] = _loader(
                lambda ids: customers.mrr_series(engine, ids, request)
            )
        return self._mrr_series[request]

    def usage(self, metric_id: int, window: Window) -> DataLoader[int, float | None]:
        """The loader of customers' values of one usage metric over one window."""
        key = (metric_id, window)
        if key not in self._usage:
            service = UsageService(MetricsEngine(self.engine))
            self._usage[key] = _loader(lambda ids: service.values_of(metric_id, window, ids))
        return self._usage[key]
