"""The rollup path (per-period aggregates kept by the recompute) gives exactly the movement
scan's answer, field by field, for every interval, the total, one-value series and breakdowns
by each rolled-up dimension; it is kept incrementally equal to a full rebuild; the response's
`extensions.plan` says which path ran (docs/architecture.md, "Query plans")."""

from __future__ import annotations

import random
from dataclasses import asdict, replace
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import SettingsError, load_settings
from app.metrics import plans
from app.metrics import rollup as rollups
from app.metrics.churn import LOGO, REVENUE, ChurnRequest
from app.metrics.cohorts import CohortRequest
from app.metrics.mrr import KINDS
from app.metrics.periods import period_end, period_start
from app.metrics.service import MetricsEngine
from app.metrics.spec import Filter, FilterOp, Interval, QuerySpec, SeriesRequest
from app.tables import rollup, rollup_rebuild
from resolvers.context import Context
from schema import schema
from tests.conftest import PLAYBOOK, import_text

HEADER = (
    "subscription_id,customer_id,start_date,end_date,amount,interval,quantity,currency,plan,status"
)
PLANS = (("Basic", 1_000), ("Pro", 4_900), ("Team", 12_345), ("Seat", 700))
FIRST = date(2022, 1, 1)
LAST = date(2024, 12, 31)


def company(seed: int, customers: int, currencies: tuple[str, ...] = ("USD",)) -> str:
    """Random-ish subscription periods: plan changes, gaps (churn, reactivation), several
    changes inside one period, second subscriptions, past_due and trialing stretches, yearly
    prices, open-ended periods."""
    rng = random.Random(seed)
    lines = [HEADER]
    subscription = 0
    span = (LAST - FIRST).days
    for customer in range(1, customers + 1):
        currency = rng.choice(currencies)
        for _ in range(rng.choice((1, 1, 1, 2))):
            subscription += 1
            day = FIRST + timedelta(days=rng.randrange(span))
            for _period in range(rng.randrange(1, 7)):
                length = rng.choice((1, 3, 9, 20, 31, 45, 90, 200, 400))
                end = day + timedelta(days=length)
                name, price = rng.choice(PLANS)
                interval = rng.choice(("month", "month", "month", "year"))
                amount = price * (12 if interval == "year" else 1)
                status = rng.choice(("active",) * 6 + ("past_due", "trialing"))
                quantity = rng.choice((1, 1, 2, 3))
                open_ended = end > LAST or rng.random() < 0.05
                lines.append(
                    f"{subscription},c{customer},{day},{'' if open_ended else end},{amount},"
                    f"{interval},{quantity},{currency},{name},{status}"
                )
                if open_ended:
                    break
                day = end + timedelta(days=rng.choice((0, 0, 0, 1, 5, 40)))
    return "\n".join(lines) + "\n"


SPECS: tuple[QuerySpec, ...] = (
    QuerySpec(),
    QuerySpec(dimensions=("plan",)),
    QuerySpec(dimensions=("currency",)),
    QuerySpec(dimensions=("plan_interval",)),
    QuerySpec(filters=(Filter("plan", FilterOp.EQ, ("Pro",)),)),
    QuerySpec(filters=(Filter("plan_interval", FilterOp.EQ, ("year",)),)),
    QuerySpec(filters=(Filter("currency", FilterOp.EQ, ("USD",)),)),
)


def whole_ranges(first: date, last: date) -> list[tuple[Interval, date, date]]:
    """Ranges made of whole periods of every interval, inside and around the data."""
    found = []
    for interval in Interval:
        for a, b in ((first, last), (date(2023, 2, 14), date(2023, 11, 20)), (last, last)):
            start = period_start(a, interval)
            end = period_end(period_start(b, interval), interval)
            if interval is Interval.DAY:
                start, end = a, min(b, a + timedelta(days=120))
            found.append((interval, start, end))
    return found


async def both_ways(engine: AsyncEngine, request: SeriesRequest) -> tuple[Any, Any, list[str]]:
    with plans.collecting() as taken:
        rolled = await MetricsEngine(engine).breakdown(request)
        total = await MetricsEngine(engine).series(request)
    scanned = await MetricsEngine(engine, rollups=False).breakdown(request)
    scanned_total = await MetricsEngine(engine, rollups=False).series(request)
    return (rolled, total), (scanned, scanned_total), taken


async def assert_same_cohorts(engine: AsyncEngine, first: date, last: date) -> None:
    """Cohorts both ways over ranges ending on month ends (the rollup's) and one that does not
    (the scan's, both times)."""
    middle = date(first.year + 1, 6, 15)
    for start, end in (
        (first, last),
        (middle, period_end(period_start(last, Interval.MONTH), Interval.MONTH)),
        (first, date(first.year + 1, 2, 28)),
        (first, middle),
    ):
        request = CohortRequest(start, end)
        with plans.collecting() as taken:
            rolled = await MetricsEngine(engine).cohorts(request)
        scanned = await MetricsEngine(engine, rollups=False).cohorts(request)
        assert rolled == scanned, (start, end)
        month_end = end == period_end(period_start(end, Interval.MONTH), Interval.MONTH)
        assert taken == ["rollup" if month_end else "scan"]


async def assert_same(engine: AsyncEngine, first: date, last: date) -> int:
    await assert_same_cohorts(engine, first, last)
    compared = 0
    for interval, start, end in whole_ranges(first, last):
        for spec in SPECS:
            for fields in (frozenset(), frozenset({"mrr", "new", "customers"})):
                request = SeriesRequest(start, end, interval, spec, fields)
                rolled, scanned, taken = await both_ways(engine, request)
                assert [asdict(x) for x in rolled[0]] == [asdict(x) for x in scanned[0]], (
                    interval,
                    spec,
                )
                assert [asdict(p) for p in rolled[1]] == [asdict(p) for p in scanned[1]], (
                    interval,
                    spec,
                )
                assert set(taken) == {"rollup"}, (interval, spec, taken)
                compared += 1
    return compared


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_rollup_equals_scan_on_random_companies(engine: AsyncEngine, seed: int) -> None:
    await import_text(engine, company(seed, 60))
    assert await assert_same(engine, FIRST, LAST) > 0


async def test_rollup_equals_scan_on_the_playbook(engine: AsyncEngine) -> None:
    await import_text(engine, PLAYBOOK.read_text())
    assert await assert_same(engine, date(2017, 9, 1), date(2019, 12, 31)) > 0


def corrected(text: str, customers: set[str], seed: int) -> str:
    """A re-import of a few customers' subscriptions: some periods dropped, some repriced or
    moved to another plan, one more subscription, and a customer never seen before."""
    rng = random.Random(seed)
    lines = [HEADER]
    for line in text.splitlines()[1:]:
        parts = line.split(",")
        if parts[1] not in customers:
            continue
        roll = rng.random()
        if roll < 0.2:
            continue  # the period is gone: its subscription is in the file, so it is replaced
        if roll < 0.6:
            parts[4] = str(int(parts[4]) + rng.choice((-300, 250, 1_000)))
            parts[8] = rng.choice(PLANS)[0]
        lines.append(",".join(parts))
    lines.append("90001,c2,2023-03-03,2023-09-17,2500,month,1,USD,Pro,active")
    lines.append("90002,c9999,2022-06-30,,4900,month,1,USD,Team,active")
    return "\n".join(lines) + "\n"


async def rollup_rows(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as connection:
        rows = await connection.execute(sa.select(rollup).order_by(*rollup.primary_key.columns))
        return [tuple(row) for row in rows]


@pytest.mark.parametrize("seed", [11, 12])
async def test_incremental_upkeep_equals_a_full_rebuild(engine: AsyncEngine, seed: int) -> None:
    text = company(seed, 60)
    await import_text(engine, text)
    built = await rollup_rows(engine)
    result = await import_text(engine, corrected(text, {"c1", "c2", "c3", "c4"}, seed))
    assert 1 <= result.changed_customers <= 5  # incremental: far fewer than half of them
    kept = await rollup_rows(engine)
    assert kept != built  # the correction moved numbers
    async with engine.begin() as connection:
        await rollups.rebuild(connection)
    assert await rollup_rows(engine) == kept
    assert await assert_same(engine, FIRST, LAST) > 0


async def test_a_rebuild_in_many_chunks_writes_each_row_once(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same rows whatever the chunks, and as compact: chunk by chunk upserts left every
    row's earlier versions behind, dead, for readers' index scans to step over (a million
    customers' rebuild left 40 per row)."""

    async def rebuilt(chunk: int) -> tuple[list[tuple[Any, ...]], int, int]:
        monkeypatch.setattr(rollups, "CHUNK_CUSTOMERS", chunk)
        async with engine.begin() as connection:
            await rollups.rebuild(connection)
        async with engine.connect() as connection:
            pages = await connection.scalar(
                sa.text("SELECT pg_relation_size('rollup') + pg_relation_size('cohort_rollup')")
            )
            cohorts = await connection.scalar(sa.text("SELECT count(*) FROM cohort_rollup"))
        return await rollup_rows(engine), int(pages or 0), int(cohorts or 0)

    await import_text(engine, company(13, 60))
    whole, whole_size, whole_cohorts = await rebuilt(1_000_000)
    chunked, chunked_size, chunked_cohorts = await rebuilt(1)  # a chunk per customer id
    assert chunked == whole
    assert chunked_cohorts == whole_cohorts > 0
    assert chunked_size == whole_size  # each row written once, either way


async def test_no_rows_are_left_for_periods_nobody_moves_in(engine: AsyncEngine) -> None:
    await import_text(engine, company(21, 40))
    await import_text(
        engine,
        "\n".join(
            [
                HEADER,
                *(
                    f"{n},c{n},2023-01-10,2023-02-20,1000,month,1,USD,Basic,active"
                    for n in (901, 902)
                ),
            ]
        )
        + "\n",
    )
    # both customers' subscriptions become one day later: their old periods' rows must go
    await import_text(
        engine,
        "\n".join(
            [
                HEADER,
                *(
                    f"{n},c{n},2023-01-11,2023-02-21,1000,month,1,USD,Basic,active"
                    for n in (901, 902)
                ),
            ]
        )
        + "\n",
    )
    kept = await rollup_rows(engine)
    assert all(row[-1] > 0 for row in kept)  # members
    async with engine.begin() as connection:
        await rollups.rebuild(connection)
    assert await rollup_rows(engine) == kept


SERIES = """
query ($start: Date!, $end: Date!, $interval: Interval!, $spec: QuerySpecInput) {
  series(start: $start, end: $end, interval: $interval, spec: $spec) {
    points { date mrr customers newCustomers churnedCustomers ltv }
  }
}
"""


async def plan_of(metrics: MetricsEngine, variables: dict[str, Any]) -> Any:
    result = await schema.execute(
        SERIES, variable_values=variables, context_value=Context(metrics=metrics)
    )
    assert result.errors is None, result.errors
    return (result.extensions or {}).get("plan"), result.data


async def test_extensions_name_the_plan_and_both_plans_agree(engine: AsyncEngine) -> None:
    await import_text(engine, company(31, 30))
    whole = {"start": "2022-01-01", "end": "2024-12-31", "interval": "MONTH"}
    by_plan = {**whole, "spec": {"dimensions": ["plan"]}}
    cut = {**whole, "end": "2024-12-30"}
    country = {
        **whole,
        "spec": {"filters": [{"field": "customer_country", "op": "EQ", "values": ["US"]}]},
    }
    assert (await plan_of(MetricsEngine(engine), whole))[0] == "rollup"
    assert (await plan_of(MetricsEngine(engine), by_plan))[0] == "rollup"
    # the range cuts a month: its days' rows and movements, and the LTV's whole months
    assert (await plan_of(MetricsEngine(engine), cut))[0] == "rollup"
    assert (await plan_of(MetricsEngine(engine), country))[0] == "scan"  # a filter
    forced, data = await plan_of(MetricsEngine(engine, rollups=False), whole)
    assert forced == "scan"
    assert data == (await plan_of(MetricsEngine(engine), whole))[1]


async def test_other_currencies_scan_but_count_only_history_reads_rollups(
    engine: AsyncEngine,
) -> None:
    await import_text(engine, company(41, 30, currencies=("USD", "EUR")))
    async with engine.begin() as connection:
        await connection.execute(
            sa.text(
                "INSERT INTO fx_rate (currency, day, rate, source) "
                "VALUES ('EUR', '2020-01-01', 1.1, 'test')"
            )
        )
    metrics = MetricsEngine(engine)
    request = SeriesRequest(FIRST, LAST, Interval.MONTH)
    with plans.collecting() as taken:
        converted = await metrics.series(request)
    # the series converts (it scans); its LTV churn history, run beside it, counts (rollup)
    assert sorted(taken) == ["rollup", "scan"]
    assert converted == await MetricsEngine(engine, rollups=False).series(request)


async def three_currency_company(engine: AsyncEngine, seed: int) -> None:
    """A company of 40 customers in USD, EUR and GBP, with two rates for each of EUR and GBP."""
    await import_text(engine, company(seed, 40, currencies=("USD", "EUR", "GBP")))
    async with engine.begin() as connection:
        await connection.execute(
            sa.text(
                "INSERT INTO fx_rate (currency, day, rate, source) VALUES "
                "('EUR', '2020-01-01', 1.1, 'test'), ('EUR', '2023-03-07', 1.0731, 'test'), "
                "('GBP', '2020-01-01', 1.27, 'test'), ('GBP', '2023-05-02', 1.2519, 'test')"
            )
        )


async def test_the_report_currencys_own_slice_reads_rollups_in_a_company_of_several(
    engine: AsyncEngine,
) -> None:
    """`currency = EUR` reported in EUR converts nothing (a customer has one currency): the
    rollup answers it exactly, every field, every interval, with `fixFx` too; reported in USD
    it converts, and scans."""
    await three_currency_company(engine, 43)
    euros = (Filter("currency", FilterOp.EQ, ("EUR",)),)
    compared = 0
    for interval, start, end in whole_ranges(FIRST, LAST):
        for spec in (
            QuerySpec(filters=euros, currency="EUR"),
            QuerySpec(filters=euros, currency="EUR", fix_fx=True),
        ):
            for fields in (frozenset(), frozenset({"mrr", "new", "customers", "arpa"})):
                request = SeriesRequest(start, end, interval, spec, fields)
                with plans.collecting() as taken:
                    rolled = await MetricsEngine(engine).series(request)
                scanned = await MetricsEngine(engine, rollups=False).series(request)
                assert [asdict(p) for p in rolled] == [asdict(p) for p in scanned], (
                    interval,
                    spec,
                )
                assert set(taken) == {"rollup"}, (interval, spec, taken)
                compared += 1
    assert compared == 4 * len(whole_ranges(FIRST, LAST))
    # the figures are EUR customers' own: some MRR, in euros
    month = SeriesRequest(FIRST, LAST, Interval.MONTH, QuerySpec(filters=euros, currency="EUR"))
    assert any(point.mrr for point in await MetricsEngine(engine).series(month))
    in_dollars = SeriesRequest(FIRST, LAST, Interval.MONTH, QuerySpec(filters=euros))
    with plans.collecting() as taken:
        converted = await MetricsEngine(engine).series(in_dollars)
    # converted points (scan); the LTV's history, run beside them, counts only (rollup)
    assert sorted(taken) == ["rollup", "scan"]
    assert converted == await MetricsEngine(engine, rollups=False).series(in_dollars)


async def test_a_database_behind_its_rollups_scans_until_the_next_import(
    engine: AsyncEngine,
) -> None:
    await import_text(engine, company(51, 30))
    expected = await rollup_rows(engine)
    async with engine.begin() as connection:
        await connection.execute(sa.delete(rollup))
        await connection.execute(sa.insert(rollup_rebuild).values(id=1, requested_at=sa.func.now()))
    request = SeriesRequest(FIRST, LAST, Interval.QUARTER)
    with plans.collecting() as taken:
        points = await MetricsEngine(engine).series(request)
    assert set(taken) == {"scan"}
    await import_text(engine, f"{HEADER}\n")  # any import brings them up to date
    assert await rollup_rows(engine) == expected
    with plans.collecting() as taken:
        assert await MetricsEngine(engine).series(request) == points
    assert set(taken) == {"rollup"}


def test_rollups_can_be_turned_off_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().rollups is True
    monkeypatch.setenv("TIDEMILL_ROLLUPS", "off")
    assert load_settings().rollups is False
    monkeypatch.setenv("TIDEMILL_ROLLUPS", "sometimes")
    with pytest.raises(SettingsError, match="TIDEMILL_ROLLUPS: 'sometimes' is not a boolean"):
        load_settings()


@pytest.mark.parametrize(
    "spec",
    [
        QuerySpec(),
        QuerySpec(filters=(Filter("plan", FilterOp.EQ, ("Pro",)),)),
        QuerySpec(filters=(Filter("plan_interval", FilterOp.IN, ("month",)),)),
    ],
)
async def test_cohort_sizes_count_each_member_once(engine: AsyncEngine, spec: QuerySpec) -> None:
    """Cohorts count members without DISTINCT (no sort to spill): one `new` per member in any
    scope. Each size is the number of distinct customers whose first movement in scope falls
    in the month, counted here from the scan's own movements."""
    await import_text(engine, company(61, 50))
    cohorts = await MetricsEngine(engine).cohorts(CohortRequest(FIRST, LAST, spec))
    series = await MetricsEngine(engine, rollups=False).series(
        SeriesRequest(FIRST, LAST, Interval.MONTH, spec, frozenset({"new_customers"}))
    )
    joined = {point.date: point.new_customers for point in series if point.new_customers}
    assert {cohort.cohort: cohort.size for cohort in cohorts} == joined
    assert sum(joined.values()) > 10


async def test_a_week_across_a_month_end_groups_what_the_months_keep_apart(
    engine: AsyncEngine,
) -> None:
    """2023-01-30 is a Monday: a `new` on Jan 31 and an `expansion` on Feb 2 share a week, a
    quarter and a year (one customer with two movements), while each is alone in its month
    (the week does not nest in the month: the upkeep tells them apart per interval)."""
    await import_text(
        engine,
        f"{HEADER}\n1,c1,2023-01-31,2023-02-02,10,month,1,USD,Basic,active\n"
        "1,c1,2023-02-02,,30,month,1,USD,Basic,active\n",
    )
    names = ("new", "expansion", "net", "customers_net", "new_customers")
    more = ("expansion_customers", "retained_delta", "gross_retained_delta", "members")
    async with engine.connect() as connection:
        found = await connection.execute(
            sa.select(rollup.c.interval, rollup.c.k, *(rollup.c[n] for n in (*names, *more)))
            .where(rollup.c.dimension == "", rollup.c.interval != "day")
            .order_by(rollup.c.interval, rollup.c.k)
        )
        rows = [tuple(row) for row in found]
    both = (1_000, 2_000, 3_000, 1, 1, 1, 0, 0, 1)  # not held before: no retention delta
    assert rows == [
        ("month", date(2023, 1, 1), 1_000, 0, 1_000, 1, 1, 0, 0, 0, 1),
        ("month", date(2023, 2, 1), 0, 2_000, 2_000, 0, 0, 1, 2_000, 0, 1),
        ("quarter", date(2023, 1, 1), *both),
        ("week", date(2023, 1, 30), *both),
        ("year", date(2023, 1, 1), *both),
    ]
    assert await assert_same(engine, FIRST, LAST) > 0


TODAY = date.today()


def cut_ranges(first: date, last: date, seed: int) -> list[tuple[Interval, date, date]]:
    """Ranges that cut a period of every interval: a start or an end inside a week, a month, a
    quarter, a year; both; one day; inside one period; ending today; and a few at random."""
    rng = random.Random(seed)
    years = first.year - FIRST.year  # the dates below are for data of 2022 to 2024

    def on(year: int, month: int, day: int) -> date:
        return date(year + years, month, day)

    fixed = [
        (on(2022, 3, 15), last),  # a mid-month start to the end of the data
        (first, on(2024, 5, 17)),  # an end inside a month
        (on(2023, 2, 14), on(2023, 11, 20)),  # both, mid-quarter
        (on(2023, 8, 2), on(2023, 8, 2)),  # one day
        (on(2023, 5, 3), on(2023, 5, 29)),  # inside one month
        (on(2023, 1, 31), on(2023, 2, 2)),  # a week across a month end
        (on(2024, 10, 9), TODAY),  # ending today, after the data's last movement
        (on(2021, 12, 30), on(2022, 1, 3)),  # around the first movement
    ]
    span = (last - first).days
    for _ in range(3):
        a = first + timedelta(days=rng.randrange(span))
        fixed.append((a, a + timedelta(days=rng.randrange(1, 200))))
    found = []
    for interval in Interval:
        for a, b in fixed:
            if interval is Interval.DAY:
                b = min(b, a + timedelta(days=40))
            found.append((interval, a, b))
    return found


COUNTS = frozenset({"customers", "new_customers", "churn_customers", "churned_customers"})
FIELDS: tuple[frozenset[str], ...] = (frozenset(), frozenset({"mrr", "new", "customers"}), COUNTS)


async def assert_same_when_cut(
    engine: AsyncEngine, first: date, last: date, seed: int, specs: tuple[QuerySpec, ...] = SPECS
) -> int:
    """Every field of every point both ways, over ranges that cut periods, for the total, each
    breakdown and one-value series; the rollup path answers every one."""
    compared = 0
    for interval, start, end in cut_ranges(first, last, seed):
        for spec in specs:
            for fields in FIELDS if spec == QuerySpec() else FIELDS[:1]:
                request = SeriesRequest(start, end, interval, spec, fields)
                rolled, scanned, taken = await each_way(engine, request)
                assert rolled == scanned, (interval, start, end, spec, fields)
                assert set(taken) == {"rollup"}, (interval, start, end, spec, fields, taken)
                compared += 1
    return compared


async def each_way(engine: AsyncEngine, request: SeriesRequest) -> tuple[Any, Any, list[str]]:
    """The breakdown (with dimensions) or the series, with the rollups and scanning, as
    dictionaries; the plans the rollup side took."""

    async def answer(metrics: MetricsEngine) -> list[dict[str, Any]]:
        if request.spec.dimensions:
            return [asdict(x) for x in await metrics.breakdown(request)]
        return [asdict(p) for p in await metrics.series(request)]

    with plans.collecting() as taken:
        rolled = await answer(MetricsEngine(engine))
    return rolled, await answer(MetricsEngine(engine, rollups=False)), taken


@pytest.fixture(params=[None, "inside", "outside"])
def cut_side(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """A cut period's customer facts read from the side with fewer movements (None, as
    served), or from one side on every range."""
    monkeypatch.setattr(rollups, "CUT_SIDE", request.param)
    side: str | None = request.param
    return side


@pytest.mark.parametrize("seed", [5])
async def test_ranges_that_cut_periods_read_rollups_exactly(
    engine: AsyncEngine, seed: int, cut_side: str | None
) -> None:
    await import_text(engine, company(seed, 60))
    assert await assert_same_when_cut(engine, FIRST, LAST, seed) == 5 * 11 * (len(SPECS) + 2)


async def test_cut_ranges_on_the_playbook(engine: AsyncEngine, cut_side: str | None) -> None:
    await import_text(engine, PLAYBOOK.read_text())
    specs = (QuerySpec(), QuerySpec(dimensions=("plan",)), QuerySpec(dimensions=("currency",)))
    assert await assert_same_when_cut(engine, date(2017, 9, 1), date(2019, 12, 31), 8, specs) > 0


# c1 churns on Mar 5, comes back on Mar 10 and churns again on Mar 20; c2 expands on Mar 7, 12
TWO_IN_MARCH = (
    f"{HEADER}\n"
    "1,c1,2023-01-10,2023-03-05,10,month,1,USD,Basic,active\n"
    "2,c1,2023-03-10,2023-03-20,49,month,1,USD,Pro,active\n"
    "3,c2,2023-02-01,2023-03-07,10,month,1,USD,Basic,active\n"
    "3,c2,2023-03-07,2023-03-12,20,month,1,USD,Basic,active\n"
    "3,c2,2023-03-12,,30,month,1,USD,Basic,active\n"
)


async def test_a_cut_period_counts_a_customer_with_several_movements_once(
    engine: AsyncEngine,
) -> None:
    """c1 churns on Mar 5, comes back on Mar 10 and churns again on Mar 20; c2 expands on Mar
    7 and Mar 12. Over Mar 2-25 (a month cut at both ends) the days' rows hold two churns and
    two expansions, but one churned customer each way: the counts come from the movements of
    those days, the amounts from the days' rows, the stocks at Mar 1 from the rollup."""
    await import_text(engine, TWO_IN_MARCH)
    request = SeriesRequest(date(2023, 3, 2), date(2023, 3, 25), Interval.MONTH)
    with plans.collecting() as taken:
        (point,) = await MetricsEngine(engine).series(request)
    assert taken == ["rollup", "rollup"]  # the point, and the LTV's monthly churn history
    assert (point.date, point.end_date) == (date(2023, 3, 2), date(2023, 3, 25))
    assert (point.churn, point.churn_customers) == (-1_000 - 4_900, 1)
    assert (point.reactivation, point.reactivation_customers) == (4_900, 1)
    assert (point.expansion, point.expansion_customers) == (1_000 + 1_000, 1)
    assert point.churned_customers == 1  # c1: active on Mar 1, not on Mar 25
    assert (point.mrr, point.customers) == (3_000, 1)
    assert point.customer_churn_rate == 0.5  # 1 of the 2 active on Mar 1
    assert point.nrr == 3_000 / 2_000  # c1 0 + c2 3000 over 1000 + 1000
    assert point.grr == 1_000 / 2_000  # min(0, 1000) + min(3000, 1000)
    assert point == (await MetricsEngine(engine, rollups=False).series(request))[0]
    # the same range by plan: Pro nets to nothing (no series); in Basic c2 expands twice
    by_plan = replace(request, spec=QuerySpec(dimensions=("plan",)))
    rolled, scanned, taken = await both_ways(engine, by_plan)
    assert rolled == scanned
    assert set(taken) == {"rollup"}
    (basic,) = rolled[0]
    (point,) = basic.points
    assert (basic.key, point.expansion, point.expansion_customers) == (("Basic",), 2_000, 1)
    assert (point.churn, point.churn_customers, point.churned_customers) == (-1_000, 1, 1)


@pytest.mark.parametrize("side", ["inside", "outside"])
async def test_a_cut_period_read_from_outside_corrects_the_customers_moving_there(
    engine: AsyncEngine, side: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TWO_IN_MARCH over Mar 6-31: c1 churned on Mar 5 (outside), comes back on Mar 10
    and churns on Mar 20; c2 expands on Mar 7 and Mar 12. Read from outside, March's stored
    facts count c1 as churned (1,000 on Mar 1, 0 on Mar 31) and its retained delta -1,000;
    c1 moved on Mar 5, so its whole-month facts are taken back and its facts of Mar 6-31
    added: it was not active on Mar 5 (its first movement there starts from 0), so it is
    neither churned nor retained, and only c2 is: NRR 3,000 / 1,000."""
    await import_text(engine, TWO_IN_MARCH)
    monkeypatch.setattr(rollups, "CUT_SIDE", side)
    request = SeriesRequest(date(2023, 3, 6), date(2023, 3, 31), Interval.MONTH)
    with plans.collecting() as taken:
        (point,) = await MetricsEngine(engine).series(request)
    assert taken == ["rollup", "rollup"]
    assert (point.churn, point.churn_customers) == (-4_900, 1)
    assert (point.reactivation, point.reactivation_customers) == (4_900, 1)
    assert (point.expansion, point.expansion_customers) == (2_000, 1)
    assert point.churned_customers == 0
    assert point.customer_churn_rate == 0.0  # of the 1 active on Mar 5 (c2)
    assert (point.nrr, point.grr) == (3.0, 1.0)
    assert point == (await MetricsEngine(engine, rollups=False).series(request))[0]
    by_plan = replace(request, spec=QuerySpec(dimensions=("plan",)))
    rolled, scanned, taken = await both_ways(engine, by_plan)
    assert rolled == scanned
    assert set(taken) == {"rollup"}


async def test_a_cut_period_is_read_from_outside_when_few_move_there(engine: AsyncEngine) -> None:
    """TWO_IN_MARCH moves on Mar 5, 7, 10, 12 and 20: Mar 6-31 has one movement outside
    (Mar 5) against four inside, so it is read from outside; Mar 2-25 has none outside;
    Mar 1-9 has three outside (10, 12, 20) against two inside: inside."""
    await import_text(engine, TWO_IN_MARCH)

    async def outside(start: date, end: date, spec: QuerySpec = QuerySpec()) -> frozenset[date]:
        request = SeriesRequest(start, end, Interval.MONTH, spec)
        where = rollups.slice_of(request)
        assert where is not None
        counts = rollups.cut_counts(request, where)
        assert counts is not None
        async with engine.connect() as connection:
            return rollups.outside_cuts((await connection.execute(counts)).all())

    march = date(2023, 3, 1)
    assert await outside(date(2023, 3, 6), date(2023, 3, 31)) == {march}
    assert await outside(date(2023, 3, 2), date(2023, 3, 25)) == {march}
    assert await outside(date(2023, 3, 1), date(2023, 3, 9)) == frozenset()
    # by plan: Basic moves on Mar 5 (c1 leaves it), 7 and 12 (c2); Pro on Mar 10 and 20
    assert await outside(date(2023, 3, 6), date(2023, 3, 31), QuerySpec(dimensions=("plan",)))
    # sums and stocks alone need no customer facts: nothing to count
    request = SeriesRequest(
        date(2023, 3, 6), date(2023, 3, 31), Interval.MONTH, fields=frozenset({"mrr"})
    )
    assert rollups.cut_counts(request, rollups.Slice("", "")) is None


async def test_cut_ranges_in_a_company_of_several_currencies(engine: AsyncEngine) -> None:
    """Counts need no rate and `currency = EUR` in EUR converts nothing: both read the rollups
    over cut ranges, exactly; amounts reported in another currency scan."""
    await three_currency_company(engine, 44)
    euros = QuerySpec(filters=(Filter("currency", FilterOp.EQ, ("EUR",)),), currency="EUR")
    cases = [(QuerySpec(), COUNTS), (QuerySpec(dimensions=("plan",)), COUNTS)]
    cases += [(euros, frozenset()), (euros, frozenset({"mrr", "new_customers", "nrr"}))]
    for interval, start, end in cut_ranges(FIRST, LAST, 44):
        for spec, fields in cases:
            request = SeriesRequest(start, end, interval, spec, fields)
            rolled, scanned, taken = await each_way(engine, request)
            assert rolled == scanned, (interval, start, end, spec, fields)
            assert set(taken) == {"rollup"}, (interval, start, end, spec, fields, taken)
    converted = SeriesRequest(date(2023, 2, 14), date(2023, 11, 20), Interval.MONTH)
    with plans.collecting() as taken:
        points = await MetricsEngine(engine).series(converted)
    # amounts convert (scan); the LTV's history, run beside them, counts only (rollup)
    assert sorted(taken) == ["rollup", "scan"]
    assert points == await MetricsEngine(engine, rollups=False).series(converted)


DETAIL_KINDS: tuple[tuple[str, ...], ...] = (LOGO, REVENUE, *((kind,) for kind in KINDS), KINDS)


def detail_ranges(seed: int) -> list[tuple[date, date]]:
    """Whole years and months, one day, and random ranges that cut every kind of period."""
    rng = random.Random(seed)
    ranges = [(FIRST, LAST), (date(2023, 1, 1), date(2023, 12, 31))]
    ranges += [(date(2023, 3, 1), date(2023, 3, 31)), (date(2023, 3, 17), date(2023, 3, 17))]
    for _ in range(4):
        start = FIRST + timedelta(days=rng.randrange((LAST - FIRST).days))
        ranges.append((start, min(LAST, start + timedelta(days=rng.randrange(1, 400)))))
    return ranges


async def detail_both_ways(engine: AsyncEngine, request: ChurnRequest) -> tuple[Any, list[str]]:
    """The page with its totals read as served, asserted equal to the movements' sums; the
    plans the served one took."""
    with plans.collecting() as taken:
        served = await MetricsEngine(engine).churn(request)
    assert served == await MetricsEngine(engine, rollups=False).churn(request), request
    return served, taken


@pytest.mark.parametrize("seed", [61, 62])
async def test_movement_detail_totals_read_the_day_rows_exactly(
    engine: AsyncEngine, seed: int
) -> None:
    """The totals of the churn and drill-down pages (how many movements of the kinds, and
    their amounts) are the rollup's day rows summed over the range: equal to the movements'
    sums for every set of kinds, ranges from one day to all, the total and one-value filters
    on each rolled-up dimension."""
    await import_text(engine, company(seed, 60))
    specs = [spec for spec in SPECS if not spec.dimensions]
    counted = 0
    for start, end in detail_ranges(seed):
        for kinds in DETAIL_KINDS:
            for spec in specs:
                page, taken = await detail_both_ways(engine, ChurnRequest(start, end, spec, kinds))
                assert taken == ["rollup"], (start, end, kinds, spec)
                counted += page.total_count
    assert counted > 0


async def test_movement_detail_totals_sum_the_movements_where_no_day_rows_answer(
    engine: AsyncEngine,
) -> None:
    """Two values of a dimension, a customer-level filter, other currencies to convert and
    rollups marked behind sum the movements; the report currency's own slice reads the day
    rows."""
    await three_currency_company(engine, 63)
    request = ChurnRequest(FIRST, LAST, QuerySpec(), REVENUE)
    two_plans = Filter("plan", FilterOp.IN, ("Pro", "Team"))
    country = Filter("customer_country", FilterOp.EQ, ("US",))
    euros = Filter("currency", FilterOp.EQ, ("EUR",))
    for spec in (
        QuerySpec(),  # converts EUR and GBP into USD
        QuerySpec(filters=(two_plans,)),
        QuerySpec(filters=(country,)),
        QuerySpec(filters=(euros,)),  # reported in USD: converts
    ):
        page, taken = await detail_both_ways(engine, replace(request, spec=spec))
        assert taken == ["scan"], spec
    own = replace(request, spec=QuerySpec(filters=(euros,), currency="EUR"))
    page, taken = await detail_both_ways(engine, own)
    assert taken == ["rollup"]
    assert page.total_count > 0
    async with engine.begin() as connection:
        await connection.execute(sa.insert(rollup_rebuild).values(id=1, requested_at=sa.func.now()))
    page, taken = await detail_both_ways(engine, own)
    assert taken == ["scan"]
