"""`tidemill rollups check`: every stored rollup and cohort rollup row against what the
movements give now, exact, in one snapshot, writing nothing; a row changed, missing or extra
is found with its sums, and `--repair` rebuilds the rollups from the movements."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.metrics import rollup as rollups
from app.tables import cohort_rollup, rollup
from tests.conftest import import_text
from tests.test_auth import tidemill
from tests.test_chunked_import import applying_after_two_chunks, load
from tests.test_rollups import company, corrected, rollup_rows

CUSTOMERS = {"c1", "c2", "c3", "c4", "c5"}


async def _kept_company(engine: AsyncEngine, seed: int) -> None:
    """A company in two currencies, then a corrected re-import of a few customers (the rollups
    kept by subtract-and-add, not rebuilt)."""
    text = company(seed, 40, ("USD", "EUR"))
    await import_text(engine, text)
    result = await import_text(engine, corrected(text, CUSTOMERS, seed))
    assert 1 <= result.changed_customers < 20  # incremental: fewer than half of them


async def _count(engine: AsyncEngine, table: sa.Table) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


async def _count_where(engine: AsyncEngine, *where: Any) -> int:
    async with engine.connect() as connection:
        found = await connection.scalar(
            sa.select(sa.func.count()).select_from(rollup).where(*where)
        )
        return int(found or 0)


async def _cohort_rows(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as connection:
        found = await connection.execute(
            sa.select(cohort_rollup).order_by(*cohort_rollup.primary_key.columns)
        )
        return [tuple(row) for row in found]


async def test_kept_rollups_agree_with_the_movements(engine: AsyncEngine) -> None:
    empty = await rollups.check(engine)
    assert (empty.behind, empty.rows, empty.cohort_rows, empty.differences) == (False, 0, 0, 0)
    await _kept_company(engine, 41)
    checked = await rollups.check(engine)
    assert await rollups.check(engine, per_slice=5) == checked  # slices on two connections
    assert checked.behind is False
    assert checked.dimensions == ["plan", "currency", "plan_interval"]
    assert checked.differences == 0
    assert checked.examples == []
    assert checked.rows == await _count(engine, rollup) > 0
    assert checked.cohort_rows == await _count(engine, cohort_rollup) > 0


async def test_a_changed_missing_or_extra_row_is_found_with_its_sums(engine: AsyncEngine) -> None:
    await _kept_company(engine, 42)
    async with engine.begin() as connection:
        rows = (
            await connection.execute(
                sa.select(rollup)
                .where(rollup.c.dimension == "plan", rollup.c.interval == "month")
                .order_by(rollup.c.value, rollup.c.k)
                .limit(2)
            )
        ).all()
        changed, missing = rows[0], rows[1]
        key = (rollup.c.interval, rollup.c.dimension, rollup.c.value, rollup.c.k)

        def where(row: Any) -> Any:
            return sa.and_(*(column == row._mapping[column.name] for column in key))

        await connection.execute(
            sa.update(rollup).where(where(changed)).values(churn=rollup.c.churn - 7)
        )
        await connection.execute(sa.delete(rollup).where(where(missing)))
        extra = {"interval": "year", "dimension": "plan", "value": "Nowhere", "k": changed.k}
        await connection.execute(
            sa.insert(rollup).values(**extra, **dict.fromkeys(rollups.SUMMED, 0) | {"members": 3})
        )
        gone = (await connection.execute(sa.select(cohort_rollup).limit(1))).one()
        await connection.execute(
            sa.delete(cohort_rollup).where(
                cohort_rollup.c.cohort == gone.cohort, cohort_rollup.c.month == gone.month
            )
        )
    before = (await rollup_rows(engine), await _cohort_rows(engine))

    checked = await rollups.check(engine)
    # the customers' slices collected on two connections, in one snapshot: the same finding
    assert await rollups.check(engine, per_slice=7) == checked
    assert await rollups.check(engine, per_slice=7, connections=1) == checked

    assert checked.differences == 4
    found = {(d.table, d.key): d.sums for d in checked.examples}

    def key_of(row: Any) -> tuple[str, ...]:
        return (row.interval, row.dimension, row.value, row.k.isoformat())

    assert found[("rollup", key_of(changed))] == {"churn": (changed.churn - 7, changed.churn)}
    assert found[("rollup", key_of(missing))] == {
        name: (0, int(missing._mapping[name]))
        for name in rollups.SUMMED
        if missing._mapping[name] != 0
    }
    assert found[("rollup", ("year", "plan", "Nowhere", changed.k.isoformat()))] == {
        "members": (3, 0)
    }
    cohort_key = (gone.cohort.isoformat(), gone.month.isoformat())
    assert found[("cohort_rollup", cohort_key)] == {
        name: (0, int(gone._mapping[name]))
        for name in rollups.COHORT_SUMMED
        if gone._mapping[name] != 0
    }
    assert (await rollup_rows(engine), await _cohort_rows(engine)) == before  # nothing written

    first = await rollups.check(engine, examples=1)
    assert first.differences == 4
    assert len(first.examples) == 1


async def test_rollups_marked_behind_are_not_compared(engine: AsyncEngine) -> None:
    await _kept_company(engine, 43)
    async with engine.begin() as connection:
        await connection.execute(sa.update(rollup).values(new=rollup.c.new + 1))
        await rollups.request_rebuild(connection)
    checked = await rollups.check(engine)
    assert checked.behind is True
    assert checked.differences == 0


async def test_the_cli_finds_a_difference_and_repairs_it(
    engine: AsyncEngine, database_url: str
) -> None:
    await _kept_company(engine, 44)
    agreed = await tidemill(database_url, "rollups", "check")
    assert agreed.exit_code == 0, agreed.output
    rows, cohorts = await _count(engine, rollup), await _count(engine, cohort_rollup)
    assert (
        f"the rollups agree with the movements: {rows:,} rows (plan, currency, plan_interval "
        f"and the total) and {cohorts:,} cohort rows"
    ) in agreed.output
    kept = await rollup_rows(engine)
    async with engine.begin() as connection:
        await connection.execute(
            sa.update(rollup)
            .where(rollup.c.dimension == "currency", rollup.c.value == "EUR")
            .values(net=rollup.c.net + 1)
        )
    eur = await _count_where(engine, rollup.c.dimension == "currency", rollup.c.value == "EUR")

    differing = await tidemill(database_url, "rollups", "check", "--show", "1", "--format", "csv")
    assert differing.exit_code == 1, differing.output
    lines = differing.output.splitlines()
    assert "table,key,sum,stored,from the movements" in lines
    row = lines[lines.index("table,key,sum,stored,from the movements") + 1].split(",")
    assert (row[0], row[2]) == ("rollup", "net")
    assert int(row[3]) == int(row[4]) + 1
    assert f"{eur:,} rollup rows differ from the movements (the first 1 above)" in " ".join(
        differing.output.split()
    )

    repaired = await tidemill(database_url, "rollups", "check", "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert f"rebuilt the rollups from the movements: {rows:,} rows" in repaired.output
    assert await rollup_rows(engine) == kept
    again = await tidemill(database_url, "rollups", "check")
    assert again.exit_code == 0, again.output
    assert "the rollups agree with the movements" in again.output


async def test_no_repair_while_a_chunked_import_is_applied(engine: AsyncEngine) -> None:
    text = company(45, 60)
    await applying_after_two_chunks(engine, text)
    with pytest.raises(rollups.DimensionError) as refused:
        await rollups.repair(engine)
    assert "an import is being applied (import job" in str(refused.value)
    assert "rebuild the rollups after it has finished" in str(refused.value)
    assert (await rollups.check(engine)).behind is True  # a first import marked them so
    await load(engine, text, chunk_rows=60)  # resumed to its end: rebuilt them
    checked = await rollups.check(engine)
    assert (checked.behind, checked.differences) == (False, 0)
    assert checked.rows == await _count(engine, rollup) > 0


async def test_every_connection_reads_the_first_ones_snapshot(
    engine: AsyncEngine, database_url: str
) -> None:
    """Every movement's amount changed (committed) once the check has read its snapshot and
    before its other connection starts: the check still compares the rollups with the
    movements as they were, so they agree; the next check sees the change."""
    await _kept_company(engine, 46)

    async def change_amounts() -> None:
        other = create_async_engine(database_url)
        try:
            async with other.begin() as connection:
                await connection.execute(sa.text("UPDATE movement SET amount = amount + 100"))
        finally:
            await other.dispose()

    def progress(count: int, _total: int) -> None:
        if count == 0:  # (a write from this event loop would wait for it: another thread's)
            writer = threading.Thread(target=lambda: asyncio.run(change_amounts()))
            writer.start()
            writer.join()

    before = await rollups.check(engine, progress, per_slice=7)
    assert (before.behind, before.differences) == (False, 0)
    after = await rollups.check(engine, per_slice=7)
    assert after.differences > 0
    assert all("new" in d.sums or "net" in d.sums for d in after.examples if d.table == "rollup")
