"""The metrics service: validate a request against its cube, compile, execute, assemble."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from app import attributes, strict
from app.datacache import LRU, VersionedMemo
from app.db import Database
from app.errors import UserError
from app.metrics import rollup
from app.metrics.catalog import MetricInfo, catalog
from app.metrics.churn import (
    LOGO,
    REVENUE,
    ChurnPage,
    ChurnRequest,
    Cursor,
    build_page,
    compile_page,
    compile_page_end,
    compile_rollup_totals,
    compile_totals,
    derives_page,
    totals_slice,
)
from app.metrics.churn import request_problems as churn_problems
from app.metrics.cohorts import Cohort, CohortRequest, build_cohorts, compile_cohorts
from app.metrics.cohorts import request_problems as cohort_problems
from app.metrics.coverage import DataRange, compile_range
from app.metrics.cube import Cube, validate
from app.metrics.fx import Currencies
from app.metrics.ltv import Rates, history_request, ltv_of, monthly_rates, wants_ltv
from app.metrics.mrr import MRR_CUBE, NO_VALUE, compile_series, group_names, placeholder_key
from app.metrics.periods import period_count
from app.metrics.plans import ROLLUP, SCAN, record
from app.metrics.points import Breakdown, Point, build_point
from app.metrics.rollup import (
    Slice,
    cohorts_from_rollup,
    compile_cohort_rollup,
    compile_rollup_series,
    cut_counts,
    outside_cuts,
    plan_name,
    rolled_up,
    rollup_answers,
)
from app.metrics.spec import Interval, QuerySpec, SeriesRequest
from app.metrics.top import as_other, other_request, ranked, top_problems, top_values
from app.metrics.trials import Trials, TrialsRequest, build_trials, compile_funnel, compile_trials
from app.metrics.trials import request_problems as trial_problems
from app.metrics.universe import (
    listable,
    listed_members,
    members_at,
    members_key,
    spec_segment_problems,
    universes,
)
from app.tables import ledger_currency, rollup_dimension, rollup_rebuild

T = TypeVar("T")
MAX_POINTS = 3_700  # ten years of days
NUMERIC_OUT_OF_RANGE = "22003"  # PostgreSQL's SQLSTATE


def request_problems(request: SeriesRequest) -> list[str]:
    if request.start > request.end:
        return [f"start {request.start} is after end {request.end}"]
    count = period_count(request.start, request.end, request.interval)
    if count > MAX_POINTS:
        return [
            f"the series would have {count} points; at most {MAX_POINTS} are served "
            "(use a longer interval or a shorter range)"
        ]
    return []


def check(cube: Cube, spec: QuerySpec, problems: Sequence[str]) -> None:
    """Validate a spec (its segments too) against the cube, with the request's own problems."""
    validate(cube, spec, [*problems, *spec_segment_problems(cube, spec)])


def check_rates(missing: str | None) -> None:
    """Raise the user error for the first movement without an FX rate, if any."""
    if missing:
        currency, day = missing.split(" ")
        raise UserError(
            f"no FX rate for {currency} on or before {day}: load rates with "
            "`tidemill fx load` (ECB reference rates) or `tidemill fx import FILE.csv`"
        )


@contextmanager
def fitting_in_cents(report: str) -> Iterator[None]:
    """Turn a 64-bit overflow of converted amounts into the user error it is: stored amounts
    are bounded (app.limits), but a rate can multiply them past 2^63 cents."""
    try:
        yield
    except DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) != NUMERIC_OUT_OF_RANGE:
            raise
        raise UserError(
            f"amounts converted to {report} exceed 64-bit cents (9.2 x 10^18); check the FX "
            "rates or report in another currency (spec.currency)"
        ) from None


def currencies_of_spec(
    spec: QuerySpec, base: str, present: frozenset[str], start: date
) -> Currencies:
    fixed_on = start if spec.fix_fx else None
    return Currencies(base=base, report=spec.currency or base, fixed_on=fixed_on, present=present)


def day(params: Mapping[str, Any], name: str) -> date:
    value = params.get(name)
    if isinstance(value, date):
        return value
    try:
        return strict.day(str(value))
    except ValueError:
        raise UserError(f"{name} {value!r} is not a date (YYYY-MM-DD)") from None


def interval(params: Mapping[str, Any]) -> Interval:
    value = params.get("interval", Interval.MONTH)
    if isinstance(value, Interval):
        return value
    try:
        return Interval(str(value).lower())
    except ValueError:
        accepted = ", ".join(i.value for i in Interval)
        raise UserError(f"interval {value!r} is not one of: {accepted}") from None


def series_request(params: Mapping[str, Any], spec: QuerySpec) -> SeriesRequest:
    fields = frozenset(params.get("fields", ()))
    return SeriesRequest(day(params, "start"), day(params, "end"), interval(params), spec, fields)


def churn_request(params: Mapping[str, Any], spec: QuerySpec) -> ChurnRequest:
    kinds = LOGO if params.get("type", "revenue") == "logo" else REVENUE
    after = Cursor.decode(params["after"]) if params.get("after") else None
    first = int(params.get("first", 50))
    return ChurnRequest(day(params, "start"), day(params, "end"), spec, kinds, first, after)


# The ledger's currencies, whether the rollups are behind the movements, and the dimensions
# added to them (one statement).
_STATE = sa.select(
    sa.func.array(sa.select(ledger_currency.c.currency).scalar_subquery()),
    sa.exists().select_from(rollup_rebuild),
    sa.func.array(sa.select(rollup_dimension.c.name).scalar_subquery()),
)


@dataclass(frozen=True)
class State:
    """What a query's plan depends on besides the request (one data version's)."""

    present: frozenset[str]  # the ledger's currencies
    behind: bool  # the rollups are marked behind the movements: every query scans
    rolled: frozenset[str]  # the dimensions with rollup rows


# Built statements by what they are built from (a statement is a pure function of its inputs):
# a request asked again (by another caller, or after a write) is not built again, and
# SQLAlchemy finds its compiled SQL by the statement's remembered cache key. A scan's statement
# with its cache key takes about 300 KiB: a dashboard's few dozen shapes fit.
_STATEMENTS: LRU[sa.Select[tuple[object, ...]]] = LRU(64)


def series_statement(
    cube: Cube,
    request: SeriesRequest,
    base_currency: str,
    present: frozenset[str],
    where: Slice | None,
    outside: frozenset[date] = frozenset(),
) -> sa.Select[tuple[object, ...]]:
    """The statement of a series: from the rollup (`where`; its cut periods in `outside` read
    from outside the range) or the movements."""
    key = (cube, request, base_currency, present, where, outside, rollup.CUT_SIDE)
    statement = _STATEMENTS.get(key)
    if statement is None:
        if where is None:
            statement = compile_series(cube, request, base_currency, present)
        else:
            statement = compile_rollup_series(request, where, outside)
        _STATEMENTS.put(key, statement)
    return statement


def _has_data(points: Sequence[Point]) -> bool:
    return any(point.mrr or point.net_new_mrr or point.customers for point in points)


class MetricsEngine:
    """Computes every metric in SQL. The GraphQL resolvers and the Python API share it."""

    def __init__(
        self,
        engine: Database,
        base_currency: str = "USD",
        cube: Cube = MRR_CUBE,
        rollups: bool = True,
        memo: VersionedMemo | None = None,
        version: Hashable | None = None,
    ) -> None:
        self.engine = engine
        self.base_currency = base_currency
        self.cube = cube
        self.rollups = rollups  # False: every series scans movements (TIDEMILL_ROLLUPS=off)
        self.memo = memo  # with `version`: the catalogue and currencies of that data version
        self.version = version

    def within(self, database: Database) -> MetricsEngine:
        """The same service working through `database` (e.g. one transaction)."""
        return MetricsEngine(database, self.base_currency, self.cube, self.rollups)

    def reading(self, database: Database, version: Hashable, memo: VersionedMemo) -> MetricsEngine:
        """The same service reading through `database` at data `version` (app/datacache.py):
        what does not change between writes comes from `memo`, so a metric query is one
        statement."""
        return MetricsEngine(database, self.base_currency, self.cube, self.rollups, memo, version)

    async def _versioned(self, name: str, compute: Callable[[], Awaitable[T]]) -> T:
        if self.memo is None or self.version is None:
            return await compute()
        return await self.memo.get((name, self.version), compute)

    async def query(
        self, metric: str, params: Mapping[str, Any], spec: QuerySpec | None = None
    ) -> Any:
        """The Python API: `await engine.query("mrr", {"query_type": "series", "start": ...,
        "end": ..., "interval": "month"}, spec=QuerySpec(...))`. Query types: mrr -> series,
        breakdown, snapshot; cohorts; trials; churn (params `type`: logo|revenue, `first`,
        `after`). Dates may be `date`s or ISO strings. Results are the same dataclasses the
        GraphQL API serves."""
        spec = spec or QuerySpec()
        match metric, params.get("query_type", "series"):
            case "mrr", "series":
                return await self.series(series_request(params, spec))
            case "mrr", "breakdown":
                return await self.breakdown(series_request(params, spec))
            case "mrr", "snapshot":
                return await self.snapshot(day(params, "at"), spec, frozenset())
            case "cohorts", _:
                return await self.cohorts(
                    CohortRequest(day(params, "start"), day(params, "end"), spec)
                )
            case "trials", _:
                request = TrialsRequest(
                    day(params, "start"), day(params, "end"), interval(params), spec
                )
                return await self.trials(request)
            case "churn", _:
                return await self.churn(churn_request(params, spec))
        names = ", ".join(m.name for m in catalog(self.cube))
        raise UserError(
            f"unknown metric or query type {metric!r}/{params.get('query_type')!r}; metrics: "
            f"{names} (mrr takes query_type series, breakdown or snapshot)"
        )

    async def listing(
        self, connection: AsyncConnection, cube: Cube, spec: QuerySpec, end: date
    ) -> tuple[QuerySpec, dict[str, Sequence[int]]]:
        """`spec` with the segments its statement (ending on `end`) is given the member ids
        of, and those ids as its execution parameters (`app.metrics.universe`): a segment
        whose members cost a statement to find, when it has at most MAX_LISTED. Found once
        per data version, and per `end` for a segment whose conditions read it (a few
        segments' are kept)."""
        parameters: dict[str, Sequence[int]] = {}
        for node in universes(spec):
            if not listable(cube, node):
                continue
            key = members_key(node)
            statement, at = members_at(cube, node, end)

            async def compute(statement: sa.Select[int] = statement) -> Sequence[int] | None:
                return await listed_members(connection, statement)

            if self.memo is None or self.version is None:
                ids = await compute()
            else:
                ids = await self.memo.get_large((key, at, self.version), compute)
            if ids is not None:
                parameters[key] = ids
        return replace(spec, listed=frozenset(parameters)), parameters

    async def cube_of(self, connection: AsyncConnection) -> Cube:
        """The cube with a dimension for every attribute defined now (`attr.<key>`)."""

        async def compute() -> Cube:
            return self.cube.with_dimensions(await attributes.dimensions(connection))

        return await self._versioned("cube", compute)

    async def _present(self, connection: AsyncConnection) -> frozenset[str]:
        """The currencies the ledger holds."""
        return (await self._state(connection)).present

    async def _state(self, connection: AsyncConnection) -> State:
        async def compute() -> State:
            currencies, behind, added = (await connection.execute(_STATE)).one()
            return State(frozenset(currencies), bool(behind), rolled_up(added))

        return await self._versioned("state", compute)

    async def current_cube(self) -> Cube:
        async with self.engine.connect() as connection:
            return await self.cube_of(connection)

    async def available_metrics(self) -> tuple[MetricInfo, ...]:
        """Metric families with their fields, dimensions (attributes included) and filters."""
        return catalog(await self.current_cube())

    async def _currencies(
        self, connection: AsyncConnection, spec: QuerySpec, start: date
    ) -> Currencies:
        present = await self._present(connection)
        return currencies_of_spec(spec, self.base_currency, present, start)

    async def validate(self, request: SeriesRequest) -> None:
        """Raise the user error listing everything wrong with a series request."""
        check(await self.current_cube(), request.spec, request_problems(request))

    async def _rows(self, request: SeriesRequest) -> Sequence[Any]:
        async with self.engine.connect() as connection:
            cube = await self.cube_of(connection)
            check(cube, request.spec, request_problems(request))
            state = await self._state(connection)
            present = state.present
            where = None
            if self.rollups and not state.behind:
                where = rollup_answers(request, self.base_currency, present, state.rolled)
            record(plan_name(where))
            outside = await self._outside(connection, request, where)
            spec, members = await self.listing(connection, cube, request.spec, request.end)
            request = replace(request, spec=spec)
            statement = series_statement(cube, request, self.base_currency, present, where, outside)
            with fitting_in_cents(request.spec.currency or self.base_currency):
                rows = (await connection.execute(statement, members)).mappings().all()
        if rows:
            check_rates(rows[0]["fx_missing"])
        return rows

    async def _outside(
        self, connection: AsyncConnection, request: SeriesRequest, where: Slice | None
    ) -> frozenset[date]:
        """The periods the range cuts whose customer facts cost less read from outside it
        (app.metrics.rollup.outside_cuts): from the day rows, once per data version."""
        counts = None if where is None else cut_counts(request, where)
        if counts is None:
            return frozenset()

        async def compute() -> frozenset[date]:
            return outside_cuts((await connection.execute(counts)).all())

        key = f"cuts {where} {request.start} {request.end} {request.interval.value}"
        return await self._versioned(key, compute)

    async def _churn_history(self, request: SeriesRequest) -> Rates:
        if not wants_ltv(request):
            return {}
        rows = await self._rows(history_request(request))
        return monthly_rates(rows, group_names(request.spec))

    async def series(self, request: SeriesRequest) -> tuple[Point, ...]:
        """The total series, ignoring the spec's dimensions (its filters still apply)."""
        total = replace(request, spec=replace(request.spec, dimensions=(), compare=()))
        # the LTV's churn history beside the points, on a connection of its own: two scans on
        # two cores (docs/benchmarks.md, seventeenth session: a segment's overview at 100k
        # 573 / 576 ms one after the other, 571 / 521 ms side by side)
        rows, rates = await asyncio.gather(self._rows(total), self._churn_history(total))
        ltv = ltv_of(rates) if wants_ltv(total) else None
        return tuple(build_point(row, total, ltv) for row in rows)

    async def breakdown(
        self, request: SeriesRequest, top: int | None = None
    ) -> tuple[Breakdown, ...]:
        """One series per value combination of the spec's dimensions that has any MRR or
        movement in range. With compared segments, the segment is the key's first part (in
        the order asked) and every segment is listed: a segment with no data in range once,
        under its placeholder key (its dimensions `(none)`), with zero points.

        With `top` (one dimension), only the `top` values with the most MRR at the end are
        listed, and every other value is one more entry (per compared segment), computed as
        the scope "the dimension is none of those values" (app.metrics.top)."""
        entries = await self._breakdown(request)
        if top is None:
            return entries
        top_problems(request.spec.dimensions, top)
        kept = top_values(entries, top)
        if kept is None:
            return entries
        rest = other_request(request, kept)
        if rest.spec.compare:
            others = await self._breakdown(rest)
        else:
            others = (Breakdown((), "", await self.series(rest)),)
        return (
            *ranked(entries, kept),
            *(as_other(entry) for entry in others),
        )

    async def _breakdown(self, request: SeriesRequest) -> tuple[Breakdown, ...]:
        spec = request.spec
        if not spec.groups:
            return ()
        groups = group_names(spec)
        by_key: dict[tuple[str, ...], list[Point]] = {}
        rows, rates = await asyncio.gather(self._rows(request), self._churn_history(request))
        ltv = ltv_of(rates) if rates else None
        for row in rows:
            key = tuple(str(row[g]) for g in groups)
            by_key.setdefault(key, []).append(build_point(row, request, ltv, key))
        kept = {key: points for key, points in by_key.items() if _has_data(points)}
        listed = {key[0] for key in kept} if spec.compare else set()
        for branch in spec.compare:
            placeholder = placeholder_key(spec, branch.name)
            if branch.name not in listed:
                kept[placeholder] = by_key[placeholder]
        order = {branch.name: index for index, branch in enumerate(spec.compare)}
        return tuple(
            Breakdown(key=key, label=" / ".join(key), points=tuple(points))
            for key, points in sorted(kept.items(), key=lambda item: order.get(item[0][0], 0))
        )

    async def cohorts(self, request: CohortRequest) -> tuple[Cohort, ...]:
        """The retention matrix of METRICS.md 5, one row per cohort month."""
        async with self.engine.connect() as connection:
            cube = await self.cube_of(connection)
            check(cube, request.spec, cohort_problems(request))
            state = await self._state(connection)
            currencies = currencies_of_spec(
                request.spec, self.base_currency, state.present, request.start
            )
            rolled = (
                self.rollups
                and not state.behind
                and cohorts_from_rollup(request, state.present, currencies.report)
            )
            record(ROLLUP if rolled else SCAN)
            spec, members = await self.listing(connection, cube, request.spec, request.end)
            statement = (
                compile_cohort_rollup(request)
                if rolled
                else compile_cohorts(cube, replace(request, spec=spec), currencies)
            )
            with fitting_in_cents(currencies.report):
                rows = (await connection.execute(statement, members)).mappings().all()
        if rows:
            check_rates(rows[0]["fx_missing"])
        return build_cohorts(rows, request)

    async def trials(self, request: TrialsRequest) -> Trials:
        """Trials started, converted and expired per period, and the funnel (METRICS.md 6)."""
        async with self.engine.connect() as connection:
            cube = await self.cube_of(connection)
            check(cube, request.spec, trial_problems(request))
            spec, members = await self.listing(connection, cube, request.spec, request.end)
            request = replace(request, spec=spec)
            rows = (await connection.execute(compile_trials(cube, request), members)).mappings()
            points = rows.all()
            funnel = (await connection.execute(compile_funnel(cube, request), members)).mappings()
            return build_trials(points, funnel.one(), request)

    async def churn(self, request: ChurnRequest) -> ChurnPage:
        """A page of churn (and contraction) movements with totals over all of them."""
        async with self.engine.connect() as connection:
            cube = await self.cube_of(connection)
            check(cube, request.spec, churn_problems(request))
            currencies = await self._currencies(connection, request.spec, request.start)
            state = await self._state(connection)
            where = None
            if self.rollups and not state.behind:
                where = totals_slice(request, currencies, state.rolled)
            record(plan_name(where))
            spec, members = await self.listing(connection, cube, request.spec, request.end)
            listed = replace(request, spec=spec)
            if where is None:
                statement = compile_totals(cube, listed, currencies)
            else:
                statement = compile_rollup_totals(request, where)
            with fitting_in_cents(currencies.report):
                totals = await connection.execute(statement, members)
                total = totals.mappings().one()
                check_rates(total["fx_missing"])
                last = None
                if where is not None and derives_page(cube, request):
                    last = await connection.scalar(compile_page_end(request, where))
                page = await connection.execute(
                    compile_page(cube, listed, currencies, last), members
                )
                return build_page(page.mappings().all(), total, request)

    async def data_range(self, today: date) -> DataRange:
        """The first and latest movement days, and `today`."""
        async with self.engine.connect() as connection:
            first, last = (await connection.execute(compile_range())).one()
        return DataRange(first, last, today, self.base_currency)

    async def snapshot(self, at: date, spec: QuerySpec, fields: frozenset[str]) -> Point:
        """The one-day series point of day `at`."""
        request = SeriesRequest(at, at, Interval.DAY, spec, fields)
        return (await self.series(request))[0]


__all__ = ["NO_VALUE", "Breakdown", "MetricsEngine"]
