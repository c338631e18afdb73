"""Per-request context: the shared service plus request-scoped caches."""

from __future__ import annotations

import asyncio
import datetime
import functools
import uuid
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from app.metrics.service import MetricsEngine
from resolvers.loaders import Loaders

T = TypeVar("T")


@dataclass
class Context:
    metrics: MetricsEngine
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    _memo: dict[Hashable, asyncio.Future[Any]] = field(default_factory=dict)

    @functools.cached_property
    def loaders(self) -> Loaders:
        """This request's dataloaders (created on first use)."""
        return Loaders(self.metrics.engine, datetime.datetime.now(datetime.UTC).date())

    async def once(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        """Run `compute` once per request for `key` (sibling fields share one SQL query)."""
        if key not in self._memo:
            self._memo[key] = asyncio.ensure_future(compute())
        result: T = await self._memo[key]
        return result
