"""The MRR waterfall of one series period: from the MRR at the day before the period to the MRR
at its end, step by step (METRICS.md 4: mrr(a-1) + netNewMrr + fxAdjustment = mrr(b)).

Each step carries its running levels (`start`, `end`) and the two figures a stacked-bar chart
draws (`base`, the lower level; `size`, the step's height), so a client draws it as it is.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from app.errors import UserError
from app.metrics.points import Point

# The order of the steps between the opening and the closing MRR: growth first, then losses.
STEPS = ("new", "expansion", "reactivation", "contraction", "churn", "fx_adjustment")


@dataclass(frozen=True)
class Step:
    kind: str  # opening, one of STEPS, closing
    amount: int
    start: int  # the level before the step
    end: int  # the level after it

    @property
    def base(self) -> int:
        return min(self.start, self.end)

    @property
    def size(self) -> int:
        return abs(self.amount)


@dataclass(frozen=True)
class Waterfall:
    date: datetime.date
    end_date: datetime.date
    steps: tuple[Step, ...]


def opening_mrr(point: Point) -> int:
    """mrr(a-1): the MRR at the day before the period (fxAdjustment's definition solved)."""
    return point.mrr - point.net_new_mrr - point.fx_adjustment


def waterfall(point: Point) -> Waterfall:
    """The steps of one period: opening, the movements by kind, FX, closing."""
    level = opening_mrr(point)
    steps = [Step("opening", level, 0, level)]
    for kind in STEPS:
        amount: int = getattr(point, kind)
        steps.append(Step(kind, amount, level, level + amount))
        level += amount
    steps.append(Step("closing", point.mrr, 0, point.mrr))
    return Waterfall(point.date, point.end_date, tuple(steps))


def period_of(points: tuple[Point, ...], day: datetime.date | None) -> Point:
    """The point whose period starts on `day` (the last one when None)."""
    if not points:
        raise UserError("the series has no points")
    if day is None:
        return points[-1]
    for point in points:
        if point.date == day:
            return point
    raise UserError(
        f"no period of the series starts on {day}; periods start on "
        f"{points[0].date} .. {points[-1].date} (a point's `date`)"
    )
