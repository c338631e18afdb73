"""Per-request context: the shared service plus request-scoped caches.

A mutation operation runs in one database transaction (`Context.atomic`, opened by the schema's
AtomicMutations extension): while it runs, `context.metrics` is a service bound to that
transaction, so every resolver and dataloader of the operation reads and writes through it. The
binding is a context variable, so the operations of one batched request stay apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from app.db import SharedTransaction
from app.ingest.sources import SourceServices
from app.metrics.service import MetricsEngine
from resolvers.loaders import Loaders

T = TypeVar("T")

# (the context, the service bound to its operation's transaction) while an operation is atomic
_bound: ContextVar[tuple[object, MetricsEngine] | None] = ContextVar("tidemill_bound", default=None)


class _OperationService:
    """`Context.metrics`: the shared service, or inside `Context.atomic()` the one bound to that
    operation's transaction."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.attribute = f"_{name}"

    def __get__(self, context: object, owner: type | None = None) -> MetricsEngine:
        if context is None:
            raise AttributeError("no default")  # a required dataclass field
        bound = _bound.get()
        if bound is not None and bound[0] is context:
            return bound[1]
        shared: MetricsEngine = getattr(context, self.attribute)
        return shared

    def __set__(self, context: object, service: MetricsEngine) -> None:
        setattr(context, self.attribute, service)


@dataclass
class Outcome:
    """How an atomic operation ended: `failed` rolls its transaction back."""

    failed: bool = False


@dataclass
class Context:
    metrics: _OperationService = _OperationService()
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    sources: SourceServices | None = None  # a server's (sources, secrets, backfills)
    _memo: dict[Hashable, asyncio.Future[Any]] = field(default_factory=dict)
    _loaders: dict[int, Loaders] = field(default_factory=dict)

    @property
    def loaders(self) -> Loaders:
        """This request's dataloaders (created on first use; an atomic operation gets its own,
        reading through its transaction)."""
        service = self.metrics
        if id(service) not in self._loaders:
            today = datetime.datetime.now(datetime.UTC).date()
            self._loaders[id(service)] = Loaders(service.engine, today)
        return self._loaders[id(service)]

    async def once(self, key: Hashable, compute: Callable[[], Awaitable[T]]) -> T:
        """Run `compute` once per request for `key` (sibling fields share one SQL query)."""
        if key not in self._memo:
            self._memo[key] = asyncio.ensure_future(compute())
        result: T = await self._memo[key]
        return result

    @contextlib.contextmanager
    def reading(self, service: MetricsEngine) -> Iterator[None]:
        """Run the block's resolvers through `service` (a read target at a data version). A
        context variable: the operations of a batch, each in its own task, stay apart."""
        token = _bound.set((self, service))
        try:
            yield
        finally:
            _bound.reset(token)
            self._loaders.pop(id(service), None)

    @contextlib.asynccontextmanager
    async def atomic(self) -> AsyncIterator[Outcome]:
        """One transaction for everything the block runs through `self.metrics`: committed at
        the end, rolled back if the block raises or marks the outcome failed."""
        shared = self.metrics
        if isinstance(shared.engine, SharedTransaction):  # already inside one
            yield Outcome()
            return
        async with shared.engine.connect() as connection:
            transaction = await connection.begin()
            operation = SharedTransaction(connection)
            bound = shared.within(operation)
            token = _bound.set((self, bound))
            outcome = Outcome()
            try:
                yield outcome
            finally:
                _bound.reset(token)
                self._loaders.pop(id(bound), None)
            if outcome.failed:
                await transaction.rollback()
                return
            await transaction.commit()
        for work in operation.after_commit:
            await work()
