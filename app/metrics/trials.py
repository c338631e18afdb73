"""Trials (METRICS.md 6), from the canonical subscription history.

A trial belongs to a subscription with `trial_start` (or `trialing` versions, whose first day
is then the start and whose end is the trial's end). Read the way a finance team would:
- it **converts** on the first day from its start on which a version contributes MRR (status
  active/past_due with MRR > 0), provided the subscription had not ended (canceled,
  incomplete_expired, or its history stopped) before: a late conversion counts as converted;
- otherwise it **expires** on the earlier of its trial end and the subscription's end;
- a trial neither converted nor expired by a day is in progress on that day.
Each trial is counted once, as converted or as expired, never both.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import ColumnElement, FromClause, Select

from app.metrics.cube import Cube
from app.metrics.mrr import Scope, period_key, step, where_clauses
from app.metrics.periods import period_count, period_end
from app.metrics.points import rate
from app.metrics.rollup import Members
from app.metrics.spec import Interval, QuerySpec
from app.metrics.universe import universe
from app.movements import CONTRIBUTING_STATUSES
from app.tables import customer, plan, subscription, subscription_version, trial

ENDING_STATUSES = ("canceled", "incomplete_expired")
MAX_POINTS = 3_700  # as for series: ten years of days


@dataclass(frozen=True)
class TrialsRequest:
    start: date
    end: date
    interval: Interval = Interval.MONTH
    spec: QuerySpec = field(default_factory=QuerySpec)


@dataclass(frozen=True)
class TrialPoint:
    date: datetime.date
    end_date: datetime.date
    trials_started: int
    trials_converted: int
    trials_expired: int
    conversion_rate: float | None


@dataclass(frozen=True)
class TrialFunnel:
    """Trials started in the range, and what became of them by its end."""

    started: int
    converted: int
    expired: int
    in_progress: int
    conversion_rate: float | None


@dataclass(frozen=True)
class Trials:
    points: tuple[TrialPoint, ...]
    funnel: TrialFunnel


def request_problems(request: TrialsRequest) -> list[str]:
    problems = []
    if request.start > request.end:
        problems.append(f"start {request.start} is after end {request.end}")
    elif (count := period_count(request.start, request.end, request.interval)) > MAX_POINTS:
        problems.append(f"the series would have {count} points; at most {MAX_POINTS} are served")
    if request.spec.dimensions or request.spec.compare:
        problems.append("trials take filters, not dimensions or compareSegments")
    return problems


def conversion_rate(converted: int, expired: int) -> float | None:
    total = converted + expired
    return rate(converted, total)


def _first(value: ColumnElement[Any], order: ColumnElement[Any]) -> ColumnElement[Any]:
    return sa.func.array_agg(aggregate_order_by(value, order), type_=ARRAY(value.type))[1]


def _with_a_trial(versions: FromClause = subscription_version) -> Select[Any]:
    """The subscriptions that have a trial (the only ones `trial_facts` keeps): aggregating
    just their versions is a fraction of the work of aggregating every subscription's."""
    v = versions.alias("with_trial")
    return sa.select(v.c.subscription_id).where(
        sa.or_(v.c.trial_start.is_not(None), v.c.status == "trialing")
    )


# A first import's chunk (app.ingest.recompute.NEW_VERSION and CHUNK_SUBSCRIPTION): its
# periods and its subscriptions, every one of them new.
Chunk = tuple[FromClause, FromClause]


def trial_facts(members: Members | None = None, chunk: Chunk | None = None) -> FromClause:
    """One row per trial: subscription, customer, first plan/currency/interval, and its start,
    conversion and expiry days; of the customers in `members` (their subscriptions, each
    read whole), else of every customer; or of the subscriptions of a first import's `chunk`,
    read from its own periods (the stored ones, a growing table, are not searched for them).
    Kept in the table `trial` by the recompute (`keep_trials`), which the queries read."""
    v, s = chunk or (subscription_version, subscription)
    if chunk is not None:  # its periods are its subscriptions' whole history
        chosen = v.c.subscription_id.in_(_with_a_trial(v))
    elif members is None:
        chosen = v.c.subscription_id.in_(_with_a_trial())
    else:  # the trials among them are those with a start (HAVING below)
        chosen = v.c.subscription_id.in_(sa.select(s.c.id).where(members(s.c.customer_id)))
    trialing = v.c.status == "trialing"
    paid = v.c.status.in_(CONTRIBUTING_STATUSES) & (v.c.mrr > 0)
    started = sa.func.coalesce(
        sa.func.min(v.c.trial_start), sa.func.min(v.c.valid_from).filter(trialing)
    )
    history = (
        sa.select(
            v.c.subscription_id,
            s.c.customer_id,
            started.label("started"),
            sa.func.coalesce(
                sa.func.max(v.c.trial_end), sa.func.max(v.c.valid_to).filter(trialing)
            ).label("trial_end"),
            sa.func.min(v.c.valid_from).filter(paid).label("paid_day"),
            sa.func.min(v.c.valid_from).filter(v.c.status.in_(ENDING_STATUSES)).label("ended"),
            sa.case((sa.func.bool_and(v.c.valid_to.is_not(None)), sa.func.max(v.c.valid_to))).label(
                "history_end"
            ),
            _first(v.c.plan_id, v.c.valid_from).label("plan_id"),
            _first(v.c.currency, v.c.valid_from).label("currency"),
            _first(v.c.billing_interval, v.c.valid_from).label("plan_interval"),
        )
        .join_from(v, s, s.c.id == v.c.subscription_id)
        .where(chosen)
        .group_by(v.c.subscription_id, s.c.customer_id)
        .having(started.is_not(None))
        .subquery("trial_history")
    )
    end_day = sa.func.least(history.c.ended, history.c.history_end)
    converts = (history.c.paid_day >= history.c.started) & sa.or_(
        end_day.is_(None), history.c.paid_day < end_day
    )
    converted = sa.case((converts, history.c.paid_day))
    expired = sa.case(
        (sa.not_(sa.func.coalesce(converts, False)), sa.func.least(history.c.trial_end, end_day))
    )
    return sa.select(
        history.c.subscription_id,
        history.c.customer_id,
        history.c.plan_id,
        history.c.currency,
        history.c.plan_interval,
        history.c.started,
        converted.label("converted"),
        expired.label("expired"),
    ).subquery("trials")


TRIAL_COLUMNS = [column.name for column in trial.columns]


async def keep_trials(
    connection: AsyncConnection, members: Members, fresh: bool, chunk: Chunk | None = None
) -> None:
    """The `trial` rows of the customers in `members` derived again from their versions (run by
    the recompute after their versions changed; `fresh`: they have none yet; `chunk`: they are
    a first import's chunk, derived from its periods). A trial whose subscription moved
    between customers goes with it: the rows of their subscriptions are replaced too."""
    if not fresh:  # two statements, each by an index (an OR of both read every trial)
        theirs = sa.select(subscription.c.id).where(members(subscription.c.customer_id))
        await connection.execute(sa.delete(trial).where(members(trial.c.customer_id)))
        await connection.execute(sa.delete(trial).where(trial.c.subscription_id.in_(theirs)))
    facts = trial_facts(members, chunk)
    await connection.execute(
        sa.insert(trial).from_select(TRIAL_COLUMNS, sa.select(*(facts.c[n] for n in TRIAL_COLUMNS)))
    )


def _scoped(cube: Cube, spec: QuerySpec, end: ColumnElement[Any]) -> Select[Any]:
    facts = trial
    scope = Scope(cube, spec, end)
    query = sa.select(facts).where(
        *where_clauses(scope, spec, facts, {}), *universe(cube, spec, facts.c.customer_id, end)
    )
    if any(d.needs_plan for d in scope.used()):
        query = query.outerjoin_from(facts, plan, plan.c.id == facts.c.plan_id)
    if scope.needs_customer:
        query = query.join_from(facts, customer, customer.c.id == facts.c.customer_id)
    return query


def compile_trials(cube: Cube, request: TrialsRequest) -> Select[tuple[object, ...]]:
    """Per period key `k`: trials started, converted and expired (each on its own day)."""
    start = sa.bindparam("start", request.start, type_=sa.Date)
    end = sa.bindparam("end", request.end, type_=sa.Date)
    # A CTE: the three counts below read the trials once (PostgreSQL materializes a CTE that
    # is referenced several times), not three times.
    trials = _scoped(cube, request.spec, end).cte("scoped_trials")
    periods = sa.select(
        sa.cast(
            sa.func.generate_series(
                sa.func.date_trunc(request.interval.value, sa.cast(start, sa.DateTime)),
                sa.cast(end, sa.DateTime),
                step(request.interval),
            ),
            sa.Date,
        ).label("k")
    ).subquery("periods")

    def counted(day: ColumnElement[Any], name: str) -> FromClause:
        key = period_key(day, request.interval)
        return (
            sa.select(key.label("k"), sa.func.count().label(name))
            .where(day.between(start, end))
            .group_by(key)
            .subquery(name)
        )

    started = counted(trials.c.started, "started")
    converted = counted(trials.c.converted, "converted")
    expired = counted(trials.c.expired, "expired")
    return (
        sa.select(
            periods.c.k,
            sa.func.coalesce(started.c.started, 0).label("started"),
            sa.func.coalesce(converted.c.converted, 0).label("converted"),
            sa.func.coalesce(expired.c.expired, 0).label("expired"),
        )
        .outerjoin(started, started.c.k == periods.c.k)
        .outerjoin(converted, converted.c.k == periods.c.k)
        .outerjoin(expired, expired.c.k == periods.c.k)
        .order_by(periods.c.k)
    )


def compile_funnel(cube: Cube, request: TrialsRequest) -> Select[int, int, int]:
    end = sa.bindparam("end", request.end, type_=sa.Date)
    trials = _scoped(cube, request.spec, end).subquery("scoped_trials")
    started = trials.c.started.between(sa.bindparam("start", request.start, type_=sa.Date), end)
    return sa.select(
        sa.func.count().label("started"),
        sa.func.count().filter(trials.c.converted <= end).label("converted"),
        sa.func.count().filter(trials.c.expired <= end).label("expired"),
    ).where(started)


def build_trials(rows: Sequence[Any], funnel: Any, request: TrialsRequest) -> Trials:
    points = tuple(
        TrialPoint(
            date=max(row["k"], request.start),
            end_date=min(period_end(row["k"], request.interval), request.end),
            trials_started=row["started"],
            trials_converted=row["converted"],
            trials_expired=row["expired"],
            conversion_rate=conversion_rate(row["converted"], row["expired"]),
        )
        for row in rows
    )
    started, converted, expired = funnel["started"], funnel["converted"], funnel["expired"]
    return Trials(
        points=points,
        funnel=TrialFunnel(
            started=started,
            converted=converted,
            expired=expired,
            in_progress=started - converted - expired,
            conversion_rate=conversion_rate(converted, expired),
        ),
    )
