"""Fill empty tables in bulk: their indexes built once afterwards, not maintained row by row."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

BULK_FROM = 1_000  # touched customers from which an import fills empty tables in bulk

# (drop, create) for each index of the tables, and for each primary key or unique constraint
# no foreign key depends on, from their own definitions.
_INDEXES = """
SELECT format('DROP INDEX %s', i.indexrelid::regclass), pg_get_indexdef(i.indexrelid)
FROM pg_index i
WHERE i.indrelid = ANY(CAST(:tables AS regclass[]))
  AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid)
UNION ALL
SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname),
       format('ALTER TABLE %s ADD CONSTRAINT %I %s', c.conrelid::regclass, c.conname,
              pg_get_constraintdef(c.oid))
FROM pg_constraint c
WHERE c.conrelid = ANY(CAST(:tables AS regclass[])) AND c.contype IN ('p', 'u')
  AND NOT EXISTS (SELECT FROM pg_constraint f WHERE f.contype = 'f' AND f.confrelid = c.conrelid)
"""


@asynccontextmanager
async def filled_in_bulk(
    connection: AsyncConnection, tables: Sequence[str], touched: int
) -> AsyncIterator[None]:
    """Fill those of `tables` that are still empty (a first import of many customers) without
    their indexes, then build each once: cheaper than maintaining them row by row. Their
    readers wait until the import commits (dropping an index locks its table); they would find
    the tables empty anyway. A failed import rolls the drops back."""
    statements: list[tuple[str, str]] = []
    if touched >= BULK_FROM:
        empty = [table for table in tables if await _is_empty(connection, table)]
        found = await connection.execute(sa.text(_INDEXES), {"tables": empty})
        statements = [(drop, create) for drop, create in found]
    for drop, _create in statements:
        await connection.exec_driver_sql(drop)
    yield
    for _drop, create in statements:
        await connection.exec_driver_sql(create)


async def _is_empty(connection: AsyncConnection, table: str) -> bool:
    return not await connection.scalar(sa.text(f"SELECT EXISTS (SELECT FROM {table})"))
