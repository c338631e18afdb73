"""`extensions.plan` of a response: `rollup` when every series, breakdown, snapshot and cohort
statement of the operation read the per-period aggregates, `scan` when each scanned movements,
`mixed` otherwise (docs/architecture.md, "Query plans"). Absent when the operation ran none."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from strawberry.extensions import SchemaExtension

from app.metrics import plans


class QueryPlans(SchemaExtension):
    found: list[str]

    def on_operation(self) -> Iterator[None]:
        with plans.collecting() as found:
            self.found = found
            yield

    def get_results(self) -> dict[str, Any]:
        plan = plans.summary(getattr(self, "found", []))
        return {} if plan is None else {"plan": plan}
