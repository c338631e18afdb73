"""LATEST's tie between events of one timestamp goes to the greatest event id in byte order
(code points), whatever the database's collation (migration 0025).

The database here orders text by an ICU locale ("en": "a1" < "B1"), the bytes the other way
round ("B1" < "a1"). All four events happen at the same moment:

    batch 1: a1 x tokens 1, B2 y tokens 2
    batch 2: B1 x tokens 3, a2 y tokens 4

By bytes, x's latest is a1 (1), y's a2 (4), and over both a2 (4); by the locale they would be
B1 (3), B2 (2) and B2 (2). The second batch meets the rollup rows of the first (the stored
latest against the incoming one), and one metric is built after both (its rollup made from
the stored events at once).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app import migrate
from app.metrics.service import MetricsEngine
from app.tables import customer
from app.usage.ingest import ingest
from tests.conftest import execute, session_engine

AT = "2026-10-05T12:00:00Z"
CREATE = """mutation($input: UsageMetricInput!) { createUsageMetric(input: $input) { id } }"""
VALUE = """query($id: ID!, $customer: ID!) {
    usageMetricValue(id: $id, customerId: $customer) { value } }"""
SERIES = """query($id: ID!, $spec: QuerySpecInput) {
    usageSeries(id: $id, start: "2026-10-01", end: "2026-10-31", spec: $spec) {
        points { value } breakdown { key points { value } } } }"""


def _event(ident: str, who: str, tokens: int) -> dict[str, Any]:
    return {"id": ident, "customer": who, "name": "api_call", "timestamp": AT,
            "properties": {"tokens": tokens}}  # fmt: skip


@pytest.fixture
async def icu_engine(database: str) -> AsyncIterator[AsyncEngine]:
    """A migrated database whose default collation is ICU's "en" (dropped after the test)."""
    admin = create_async_engine(make_url(database), isolation_level="AUTOCOMMIT")
    name = f"tidemill_test_icu_{uuid.uuid4().hex[:8]}"
    create = (
        f'CREATE DATABASE "{name}" TEMPLATE template0 LOCALE_PROVIDER icu '
        "ICU_LOCALE 'en' LOCALE 'C.UTF-8'"
    )
    try:
        async with admin.connect() as connection:
            await connection.execute(sa.text(create))
    except sa.exc.DBAPIError as error:
        await admin.dispose()
        if "ICU" not in str(error):
            raise
        pytest.skip("this PostgreSQL is built without ICU: no collation orders text otherwise")
    engine = session_engine(make_url(database).set(database=name))
    try:
        await migrate.upgrade(engine)
        yield engine
    finally:
        await engine.dispose()
        async with admin.connect() as connection:
            await connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()


async def test_equal_timestamps_go_to_the_greatest_event_id_by_bytes(
    icu_engine: AsyncEngine,
) -> None:
    async with icu_engine.connect() as connection:  # the premise: the locale's order differs
        assert await connection.scalar(sa.text("SELECT 'a1' < 'B1'")) is True
    metrics = MetricsEngine(icu_engine)
    given = {"eventName": "api_call", "aggregation": "LATEST", "property": "tokens"}

    async def define(name: str, query_type: str) -> str:
        input_ = {**given, "name": name, "queryType": query_type}
        return str((await execute(metrics, CREATE, {"input": input_}))["createUsageMetric"]["id"])

    made = [await define("simple", "SIMPLE"), await define("kept", "INDEXED")]
    first = await ingest(icu_engine, [_event("a1", "x", 1), _event("B2", "y", 2)])
    second = await ingest(icu_engine, [_event("B1", "x", 3), _event("a2", "y", 4)])
    assert (first.accepted, second.accepted) == (2, 2)
    made.append(await define("built", "INDEXED"))
    async with icu_engine.connect() as connection:
        rows = await connection.execute(sa.select(customer.c.external_id, customer.c.id))
        ids = {str(external): str(ident) for external, ident in rows}
    for metric in made:
        values = {
            who: (await execute(metrics, VALUE, {"id": metric, "customer": ids[who]}))[
                "usageMetricValue"
            ]["value"]
            for who in ("x", "y")
        }
        assert values == {"x": 1, "y": 4}, metric
        total = (await execute(metrics, SERIES, {"id": metric}))["usageSeries"]
        assert [point["value"] for point in total["points"]] == [4], metric
        spec = {"dimensions": ["customer"]}
        split = (await execute(metrics, SERIES, {"id": metric, "spec": spec}))["usageSeries"]
        by_customer = {
            entry["key"][0]: [point["value"] for point in entry["points"]]
            for entry in split["breakdown"]
        }
        assert by_customer == {ids["x"]: [1], ids["y"]: [4]}, metric
