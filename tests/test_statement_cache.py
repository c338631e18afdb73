"""What a webhook batch or a recompute runs per customer set is compiled once per process:
SQLAlchemy caches no statement that holds a VALUES list, and such a statement is compiled again
on every execution (tens of milliseconds each for the rollup contributions)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.ingest.recompute import create_touched_table, is_touched
from app.metrics import rollup


async def test_the_rollup_statements_of_a_recompute_are_compiled_once(
    engine: AsyncEngine,
) -> None:
    cache: dict[Any, Any] = {}
    async with engine.begin() as connection:
        await create_touched_table(connection)
        cached = await connection.execution_options(compiled_cache=cache)
        for _ in range(2):  # built anew each time, as each batch builds them
            for dimension in rollup.DIMENSIONS:
                for sign in (1, -1):
                    found = await cached.execute(
                        rollup.contribution_rows(dimension, is_touched, sign)
                    )
                    assert found.all() == []
            assert (await cached.execute(rollup.cohort_rows(is_touched, 1))).all() == []
    # one entry per statement: the sign is a bound parameter, and the second round found them
    assert len(cache) == len(rollup.DIMENSIONS) + 1
