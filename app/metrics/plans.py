"""Which path each metric query of a request took (`rollup` or `scan`), for the GraphQL
response's `extensions.plan` (docs/architecture.md, "Query plans").

A request opens a collector (`collecting`); the metrics service `record`s the plan of every
statement it runs for a series, breakdown, snapshot or cohort matrix. Resolvers run as tasks
that copy the context, so they share the collector's list.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

ROLLUP = "rollup"
SCAN = "scan"

_plans: ContextVar[list[str] | None] = ContextVar("tidemill_query_plans", default=None)


def record(plan: str) -> None:
    found = _plans.get()
    if found is not None:
        found.append(plan)


@contextmanager
def collecting() -> Iterator[list[str]]:
    """The plans recorded while inside, in order."""
    found: list[str] = []
    token = _plans.set(found)
    try:
        yield found
    finally:
        _plans.reset(token)


def summary(found: list[str]) -> str | None:
    """`rollup` or `scan` when every query took that path, `mixed` otherwise, None if none ran."""
    kinds = set(found)
    if not kinds:
        return None
    return kinds.pop() if len(kinds) == 1 else "mixed"
