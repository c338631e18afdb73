"""Removing a source takes its customers out of everything kept from their movements: the
rollups (their contribution subtracted, or rebuilt when they were most customers) and the
ledger's currencies; the answers then equal a scan's and a full rebuild's rows."""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ingest import worker
from app.ingest.sources import remove_source
from app.metrics import rollup as rollups
from app.metrics.service import MetricsEngine
from app.metrics.spec import Interval, QuerySpec, SeriesRequest
from app.tables import cohort_rollup
from connectors.registry import TRANSLATORS
from tests.conftest import import_text
from tests.stripe_account import Account
from tests.test_ingest_worker import store
from tests.test_rollups import (
    FIRST,
    LAST,
    assert_same,
    both_ways,
    company,
    rollup_rows,
    whole_ranges,
)
from tests.test_stripe_scenario import new_source, reset


def euro_account(customers: int, first: date) -> Account:
    """Customers in Germany billed in EUR, one every five days from `first`."""
    a = Account()
    a.product("prod_eu", "Seats EU", first)
    a.price("price_eu", "prod_eu", first, 1500, currency="eur")
    for number in range(customers):
        day = first + timedelta(days=5 * number)
        a.customer(f"cus_eu_{number:02d}", day, "2025", country="DE")
        a.subscribe(f"sub_eu_{number:02d}", f"cus_eu_{number:02d}", day, [("price_eu", 1)])
    return a


async def stripe_customers(
    engine: AsyncEngine, customers: int, first: date = date(2023, 1, 2)
) -> int:
    async with engine.begin() as connection:  # EUR rates since before any customer
        await connection.execute(
            sa.text("INSERT INTO fx_rate VALUES ('EUR', '2021-01-01', 1.25, 'test')")
        )
    source = await new_source(engine)
    await store(engine, euro_account(customers, first).events)
    await worker.drain(engine, TRANSLATORS)
    return source.id


async def cohort_rows(engine: AsyncEngine) -> list[tuple[object, ...]]:
    async with engine.connect() as connection:
        found = await connection.execute(
            sa.select(cohort_rollup).order_by(*cohort_rollup.primary_key.columns)
        )
        return [tuple(row) for row in found]


async def currencies(engine: AsyncEngine) -> dict[str, date]:
    async with engine.connect() as connection:
        found = await connection.execute(sa.text("SELECT currency, first_day FROM ledger_currency"))
        return {str(currency): first for currency, first in found}


async def rebuilt(engine: AsyncEngine) -> tuple[list[tuple[object, ...]], ...]:
    """The rollup and cohort rows a full rebuild makes from the movements as they are (in a
    transaction rolled back, so the kept rows stay as the upkeep left them)."""
    async with engine.connect() as connection, connection.begin() as transaction:
        await rollups.rebuild(connection)
        found = await connection.execute(sa.text("SELECT * FROM rollup ORDER BY 1, 2, 3, 4"))
        cohorts = await connection.execute(sa.text("SELECT * FROM cohort_rollup ORDER BY 1, 2"))
        rows = ([tuple(row) for row in found], [tuple(row) for row in cohorts])
        await transaction.rollback()
    return rows


async def test_a_few_customers_removed_leave_the_rollups_by_difference(
    engine: AsyncEngine,
) -> None:
    """Stripe's EUR customers beside a CSV company in USD: their contribution is subtracted
    (the added country dimension's too), EUR leaves the ledger's currencies."""
    await reset(engine)
    await import_text(engine, company(21, 40))
    assert (await rollups.add_dimensions(engine, ["customer_country"])).built
    before = await rollup_rows(engine)
    ident = await stripe_customers(engine, 6)
    assert set(await currencies(engine)) == {"USD", "EUR"}
    assert await rollup_rows(engine) != before  # the source's customers are in them
    await remove_source(engine, ident)
    assert await rollup_rows(engine) == before
    assert (await rollup_rows(engine), await cohort_rows(engine)) == await rebuilt(engine)
    assert set(await currencies(engine)) == {"USD"}
    await assert_same(engine, FIRST, LAST)


async def test_most_customers_removed_rebuild_the_rollups(engine: AsyncEngine) -> None:
    """The only source removed: no rollup row, no currency, a series of zeros both ways."""
    await reset(engine)
    ident = await stripe_customers(engine, 6)
    request = SeriesRequest(date(2023, 1, 1), date(2024, 12, 31), Interval.MONTH, QuerySpec())
    assert any(point.mrr for point in await MetricsEngine(engine).series(request))
    await remove_source(engine, ident)
    assert await rollup_rows(engine) == await cohort_rows(engine) == []
    assert await currencies(engine) == {}
    rolled = await MetricsEngine(engine).series(request)
    assert rolled == await MetricsEngine(engine, rollups=False).series(request)
    assert not any(point.mrr or point.customers for point in rolled)


async def test_a_currency_kept_by_others_gets_its_first_day_from_them(
    engine: AsyncEngine,
) -> None:
    """The removed customers were the first in EUR: its first day becomes the CSV's."""
    await reset(engine)
    ident = await stripe_customers(engine, 3, date(2021, 6, 1))
    await import_text(engine, company(22, 30, ("EUR",)))
    assert await currencies(engine) == {"EUR": date(2021, 6, 1)}
    async with engine.connect() as connection:
        csv_first = await connection.scalar(
            sa.text(
                "SELECT min(m.day) FROM mrr_change m JOIN customer c ON c.id = m.customer_id"
                " WHERE c.source NOT LIKE 'stripe:%'"
            )
        )
    assert csv_first > date(2021, 6, 1)
    await remove_source(engine, ident)
    assert await currencies(engine) == {"EUR": csv_first}
    assert (await rollup_rows(engine), await cohort_rows(engine)) == await rebuilt(engine)
    for interval, start, end in whole_ranges(FIRST, LAST):  # reported in USD: converted
        request = SeriesRequest(start, end, interval, QuerySpec(dimensions=("plan",)))
        rolled, scanned, _ = await both_ways(engine, request)
        assert rolled == scanned
