"""Customers by MRR from the stored current MRR (customer.current_mrr, kept by the recompute):
the same pages as computing every customer's MRR from its movements, at any day."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.customers import CustomerQuery, CustomerSort, list_customers
from app.ingest.recompute import roll_forward
from app.metrics.service import MetricsEngine
from app.metrics.universe import customer_mrr
from app.tables import customer
from tests.conftest import execute, import_text

HEADER = "subscription_id,customer_id,start_date,end_date,monthly_amount,plan\n"
TODAY = date.today()
SOON = TODAY + timedelta(days=20)
LATER = TODAY + timedelta(days=50)
PAST = TODAY - timedelta(days=400)


def fixture_rows() -> str:
    """Ties (B, D, E at 100), a churned customer (C), one starting after today (F), one
    whose MRR changes after today (G: 300 until SOON, then 20), one ending after today (H)."""
    return HEADER + "\n".join(
        [
            f"a,A,{PAST},,250,Pro",
            f"b,B,{PAST},,100,Basic",
            f"c,C,{PAST},{TODAY - timedelta(days=30)},400,Pro",
            f"d,D,{TODAY - timedelta(days=10)},,100,Basic",
            f"e,E,{TODAY},,100,Basic",
            f"f,F,{SOON},,900,Pro",
            f"g,G,{PAST},{SOON},300,Pro",
            f"g,G,{SOON},,20,Basic",
            f"h,H,{PAST},{LATER},150,Pro",
        ]
    )


async def computed_order(engine: AsyncEngine, at: date) -> list[tuple[str, int]]:
    """Every customer's MRR at `at` from its movements (the computation before the stored
    MRR), highest first, ties by id."""
    key = customer_mrr(customer, sa.literal(at, sa.Date))
    query = sa.select(customer.c.external_id, key).order_by(key.desc(), customer.c.id)
    async with engine.connect() as connection:
        return [(name, int(mrr)) for name, mrr in await connection.execute(query)]


async def paged_order(engine: AsyncEngine, at: date, size: int) -> list[tuple[str, int]]:
    """Every page of `customers(sort: MRR)` at `at`, `size` at a time, through the cursors."""
    found: list[tuple[str, int]] = []
    after = None
    while True:
        query = CustomerQuery(first=size, after=after, sort=CustomerSort.MRR, at=at)
        page = await list_customers(engine, query)
        found += [(row.external_id, int(row.sort_value)) for row in page.customers]
        if not page.has_next_page:
            return found
        after = page.cursors[-1]


async def test_pages_by_stored_mrr_equal_the_computed_order(engine: AsyncEngine) -> None:
    await import_text(engine, fixture_rows())
    by_hand = [
        ("G", 30000),
        ("A", 25000),
        ("H", 15000),
        ("B", 10000),
        ("D", 10000),
        ("E", 10000),
        ("C", 0),
        ("F", 0),
    ]
    assert await computed_order(engine, TODAY) == by_hand
    for at in (TODAY, PAST, SOON, LATER, TODAY - timedelta(days=30)):
        expected = await computed_order(engine, at)
        for size in (1, 2, 3, 50):
            assert await paged_order(engine, at, size) == expected, (at, size)


async def test_the_stored_mrr_is_the_mrr_of_today(engine: AsyncEngine) -> None:
    await import_text(engine, fixture_rows())
    query = sa.select(
        customer.c.external_id,
        customer.c.current_mrr,
        customer.c.current_mrr_since,
        customer.c.current_mrr_until,
    ).order_by(customer.c.external_id)
    async with engine.connect() as connection:
        rows = {name: tuple(rest) for name, *rest in await connection.execute(query)}
    assert rows["A"] == (25000, PAST, None)
    assert rows["C"] == (0, TODAY - timedelta(days=30), None)
    assert rows["F"] == (0, None, SOON)  # nothing yet: 0 until its first movement
    assert rows["G"] == (30000, PAST, SOON)
    assert rows["H"] == (15000, PAST, LATER)


async def test_a_reimport_reorders_the_page(engine: AsyncEngine) -> None:
    await import_text(engine, fixture_rows())
    changed = fixture_rows().replace(f"b,B,{PAST},,100,Basic", f"b,B,{PAST},,999,Basic")
    result = await import_text(engine, changed.replace(f"a,A,{PAST},,250", f"a,A,{PAST},,1"))
    assert result.changed_customers == 2
    page = await list_customers(engine, CustomerQuery(first=3, sort=CustomerSort.MRR, at=TODAY))
    assert [(row.external_id, row.sort_value) for row in page.customers] == [
        ("B", 99900),
        ("G", 30000),
        ("H", 15000),
    ]
    assert await paged_order(engine, TODAY, 2) == await computed_order(engine, TODAY)


async def test_a_stale_stored_mrr_is_computed_then_rolled_forward(engine: AsyncEngine) -> None:
    await import_text(engine, fixture_rows())
    # as if the recompute had run long ago: G's and F's stored periods end before SOON + 1
    at = SOON + timedelta(days=1)
    assert await paged_order(engine, at, 2) == await computed_order(engine, at)
    async with engine.begin() as connection:
        await connection.execute(
            sa.update(customer).values(current_mrr_until=TODAY).where(customer.c.external_id == "A")
        )
        await roll_forward(connection)  # A's stored period ended "today": recomputed
        a = await connection.scalar(
            sa.select(customer.c.current_mrr_until).where(customer.c.external_id == "A")
        )
    assert a is None
    assert await paged_order(engine, TODAY, 2) == await computed_order(engine, TODAY)


def counting(statement: str) -> bool:
    """A statement that counts customers: every match, or the tally of all."""
    text = statement.lstrip().upper()
    return text.startswith("SELECT COUNT(*)") or "FROM CUSTOMER_TALLY" in text


async def test_the_total_is_counted_only_when_asked(engine: AsyncEngine) -> None:
    await import_text(engine, fixture_rows())
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    metrics = MetricsEngine(engine)
    sa.event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        page = "{ customers(first: 2, sort: MRR) { edges { node { externalId } } } }"
        without = await execute(metrics, page)
        counts = [s for s in seen if counting(s)]
        seen.clear()
        counted = await execute(metrics, page.replace("{ edges", "{ totalCount edges"))
        counts_asked = [s for s in seen if counting(s)]
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", record)
    assert counts == []
    assert len(counts_asked) == 1
    assert counted["customers"]["totalCount"] == 8
    assert [e["node"]["externalId"] for e in without["customers"]["edges"]] == ["G", "A"]


async def tally(engine: AsyncEngine) -> tuple[int, int]:
    """(the totalCount of a page of every customer, the customers counted one by one)."""
    page = await list_customers(engine, CustomerQuery(first=1, sort=CustomerSort.MRR, at=TODAY))
    async with engine.connect() as connection:
        counted = await connection.scalar(sa.select(sa.func.count()).select_from(customer))
    return page.total_count, int(counted or 0)


async def test_the_tally_of_customers_follows_every_write(engine: AsyncEngine) -> None:
    assert await tally(engine) == (0, 0)
    await import_text(engine, fixture_rows())
    assert await tally(engine) == (8, 8)
    # the same file again upserts every customer (INSERT ... ON CONFLICT DO UPDATE): none added
    await import_text(engine, fixture_rows())
    assert await tally(engine) == (8, 8)
    await import_text(engine, fixture_rows() + f"\ni,I,{PAST},,10,Basic\nj,J,{PAST},,10,Basic")
    assert await tally(engine) == (10, 10)
    # writers on two connections (two slots, or one) add up, and a deletion subtracts
    async with engine.connect() as first, engine.connect() as second:
        for connection, name in ((first, "K"), (second, "L"), (second, "M")):
            await connection.execute(
                sa.insert(customer).values(source="csv", external_id=name, name=name)
            )
            await connection.commit()
    assert await tally(engine) == (13, 13)
    async with engine.begin() as connection:
        await connection.execute(sa.delete(customer).where(customer.c.external_id.in_(["K", "L"])))
    assert await tally(engine) == (11, 11)
    # a search or filter counts its matches
    found = await list_customers(engine, CustomerQuery(search="M", first=5, at=TODAY))
    assert found.total_count == 1
    async with engine.begin() as connection:
        await connection.execute(sa.text("TRUNCATE customer CASCADE"))
    assert await tally(engine) == (0, 0)


async def test_a_rolled_back_write_leaves_the_tally(engine: AsyncEngine) -> None:
    await import_text(engine, fixture_rows())
    async with engine.connect() as connection:
        await connection.execute(sa.insert(customer).values(source="csv", external_id="X"))
        await connection.rollback()
    assert await tally(engine) == (8, 8)
