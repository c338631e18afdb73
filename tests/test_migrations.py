"""Migrations are the only way the schema changes: the migrated database equals the metadata."""

from __future__ import annotations

import datetime
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from app import migrate
from app.config import load_settings
from app.db import create_engine
from app.demo import generate_periods, write_csv
from app.tables import CUSTOMER_SEARCH_DDL, CUSTOMER_SEARCH_INDEX, metadata, usage_event
from app.usage import partitions
from tests.conftest import import_text

JANUARY = datetime.date(2001, 1, 1)  # a month of usage events, for a partition of its own


def _in_metadata(_object: object, name: str | None, kind: str, *_: object) -> bool:
    """Every schema object but the search index made only where pg_trgm is (migration 0028,
    `test_the_search_index_exists_where_the_server_has_trigrams`)."""
    return not (kind == "index" and name == CUSTOMER_SEARCH_INDEX)


def _differences(connection: Connection) -> list[object]:
    options = {"compare_server_default": False, "include_object": _in_metadata}
    context = MigrationContext.configure(connection, opts=options)
    return list(compare_metadata(context, metadata))


async def test_migrated_database_matches_the_table_metadata(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        differences = await connection.run_sync(_differences)
    assert differences == []


async def test_the_search_index_exists_where_the_server_has_trigrams(engine: AsyncEngine) -> None:
    """Migration 0028 makes the customers' trigram search index where the server offers
    pg_trgm (the machine's PostgreSQL) and leaves it out where it does not (the embedded
    server); it is the index a first import builds again (app.tables.CUSTOMER_SEARCH_DDL)."""
    available = "SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'pg_trgm')"
    made = "SELECT indexdef FROM pg_indexes WHERE indexname = :name"
    async with engine.connect() as connection:
        trigrams = await connection.scalar(sa.text(available))
        definition = await connection.scalar(sa.text(made), {"name": CUSTOMER_SEARCH_INDEX})
    if trigrams:
        columns = "(name gin_trgm_ops, external_id gin_trgm_ops, lower(email) gin_trgm_ops)"
        assert definition is not None
        assert definition.endswith(f"USING gin {columns}")
        assert CUSTOMER_SEARCH_DDL.endswith(f"USING gin {columns}")
    else:
        assert definition is None


async def test_database_is_at_head(engine: AsyncEngine) -> None:
    assert await migrate.is_current(engine)
    await migrate.upgrade(engine)  # running again is a no-op
    assert await migrate.is_current(engine)


async def test_covering_indexes_include_the_metadata_columns(engine: AsyncEngine) -> None:
    """Alembic does not compare an index's INCLUDE columns: each is checked here."""
    covering = {
        str(index.name): index.dialect_options["postgresql"]["include"]
        for table in metadata.tables.values()
        for index in table.indexes
        if index.dialect_options["postgresql"]["include"]
    }
    assert covering  # the cut periods' day indexes (migration 0024)
    query = sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY(:names)")
    async with engine.connect() as connection:
        rows = (await connection.execute(query, {"names": list(covering)})).all()
    found: dict[str, str] = {str(row[0]): str(row[1]) for row in rows}
    for name, columns in covering.items():
        assert found[name].endswith(f"INCLUDE ({', '.join(columns)})"), found[name]


async def test_text_columns_have_the_metadata_collation(engine: AsyncEngine) -> None:
    """Alembic does not compare collations either: every text column's is checked here (the
    event ids' "C", migration 0025; the database's default elsewhere). A partition has its
    table's."""
    wanted = {
        (table.name, column.name): column.type.collation
        for table in metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, sa.String)
    }
    assert {key for key, collation in wanted.items() if collation == "C"} >= {
        ("usage_event", "event_id"),
        ("usage_rollup", "latest_id"),
        ("source_object", "event_id"),
    }
    query = sa.text(
        "SELECT c.relname, a.attname, CASE WHEN a.attcollation = t.typcollation THEN NULL"
        " ELSE l.collname END FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
        " JOIN pg_type t ON t.oid = a.atttypid JOIN pg_collation l ON l.oid = a.attcollation"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname IN ('public', 'usage_partitions') AND c.relkind IN ('r', 'p')"
        " AND a.attnum > 0 AND NOT a.attisdropped AND a.attcollation <> 0"
    )
    async with engine.begin() as connection:
        await partitions.create(connection, [JANUARY])  # made on demand
        rows = (await connection.execute(query)).all()
    found = {(str(table), str(column)): collation for table, column, collation in rows}
    assert {key: found.get(key, "(missing)") for key in wanted} == wanted
    made = [(t, c, k) for (t, c), k in found.items() if t == partitions.partition_name(JANUARY)]
    assert {column: collation for _table, column, collation in made} == {
        column.name: column.type.collation
        for column in usage_event.columns
        if isinstance(column.type, sa.String)
    }


async def test_migrations_run_without_the_requests_statement_timeout(database: str) -> None:
    """A migration may build an index over a large table for minutes: the timeout that guards
    requests does not apply to it. Here 0024's index over a million movements (seconds) is
    built by an engine whose requests time out after 100 ms."""
    admin = create_async_engine(make_url(database), isolation_level="AUTOCOMMIT")
    name = f"tidemill_test_migrate_{uuid.uuid4().hex[:8]}"
    async with admin.connect() as connection:
        await connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = make_url(database).set(database=name)
    before = create_async_engine(url)
    engine = create_engine(load_settings(database_url=str(url), statement_timeout_ms=100))
    try:
        async with before.begin() as connection:
            await connection.run_sync(_upgrade_to, "0023")
            await connection.execute(
                sa.text(
                    "INSERT INTO movement (customer_id, day, kind, before, after, amount, "
                    "currency) SELECT n, DATE '2025-01-01' + n % 365, 'new', 0, 100, 100, 'USD' "
                    "FROM generate_series(1, 1000000) AS n"
                )
            )
        await migrate.upgrade(engine)
        assert await migrate.is_current(engine)
        async with engine.connect() as connection:  # requests keep their timeout
            timeout = await connection.scalar(sa.text("SHOW statement_timeout"))
        assert timeout == "100ms"
    finally:
        await engine.dispose()
        await before.dispose()
        async with admin.connect() as connection:
            await connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()


def _upgrade_to(connection: Connection, revision: str) -> None:
    command.upgrade(migrate.alembic_config(connection), revision)


def _downgrade_to(connection: Connection, revision: str) -> None:
    command.downgrade(migrate.alembic_config(connection), revision)


async def test_0036_tells_the_planner_how_many_customers_the_ledger_holds(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = tmp_path / "company.csv"
    write_csv(generate_periods(customers=30, seed=4), path)
    await import_text(engine, path.read_text())  # too small to settle: 0036 states it
    option = """SELECT coalesce(attoptions, '{}') FROM pg_attribute
                WHERE attrelid = 'mrr_change'::regclass AND attname = 'customer_id'"""
    async with engine.begin() as connection:
        await connection.execute(sa.text("ANALYZE mrr_change"))
        await connection.run_sync(_downgrade_to, "0035")
        before = await connection.scalar(sa.text(option))
        await connection.run_sync(_upgrade_to, "head")
        after = await connection.scalar(sa.text(option))
        customers = await connection.scalar(sa.text("SELECT count(*) FROM customer"))
        rows = await connection.scalar(sa.text("SELECT count(*) FROM mrr_change"))
        await connection.execute(
            sa.text("ALTER TABLE mrr_change ALTER COLUMN customer_id RESET (n_distinct)")
        )
    assert not any(text.startswith("n_distinct=") for text in before)
    setting = dict(text.split("=", 1) for text in after)["n_distinct"]
    assert float(setting) == pytest.approx(-customers / rows)


HOLDERS = {  # a condition on one attribute of each type with few values, and its holders
    "key = 'seats' AND number_value >= 10": 2250,
    "key = 'industry' AND string_value IN ('saas', 'fintech', 'health')": 1800,
    "key = 'enterprise' AND boolean_value": 750,
}
ATTRIBUTE_VALUES = """
INSERT INTO customer_attribute (customer_id, key, string_value, number_value, boolean_value,
                                date_value)
SELECT c.id, a.key,
       CASE a.key WHEN 'industry' THEN (ARRAY['saas', 'fintech', 'health', 'retail', 'media'])
                                       [c.id % 5 + 1]
                  WHEN 'region' THEN (ARRAY['emea', 'amer', 'apac'])[c.id % 3 + 1] END,
       CASE a.key WHEN 'seats' THEN c.id % 40 END,
       CASE a.key WHEN 'enterprise' THEN c.id % 4 = 0 END,
       CASE a.key WHEN 'renewal' THEN DATE '2025-01-01' + (c.id % 365)::int END
FROM customer c CROSS JOIN attribute a
"""


async def _estimated_holders(connection: AsyncConnection) -> dict[str, int]:
    estimates = {}
    for condition in HOLDERS:
        query = f"SELECT customer_id FROM customer_attribute WHERE {condition}"
        plan = await connection.scalar(sa.text("EXPLAIN (FORMAT JSON) " + query))
        estimates[condition] = plan[0]["Plan"]["Plan Rows"]
    return estimates


async def test_0037_the_planner_expects_as_many_attribute_holders_as_there_are(
    engine: AsyncEngine,
) -> None:
    """Each attribute's values share their type's column with the other keys of that type, and
    the other types' rows are NULL there: estimated column by column, a condition on one
    attribute of five was expected to hold a fifth of its customers. The statistics on (key,
    value column) of 0037 give the planner the combinations themselves."""
    customers = """INSERT INTO customer (source, external_id)
                   SELECT 'csv', g::text FROM generate_series(1, 3000) g"""
    definitions = """INSERT INTO attribute (key, label, type, source) VALUES
        ('industry', 'Industry', 'string', 'api'), ('region', 'Region', 'string', 'api'),
        ('seats', 'Seats', 'number', 'api'), ('enterprise', 'Enterprise', 'boolean', 'api'),
        ('renewal', 'Renewal', 'date', 'api')"""
    async with engine.begin() as connection:
        for statement in (customers, definitions, ATTRIBUTE_VALUES):
            await connection.execute(sa.text(statement))
        await connection.run_sync(_downgrade_to, "0036")
        await connection.execute(sa.text("ANALYZE customer_attribute"))
        before = await _estimated_holders(connection)
        await connection.run_sync(_upgrade_to, "head")  # (0037 analyzes the table)
        after = await _estimated_holders(connection)
        found = {
            condition: await connection.scalar(
                sa.text(f"SELECT count(*) FROM customer_attribute WHERE {condition}")
            )
            for condition in HOLDERS
        }
    assert found == HOLDERS
    for condition, holders in HOLDERS.items():
        assert before[condition] < holders / 2, condition
        assert after[condition] == pytest.approx(holders, rel=0.1), condition
