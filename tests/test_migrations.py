"""Migrations are the only way the schema changes: the migrated database equals the metadata."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from app import migrate
from app.tables import metadata


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_server_default": False})
    return list(compare_metadata(context, metadata))


async def test_migrated_database_matches_the_table_metadata(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        differences = await connection.run_sync(_differences)
    assert differences == []


async def test_database_is_at_head(engine: AsyncEngine) -> None:
    assert await migrate.is_current(engine)
    await migrate.upgrade(engine)  # running again is a no-op
    assert await migrate.is_current(engine)
