"""Re-importing and re-syncing keep the ids: a customer, subscription or plan already stored
keeps its row (updated where the source changed it), and only new ones draw an id from their
sequence. An upsert of every row drew one per row, conflict or not, so each re-import moved
the ids on by the file's size (and a rebuild's id slices grew sparse)."""

from __future__ import annotations

import io
import uuid
from datetime import date
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.ingest.apply import store_bundles
from app.ingest.canonical import (
    CustomerBundle,
    CustomerRecord,
    ItemRecord,
    PlanRecord,
    SubscriptionRecord,
    VersionRecord,
)
from app.ingest.recompute import create_touched_table
from app.ingest.subscriptions import load_periods
from connectors.csv.subscriptions import read_periods

HEADER = "subscription_id,customer_id,start_date,end_date,monthly_amount,plan,customer_name\n"
FIRST = (
    HEADER + "s1,C1,2024-01-01,,100,Pro,Acme\n"
    "s2,C2,2024-01-01,2024-03-01,50,Basic,Beta\n"
    "s4,C4,2024-02-01,,70,Pro,Delta\n"
)
# C1 renamed, a new subscription s3 of C1 on a new plan, a new customer C3 with s5
CORRECTED = (
    HEADER + "s1,C1,2024-01-01,,100,Pro,Acme Inc\n"
    "s2,C2,2024-01-01,2024-03-01,50,Basic,Beta\n"
    "s3,C1,2024-02-01,,20,Team,Acme Inc\n"
    "s4,C4,2024-02-01,,70,Pro,Delta\n"
    "s5,C3,2024-03-01,,30,Basic,Gamma\n"
)


async def _rows(engine: AsyncEngine, table: str, columns: str) -> dict[str, tuple[object, ...]]:
    async with engine.connect() as connection:
        found = await connection.execute(sa.text(f"SELECT external_id, {columns} FROM {table}"))
        return {str(row[0]): tuple(row[1:]) for row in found}


async def _next_ids(engine: AsyncEngine) -> dict[str, int]:
    """The id each table's sequence gives next (drawing it; the tests compare differences)."""
    async with engine.begin() as connection:
        return {
            table: int(
                await connection.scalar(
                    sa.text(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id'))")
                )
                or 0
            )
            for table in ("customer", "subscription", "plan")
        }


async def _import(engine: AsyncEngine, text: str, chunk_rows: int) -> None:
    header, rows = read_periods(io.StringIO(text), "USD")
    assert not header.problems(), header.problems()
    expected = text.count("\n") - 1 if chunk_rows else 0
    await load_periods(
        engine,
        rows,
        filename="ids.csv",
        sha256=uuid.uuid4().hex,  # each import a new file: none is skipped as done
        expected_rows=expected,
        chunk_rows=chunk_rows,
    )


@pytest.mark.parametrize("chunk_rows", [0, 2], ids=["one transaction", "in chunks"])
async def test_a_reimport_draws_ids_only_for_what_is_new(
    engine: AsyncEngine, chunk_rows: int
) -> None:
    await _import(engine, FIRST, chunk_rows)
    customers = await _rows(engine, "customer", "id")
    subscriptions = await _rows(engine, "subscription", "id")
    plans = await _rows(engine, "plan", "id")
    before = await _next_ids(engine)
    await _import(engine, FIRST + "s9,C9,2024-01-01,2024-01-02,0,,\n", chunk_rows)
    await _import(engine, FIRST, chunk_rows)  # (s9 stays: an import does not delete)
    added = await _next_ids(engine)
    # the first re-import drew one id per new row (C9, s9), the second none; each call of
    # _next_ids drew one more
    assert {table: added[table] - before[table] for table in added} == {
        "customer": 2,
        "subscription": 2,
        "plan": 1,
    }
    await _import(engine, CORRECTED, chunk_rows)
    after = await _next_ids(engine)
    assert {table: after[table] - added[table] for table in after} == {
        "customer": 2,  # C3
        "subscription": 3,  # s3, s5
        "plan": 2,  # Team
    }
    now = await _rows(engine, "customer", "id, name")
    assert now == {
        "C1": (customers["C1"][0], "Acme Inc"),
        "C2": (customers["C2"][0], "Beta"),
        "C4": (customers["C4"][0], "Delta"),
        "C9": (before["customer"] + 1, None),
        "C3": (added["customer"] + 1, "Gamma"),
    }
    ids = await _rows(engine, "subscription", "id")
    new = {ids.pop("s3")[0], ids.pop("s5")[0]}  # in file or in customer order
    assert new == {added["subscription"] + 1, added["subscription"] + 2}
    assert ids == {**subscriptions, "s9": (before["subscription"] + 1,)}
    assert await _rows(engine, "plan", "id") == {**plans, "Team": (added["plan"] + 1,)}


async def test_a_subscription_given_to_another_customer_keeps_its_id(engine: AsyncEngine) -> None:
    await _import(engine, FIRST, 0)
    subscriptions = await _rows(engine, "subscription", "id, customer_id")
    before = await _next_ids(engine)
    await _import(engine, FIRST.replace("s2,C2,", "s2,C3,"), 0)
    after = await _next_ids(engine)
    assert after["subscription"] - before["subscription"] == 1  # (_next_ids's own)
    assert after["customer"] - before["customer"] == 2  # C3
    customers = await _rows(engine, "customer", "id")
    assert await _rows(engine, "subscription", "id, customer_id") == {
        **subscriptions,
        "s2": (subscriptions["s2"][0], customers["C3"][0]),
    }


def _bundle(customer: str, name: str, subscriptions: tuple[str, ...]) -> CustomerBundle:
    item = ItemRecord("price_1", 1, Decimal("29"), 2900, "month", 1, "flat")
    version = VersionRecord(date(2024, 1, 1), None, "active", "USD", 2900, (item,))
    return CustomerBundle(
        CustomerRecord(customer, name=name, country="DE"),
        (PlanRecord("price_1", "Seats", "Seats product"),),
        tuple(SubscriptionRecord(sub, (version,)) for sub in subscriptions),
    )


async def _store(engine: AsyncEngine, bundles: list[CustomerBundle]) -> None:
    async with engine.begin() as connection:
        await create_touched_table(connection)
        await store_bundles(connection, "stripe:1", bundles)


async def test_a_live_source_s_rows_keep_their_ids_when_stored_again(engine: AsyncEngine) -> None:
    await _store(engine, [_bundle("cus_1", "Ada", ("sub_1",)), _bundle("cus_2", "Bo", ("sub_2",))])
    customers = await _rows(engine, "customer", "id")
    subscriptions = await _rows(engine, "subscription", "id")
    before = await _next_ids(engine)
    await _store(engine, [_bundle("cus_1", "Ada", ("sub_1",)), _bundle("cus_2", "Bo", ("sub_2",))])
    # cus_1 renamed and given sub_2; cus_2 gets a new subscription; cus_3 is new
    await _store(
        engine,
        [
            _bundle("cus_1", "Ada L.", ("sub_1", "sub_2")),
            _bundle("cus_2", "Bo", ("sub_5",)),
            _bundle("cus_3", "Cy", ()),
        ],
    )
    after = await _next_ids(engine)
    assert {table: after[table] - before[table] for table in after} == {
        "customer": 2,  # cus_3
        "subscription": 2,  # sub_5
        "plan": 1,  # none: price_1 is unchanged
    }
    now = await _rows(engine, "customer", "id, name, country")
    assert now == {
        "cus_1": (customers["cus_1"][0], "Ada L.", "DE"),
        "cus_2": (customers["cus_2"][0], "Bo", "DE"),
        "cus_3": (before["customer"] + 1, "Cy", "DE"),
    }
    owners = await _rows(engine, "subscription", "id, customer_id")
    assert owners == {
        "sub_1": (subscriptions["sub_1"][0], customers["cus_1"][0]),
        "sub_2": (subscriptions["sub_2"][0], customers["cus_1"][0]),
        "sub_5": (before["subscription"] + 1, customers["cus_2"][0]),
    }
