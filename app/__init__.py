"""Tidemill: subscription-revenue metrics over GraphQL.

The Python API: `from app import MetricsEngine, QuerySpec` (loaded lazily, so the CLI and the
connectors don't pay for SQLAlchemy until they use it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.metrics.service import MetricsEngine
    from app.metrics.spec import Filter, FilterOp, Interval, QuerySpec

__all__ = ["Filter", "FilterOp", "Interval", "MetricsEngine", "QuerySpec"]


def __getattr__(name: str) -> Any:
    if name == "MetricsEngine":
        from app.metrics.service import MetricsEngine

        return MetricsEngine
    if name in {"Filter", "FilterOp", "Interval", "QuerySpec"}:
        from app.metrics import spec

        return getattr(spec, name)
    raise AttributeError(f"module 'app' has no attribute {name!r}")
