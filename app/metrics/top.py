"""A breakdown limited to its top values, plus one entry for all the others.

The top values of the breakdown's one dimension are those with the most MRR at the end of the
range (the largest in any compared segment), ties by value. The other values are not added up
from their entries (a customer on two of them would count twice, and a move between two of
them would be churn plus new): they are one more query, the series of the scope "the
dimension is none of the top values", which METRICS.md 3 defines like any filtered view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from app.errors import InvalidQuery
from app.metrics.mrr import NO_VALUE
from app.metrics.points import Breakdown
from app.metrics.spec import Filter, FilterOp, SeriesRequest

OTHER = "(other)"  # the key part of the entry that holds every value beyond the top
MAX_TOP = 100


def top_problems(spec_dimensions: Sequence[str], top: int) -> None:
    problems = []
    if len(spec_dimensions) != 1:
        problems.append(f"top takes exactly one dimension, not {len(spec_dimensions)}")
    if not 1 <= top <= MAX_TOP:
        problems.append(f"top must be between 1 and {MAX_TOP}, not {top}")
    if problems:
        raise InvalidQuery(problems)


def top_values(entries: Sequence[Breakdown], top: int) -> tuple[str, ...] | None:
    """The `top` values by MRR at the end, ranked (None when there are no more values)."""
    best: dict[str, int] = {}
    for entry in entries:
        value, last = entry.key[-1], entry.points[-1].mrr if entry.points else 0
        best[value] = max(best.get(value, last), last)
    if len(best) <= top:
        return None
    ranked = sorted(best, key=lambda value: (-best[value], value))
    return tuple(ranked[:top])


def ranked(entries: Sequence[Breakdown], kept: tuple[str, ...]) -> list[Breakdown]:
    """The entries of the kept values, by rank within each compared segment (in its order)."""
    branches = {entry.key[:-1]: index for index, entry in reversed(list(enumerate(entries)))}
    found = [entry for entry in entries if entry.key[-1] in kept]
    return sorted(found, key=lambda e: (branches[e.key[:-1]], kept.index(e.key[-1])))


def other_request(request: SeriesRequest, kept: tuple[str, ...]) -> SeriesRequest:
    """The series request of every value but `kept`: the dimension becomes a filter."""
    spec = request.spec
    [dimension] = spec.dimensions
    named = tuple(sorted(set(kept) - {NO_VALUE}))
    scope: tuple[Filter, ...] = (Filter(dimension, FilterOp.NOT_IN, named),) if named else ()
    if NO_VALUE in kept:
        scope += (Filter(dimension, FilterOp.IS_NOT_NULL),)
    return replace(request, spec=replace(spec, dimensions=(), filters=spec.filters + scope))


def as_other(entry: Breakdown) -> Breakdown:
    """An entry of the other values: `(other)` after the compared segment, if any."""
    key = (*entry.key, OTHER)
    return Breakdown(key, " / ".join((*entry.key, "Other")), entry.points, other=True)
