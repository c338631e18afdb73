"""Which Point fields a query selects, so the service computes only those."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from strawberry.types import Info
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection


def _fields(selections: Iterable[Selection]) -> Iterator[SelectedField]:
    for selection in selections:
        if isinstance(selection, FragmentSpread | InlineFragment):
            yield from _fields(selection.selections)
        else:
            yield selection


def _child(field: SelectedField, name: str) -> list[SelectedField]:
    return [child for child in _fields(field.selections) if child.name == name]


def _summary_fields(field: SelectedField) -> set[str]:
    return {str(summary.arguments.get("field", "mrr")) for summary in _child(field, "summary")}


# The Point fields a waterfall is made of (app.metrics.waterfall).
WATERFALL_FIELDS = frozenset(
    {"mrr", "new", "expansion", "reactivation", "contraction", "churn", "netNewMrr", "fxAdjustment"}
)


def wanted_point_fields(info: Info) -> set[str]:
    """GraphQL names of Point fields selected under points, summary(field), breakdown and
    waterfall."""
    wanted: set[str] = set()
    for series in _fields(info.selected_fields):
        if _child(series, "waterfall"):
            wanted |= WATERFALL_FIELDS
        wanted |= {
            f.name for points in _child(series, "points") for f in _fields(points.selections)
        }
        wanted |= _summary_fields(series)
        for entry in _child(series, "breakdown"):
            wanted |= {f.name for p in _child(entry, "points") for f in _fields(p.selections)}
            wanted |= _summary_fields(entry)
    return wanted


def selected_names(info: Info) -> set[str]:
    return {f.name for field in info.selected_fields for f in _fields(field.selections)}


def nested_names(info: Info, *path: str) -> set[str]:
    """Names selected at `path` under the current field (e.g. "edges", "node")."""
    level = list(_fields(info.selected_fields))
    for name in path:
        level = [child for field in level for child in _child(field, name)]
    return {f.name for field in level for f in _fields(field.selections)}
