"""Chunked imports (app/ingest/chunked.py): the same tables as one transaction, a bad file
refused before anything is written, an interrupted run resumed to the same end."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from app import attributes
from app.attributes import AttributeDefinition, AttributeType
from app.cli import cli
from app.demo import generate_periods, write_csv
from app.errors import ImportFailed
from app.ingest import chunked, staging, subscriptions
from app.ingest.subscriptions import ImportResult, load_periods
from connectors.csv.subscriptions import PeriodsFile, read_periods
from tests.conftest import TABLES

# every table an import writes, by external ids (customer ids are numbered in import order,
# which chunks change)
STATE = {
    "customer": """SELECT c.external_id, c.name, c.email, c.country, c.customer_since,
                   c.current_mrr, c.current_mrr_since, c.current_mrr_until FROM customer c""",
    "subscription": """SELECT s.external_id, c.external_id FROM subscription s
                       JOIN customer c ON c.id = s.customer_id""",
    "subscription_version": """SELECT s.external_id, v.valid_from, v.valid_to, v.status, v.mrr,
                               v.currency, p.external_id, v.quantity, v.amount,
                               v.billing_interval, v.interval_count, v.trial_start,
                               v.trial_end, v.pricing_model, v.collection_method
                               FROM subscription_version v
                               JOIN subscription s ON s.id = v.subscription_id
                               LEFT JOIN plan p ON p.id = v.plan_id""",
    "mrr_change": """SELECT c.external_id, s.external_id, m.day, m.delta, m.currency,
                     m.plan_interval, p.external_id, m.status, m.pricing_model,
                     m.collection_method FROM mrr_change m
                     JOIN customer c ON c.id = m.customer_id
                     JOIN subscription s ON s.id = m.subscription_id
                     LEFT JOIN plan p ON p.id = m.plan_id""",
    "movement": """SELECT c.external_id, m.day, m.kind, m.amount, m.before, m.after,
                   m.prev_day, m.next_day FROM movement m JOIN customer c ON c.id = m.customer_id""",
    "movement_scope": """SELECT m.dimension, m.value, c.external_id, m.day, m.kind, m.amount
                         FROM movement_scope m JOIN customer c ON c.id = m.customer_id""",
    "ledger_currency": "SELECT currency, first_day FROM ledger_currency",
    # a first import's chunk derives its trials from its own periods
    "trial": """SELECT s.external_id, c.external_id, p.external_id, t.currency, t.plan_interval,
                t.started, t.converted, t.expired FROM trial t
                JOIN subscription s ON s.id = t.subscription_id
                JOIN customer c ON c.id = t.customer_id
                LEFT JOIN plan p ON p.id = t.plan_id""",
    # built once after the chunks of a first import: the same rows as one transaction's
    "rollup": "SELECT * FROM rollup",
    "cohort_rollup": "SELECT * FROM cohort_rollup",
    "rollup_rebuild": "SELECT count(*) FROM rollup_rebuild",
    # the tally the triggers keep (migration 0021): every customer, once
    "customer_tally": """SELECT (SELECT sum(customers) FROM customer_tally),
                         (SELECT count(*) FROM customer)""",
}


async def stored(engine: AsyncEngine) -> dict[str, Any]:
    state: dict[str, Any] = {}
    async with engine.connect() as connection:
        for table, query in STATE.items():
            rows = (await connection.execute(sa.text(query))).all()
            state[table] = sorted(tuple(str(value) for value in row) for row in rows)
    return state


async def empty(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(sa.text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY"))


async def load(engine: AsyncEngine, text: str, chunk_rows: int = 0, **options: Any) -> ImportResult:
    """Import CSV text; in chunks of `chunk_rows` rows when given."""
    header, rows = read_periods(io.StringIO(text), "USD")
    assert not header.problems()
    expected = text.count("\n") if chunk_rows else 0
    return await load_periods(
        engine,
        rows,
        filename="company.csv",
        sha256=str(hash(text)),
        expected_rows=expected,
        chunk_rows=chunk_rows,
        **options,
    )


@pytest.fixture
def company(tmp_path: Path) -> str:
    path = tmp_path / "company.csv"
    rows = write_csv(generate_periods(customers=240, seed=11), path)
    assert rows > 400
    return path.read_text()


def corrected(text: str) -> str:
    """The file with the amounts of the lines of 3 subscriptions changed."""
    lines = text.splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    columns = header.strip().split(",")
    amount = columns.index("amount")
    chosen = sorted({line.split(",")[0] for line in body})[:3]
    out = [header]
    for line in body:
        values = line.rstrip("\n").split(",")
        if values[0] in chosen:
            values[amount] = str(float(values[amount] or 0) + 7)
        out.append(",".join(values) + "\n")
    return "".join(out)


def moved(text: str) -> str:
    """The file with its first subscription given to the customer of the last line in the
    same currency (another chunk's, most likely) and the customer details of that one."""
    lines = text.splitlines(keepends=True)
    header, body = lines[0], [line.rstrip("\n").split(",") for line in lines[1:]]
    columns = header.strip().split(",")
    customer, currency = columns.index("customer_id"), columns.index("currency")
    details = [columns.index(name) for name in ("customer_name", "email", "country")]
    subscription = min(values[0] for values in body)
    owner = next(values for values in body if values[0] == subscription)
    target = next(
        values
        for values in reversed(body)
        if values[currency] == owner[currency] and values[customer] != owner[customer]
    )
    for values in body:
        if values[0] == subscription:
            values[customer] = target[customer]
            for column in details:
                values[column] = target[column]
    return header + "".join(",".join(values) + "\n" for values in body)


async def jobs(engine: AsyncEngine) -> list[tuple[str, int, int]]:
    async with engine.connect() as connection:
        query = "SELECT state, chunks, done_chunks FROM import_job ORDER BY id"
        return [tuple(row) for row in await connection.execute(sa.text(query))]


async def stage_tables(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        query = "SELECT relname FROM pg_class WHERE relname LIKE 'import_stage%' ORDER BY 1"
        return list(await connection.scalars(sa.text(query)))


async def test_a_chunked_import_equals_one_transaction(engine: AsyncEngine, company: str) -> None:
    whole = await load(engine, company)
    expected = await stored(engine)
    again = corrected(company)
    whole_again = await load(engine, again)
    expected_again = await stored(engine)
    await empty(engine)

    chunked = await load(engine, company, chunk_rows=60)
    assert (chunked.rows, chunked.changed_customers) == (whole.rows, whole.changed_customers)
    assert await stored(engine) == expected
    [(state, chunks, done)] = await jobs(engine)
    assert state == "done"
    assert chunks == done
    assert chunks == -(-company.count("\n") // 60 // 2) * 2  # an even count: 2 at a time
    assert await stage_tables(engine) == []
    # a corrected file recomputes only the customers it touches, in chunks too
    chunked_again = await load(engine, again, chunk_rows=60)
    assert chunked_again.changed_subscriptions == whole_again.changed_subscriptions == 3
    assert chunked_again.changed_customers == whole_again.changed_customers
    assert chunked_again.changed_customers <= 3
    assert await stored(engine) == expected_again
    # the same file again changes nothing
    same = await load(engine, again, chunk_rows=60)
    assert (same.changed_subscriptions, same.changed_customers) == (0, 0)


async def test_a_subscription_moved_to_another_customer_in_chunks_as_in_one_transaction(
    engine: AsyncEngine, company: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    again = moved(company)
    await load(engine, company)
    whole = await load(engine, again)
    expected = await stored(engine)
    await empty(engine)
    await load(engine, company, chunk_rows=60)
    applied: list[bool] = []  # per chunk: side by side (after another chunk's commit)
    apply_chunk = chunked._apply_chunk

    async def recorded(*args: Any) -> tuple[int, int]:
        applied.append(isinstance(args[-1], asyncio.Event))
        return await apply_chunk(*args)

    monkeypatch.setattr(chunked, "_apply_chunk", recorded)
    chunked_again = await load(engine, again, chunk_rows=60)
    # its periods did not change; its former and its new customer are recomputed: the chunks
    # begin side by side, and from the chunk that moves it (which would recompute a customer
    # another chunk may be recomputing) go one after the other
    assert (whole.changed_subscriptions, whole.changed_customers) == (0, 2)
    assert (chunked_again.changed_subscriptions, chunked_again.changed_customers) == (0, 2)
    assert applied[0] is True
    assert applied[-1] is False
    *_, (state, chunks, done) = await jobs(engine)
    assert (state, done) == ("done", chunks)
    assert len(applied) > chunks  # the chunks rolled back when it stopped were applied again
    assert await stored(engine) == expected


async def test_a_corrected_file_with_a_new_plan_side_by_side_as_in_one_transaction(
    engine: AsyncEngine, company: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Subscriptions of many chunks moved to a plan no chunk knew: written once before the
    chunks (side by side, one could wait for another's uncommitted plan while that one waits
    for it to commit)."""
    lines = company.splitlines(keepends=True)
    columns = lines[0].strip().split(",")
    plan = columns.index("plan")
    out = [lines[0]]
    for line in lines[1:]:
        values = line.rstrip("\n").split(",")
        if values[0].endswith("1_0"):
            values[plan] = "Scale 2026"
        out.append(",".join(values) + "\n")
    again = "".join(out)
    assert again.count("Scale 2026") > 10
    await load(engine, company)
    whole = await load(engine, again)
    expected = await stored(engine)
    await empty(engine)
    await load(engine, company, chunk_rows=60)
    plans_seen: list[tuple[int, bool]] = []  # (chunk, the plan committed as it began)
    apply_chunk = chunked._apply_chunk

    async def recorded(*args: Any) -> tuple[int, int]:
        async with engine.connect() as connection:
            query = "SELECT count(*) FROM plan WHERE external_id = 'Scale 2026'"
            plans_seen.append((args[2], await connection.scalar(sa.text(query)) == 1))
        return await apply_chunk(*args)

    monkeypatch.setattr(chunked, "_apply_chunk", recorded)
    chunked_again = await load(engine, again, chunk_rows=60)
    assert chunked_again == whole
    assert await stored(engine) == expected
    assert len(plans_seen) > 2
    assert all(seen for _, seen in plans_seen)


class Interrupted(Exception):
    pass


def failing_at(chunk: int) -> Any:
    def progress(stage: str, count: int) -> None:
        if stage == "chunk" and count == chunk:
            raise Interrupted  # inside the chunk's transaction: it rolls back

    return progress


async def applying_after_two_chunks(engine: AsyncEngine, text: str) -> None:
    """A chunked first import of `text` (chunks of 60 rows) interrupted while its third chunk
    is applied: left applying, two chunks committed."""
    with pytest.raises(Interrupted):
        await load(engine, text, chunk_rows=60, progress=failing_at(3))
    [(state, _, done)] = await jobs(engine)
    assert (state, done) == ("applying", 2)


async def interrupted_at_chunk_4(engine: AsyncEngine, company: str) -> tuple[dict[str, Any], int]:
    """Imports the file whole, empties the tables, then imports it in chunks of 60 rows,
    interrupted while the fourth chunk is applied (chunks 0 to 2 committed): the whole
    import's tables and the chunked import's number of chunks."""
    await load(engine, company)
    expected = await stored(engine)
    await empty(engine)
    with pytest.raises(Interrupted):
        await load(engine, company, chunk_rows=60, progress=failing_at(4))
    [(state, chunks, done)] = await jobs(engine)
    assert (state, done) == ("applying", 3)
    return expected, chunks


async def test_an_interrupted_import_resumes_to_the_same_tables(
    engine: AsyncEngine, company: str
) -> None:
    expected, chunks = await interrupted_at_chunk_4(engine, company)
    partial = await stored(engine)
    assert 0 < len(partial["customer"]) < len(expected["customer"])
    [(tallied, counted)] = partial["customer_tally"]  # the rolled-back chunk's not counted
    assert tallied == counted == str(len(partial["customer"]))
    # the rollups wait for the last chunk: marked behind, so readers scan meanwhile
    assert partial["rollup_rebuild"] == [("1",)]
    assert expected["rollup_rebuild"] == [("0",)]
    assert len(expected["rollup"]) > 100
    # each customer is whole: exactly its rows of the finished import
    imported = {row[0] for row in partial["customer"]}
    for table in ("movement", "mrr_change"):
        mine = [row for row in expected[table] if row[0] in imported]
        assert partial[table] == mine

    result = await load(engine, company, chunk_rows=60)  # the same file: resumed
    assert await stored(engine) == expected
    assert await jobs(engine) == [("done", chunks, chunks)]
    assert result.rows == company.count("\n") - 1


async def indexes(engine: AsyncEngine) -> dict[str, str]:
    async with engine.connect() as connection:
        query = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        return {
            str(row.indexname): str(row.indexdef)
            for row in await connection.execute(sa.text(query))
        }


async def test_a_first_import_builds_the_indexes_it_deferred_once_at_the_end(
    engine: AsyncEngine, company: str
) -> None:
    """Chunks applied side by side leave the day indexes out (none of them reads one); the
    end of the import, a resumed one included, builds them as migrated; an import of another
    file builds those an abandoned one left out."""
    migrated = await indexes(engine)
    async with engine.connect() as connection:
        deferred = await chunked.deferred_indexes(connection)
    assert set(chunked.DEFERRED_INDEXES) <= set(deferred) <= set(migrated)
    built: list[tuple[str, int]] = []
    await load(engine, company, chunk_rows=60, progress=lambda *done: built.append(done))
    assert await indexes(engine) == migrated
    assert ("indexes", len(deferred)) in built

    expected, _ = await interrupted_at_chunk_4(engine, company)
    during = await indexes(engine)
    assert sorted(set(migrated) - set(during)) == sorted(deferred)
    assert {name: migrated[name] for name in during} == during  # the others untouched
    await load(engine, company, chunk_rows=60)  # resumed
    assert await indexes(engine) == migrated
    assert await stored(engine) == expected

    await empty(engine)
    with pytest.raises(Interrupted):
        await load(engine, company, chunk_rows=60, progress=failing_at(2))
    assert set(deferred).isdisjoint(await indexes(engine))
    await load(engine, corrected(company))  # another file, in one transaction
    assert await indexes(engine) == migrated
    assert [state for state, *_ in await jobs(engine)] == ["failed"]  # abandoned
    assert await stage_tables(engine) == []  # its staged file dropped


async def test_a_resume_restages_a_lost_staging_table(engine: AsyncEngine, company: str) -> None:
    await load(engine, company)
    expected = await stored(engine)
    await empty(engine)
    with pytest.raises(Interrupted):
        await load(engine, company, chunk_rows=60, progress=failing_at(2))
    async with engine.begin() as connection:  # as a server crash empties unlogged tables
        for table in await stage_tables(engine):
            await connection.execute(sa.text(f"TRUNCATE {table}"))
    await load(engine, company, chunk_rows=60)
    assert await stored(engine) == expected


async def test_an_import_interrupted_while_checking_stages_the_file_again(
    engine: AsyncEngine, company: str
) -> None:
    await load(engine, company)
    expected = await stored(engine)
    await empty(engine)

    def checking(stage: str, _count: int) -> None:
        if stage == "check":  # the staged file is committed, the checks not run yet
            raise Interrupted

    with pytest.raises(Interrupted):
        await load(engine, company, chunk_rows=60, progress=checking)
    assert [state for state, *_ in await jobs(engine)] == ["staging"]
    assert (await stored(engine))["customer"] == []
    assert len(await stage_tables(engine)) > 2  # the staged file and its partitions
    stages: list[str] = []
    await load(engine, company, chunk_rows=60, progress=lambda stage, _: stages.append(stage))
    assert "read" in stages  # staged again (the checks had not passed), then applied
    assert await stored(engine) == expected
    assert [state for state, *_ in await jobs(engine)] == ["done"]
    assert await stage_tables(engine) == []


async def test_a_bad_file_is_refused_before_any_chunk(engine: AsyncEngine, company: str) -> None:
    lines = company.splitlines(keepends=True)
    values = lines[300].split(",")
    values[2] = "2022-13-01"  # start_date, in a late chunk
    bad = "".join([*lines[:300], ",".join(values), *lines[301:]])
    overlap = lines[5]  # the same period twice: overlaps
    with pytest.raises(ImportFailed) as failed:
        await load(engine, bad + overlap, chunk_rows=60)
    assert "line 301: start_date '2022-13-01' is not a date" in " ".join(failed.value.problems)
    assert (await stored(engine))["customer"] == []
    assert [state for state, *_ in await jobs(engine)] == ["failed"]
    assert await stage_tables(engine) == []
    with pytest.raises(ImportFailed) as overlapping:
        await load(engine, company + overlap, chunk_rows=60)
    assert "overlaps another period" in " ".join(overlapping.value.problems)
    assert (await stored(engine))["customer"] == []
    # a subscription given to two customers (so in two chunks): found across the chunks
    columns = lines[0].strip().split(",")
    moved = lines[5].split(",")
    moved[columns.index("customer_id")] = "someone-else"
    moved[columns.index("start_date")], moved[columns.index("end_date")] = "2031-01-01", ""
    with pytest.raises(ImportFailed) as shared:
        await load(engine, company + ",".join(moved), chunk_rows=60)
    subscription = moved[columns.index("subscription_id")]
    expected = f"subscription {subscription} already belongs to another customer in this file"
    assert f"line {len(lines) + 1}: {expected} (line 6)" in " ".join(shared.value.problems)
    assert (await stored(engine))["customer"] == []


async def test_a_first_import_applies_chunks_side_by_side_to_the_same_tables(
    engine: AsyncEngine, company: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chunked, "CONCURRENT_CHUNKS", 1)  # one chunk after the other
    one_by_one = await load(engine, company, chunk_rows=60)
    expected = await stored(engine)
    # trials converted and expired, compared below
    converted_expired = {(t[6] != "None", t[7] != "None") for t in expected["trial"]}
    assert converted_expired == {(True, False), (False, True)}
    await empty(engine)

    side_by_side: list[tuple[int, bool]] = []  # (chunk, after another chunk's commit)
    apply_chunk = chunked._apply_chunk

    async def counted(*args: Any) -> tuple[int, int]:
        side_by_side.append((args[2], isinstance(args[-1], asyncio.Event)))
        return await apply_chunk(*args)

    monkeypatch.setattr(chunked, "CONCURRENT_CHUNKS", 2)
    monkeypatch.setattr(chunked, "_apply_chunk", counted)
    result = await load(engine, company, chunk_rows=60)
    assert result == one_by_one
    assert await stored(engine) == expected
    [(state, chunks, done)] = await jobs(engine)
    assert (state, done) == ("done", chunks)
    assert sorted(side_by_side) == [(chunk, True) for chunk in range(chunks)]  # each once
    async with engine.connect() as connection:  # the chunks' staged rollup rows went too
        query = "SELECT relname FROM pg_class WHERE relname ~ '^import_(rollup|cohorts)_'"
        assert list(await connection.scalars(sa.text(query))) == []
        # each chunk wrote the data version and the customer tally in a slot of its own, past
        # the backends' (two chunks' connections could share pid % 64: migration 0027)
        for table in ("data_version", "customer_tally"):
            query = f"SELECT slot FROM {table} WHERE slot >= 64 ORDER BY slot"
            assert list(await connection.scalars(sa.text(query))) == [64, 65]
    # a corrected file (no first import): side by side too, each chunk's net change to the
    # rollups added in chunk order; the same tables as one chunk after the other
    side_by_side.clear()
    again = await load(engine, corrected(company), chunk_rows=60)
    assert (again.changed_subscriptions, again.changed_customers) == (3, 3)
    assert sorted(side_by_side) == [(chunk, True) for chunk in range(chunks)]
    corrected_side_by_side = await stored(engine)
    monkeypatch.setattr(chunked, "CONCURRENT_CHUNKS", 1)
    await empty(engine)
    await load(engine, company, chunk_rows=60)
    one_by_one_again = await load(engine, corrected(company), chunk_rows=60)
    assert one_by_one_again == again
    assert await stored(engine) == corrected_side_by_side


async def test_a_failed_chunk_leaves_the_chunks_before_it_when_side_by_side(
    engine: AsyncEngine, company: str
) -> None:
    """Chunk 3 fails while chunk 4 is being applied beside it: chunks 0 to 2 stay committed,
    nothing of chunks 3 and 4 does, and the same file resumes to the whole import."""
    expected, _ = await interrupted_at_chunk_4(engine, company)
    [stage] = [table for table in await stage_tables(engine) if table.count("_") == 2]
    async with engine.connect() as connection:
        query = " UNION ".join(f"SELECT customer_id FROM {stage}_{k}" for k in range(3))
        first_three = set(await connection.scalars(sa.text(query)))
    partial = await stored(engine)
    assert {row[0] for row in partial["customer"]} == first_three
    assert len(first_three) < len({row[0] for row in expected["customer"]})
    await load(engine, company, chunk_rows=60)
    assert await stored(engine) == expected


async def test_attribute_values_upserted_in_chunks_of_lines(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    header = "subscription_id,customer_id,start_date,end_date,monthly_amount\n"
    await load(engine, header + "".join(f"s{i},C{i},2024-01-01,,10\n" for i in range(7)))
    tier = AttributeDefinition("tier", "Tier", AttributeType.STRING, "csv", "")
    seats = AttributeDefinition("seats", "Seats", AttributeType.NUMBER, "csv", "")
    for definition in (tier, seats):
        await attributes.create(engine, definition)
    monkeypatch.setattr(attributes._Stage, "CHUNK_LINES", 2)
    lines = ["customer,tier,seats\n", *(f"C{i},t{i % 3},{i}\n" for i in range(7))]
    lines[4] = "C3,,\n"  # no value: skipped
    assert await attributes.import_csv(engine, lines, "tiers.csv") == (7, 12)
    async with engine.connect() as connection:
        query = """SELECT c.external_id, a.key, coalesce(a.string_value, a.number_value::text)
                   FROM customer_attribute a JOIN customer c ON c.id = a.customer_id"""
        stored = sorted(tuple(row) for row in await connection.execute(sa.text(query)))
    expected = [(f"C{i}", "seats", str(i)) for i in range(7) if i != 3]
    expected += [(f"C{i}", "tier", f"t{i % 3}") for i in range(7) if i != 3]
    assert stored == sorted(expected)


def _cli_import(database_url: str, path: Path, chunk_rows: int, **settings: str) -> Any:
    env = {
        "TIDEMILL_DATABASE_URL": database_url,
        "TIDEMILL_IMPORT_CHUNK_ROWS": str(chunk_rows),
        "COLUMNS": "200",
        **settings,
    }
    return CliRunner().invoke(cli, ["import", "subscriptions", str(path)], env=env)


async def company_file(engine: AsyncEngine, company: str, tmp_path: Path) -> tuple[Path, Any]:
    """The company as a file, and the tables one transaction makes of it (then emptied)."""
    path = tmp_path / "company.csv"
    path.write_text(company)
    await load(engine, company)
    expected = await stored(engine)
    await empty(engine)
    return path, expected


async def test_the_cli_imports_a_large_file_in_chunks(
    engine: AsyncEngine, database_url: str, company: str, tmp_path: Path
) -> None:
    path, expected = await company_file(engine, company, tmp_path)
    result = await asyncio.to_thread(_cli_import, database_url, path, 100)
    assert result.exit_code == 0, result.output
    assert f"imported {company.count(chr(10)) - 1} rows" in result.output
    assert await stored(engine) == expected
    [(state, chunks, done)] = await jobs(engine)
    assert (state, done) == ("done", chunks)
    assert chunks == -(-company.count("\n") // 100 // 2) * 2  # from the file's size, even


async def test_the_cli_says_what_an_interrupted_import_kept_and_resumes_it(
    engine: AsyncEngine,
    database_url: str,
    company: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, expected = await company_file(engine, company, tmp_path)
    monkeypatch.setattr(chunked, "CONCURRENT_CHUNKS", 1)  # chunks in turn: 2 commit, then ^C
    apply_chunk = chunked._apply_chunk

    async def ctrl_c_in_the_third(*args: Any, **options: Any) -> tuple[int, int]:
        if args[2] == 2:  # (engine, job, chunk, ...)
            raise KeyboardInterrupt
        return await apply_chunk(*args, **options)

    monkeypatch.setattr(chunked, "_apply_chunk", ctrl_c_in_the_third)
    stopped = await asyncio.to_thread(_cli_import, database_url, path, 100)
    [(state, chunks, done)] = await jobs(engine)
    assert (state, done) == ("applying", 2)
    assert stopped.exit_code == 130
    assert "Traceback" not in stopped.output
    assert (
        f"interrupted: 2 of {chunks} chunks were saved, each of their customers whole (the "
        "others as before); run the same command again to resume"
    ) in stopped.output
    monkeypatch.setattr(chunked, "_apply_chunk", apply_chunk)
    resumed = await asyncio.to_thread(_cli_import, database_url, path, 100)
    assert resumed.exit_code == 0, resumed.output
    assert (
        f"resuming the interrupted import of company.csv: 2 of {chunks} chunks were applied before"
    ) in resumed.output
    assert f"imported {company.count(chr(10)) - 1} rows" in resumed.output
    assert await stored(engine) == expected


async def test_a_first_import_side_by_side_completes_customers_made_before(
    engine: AsyncEngine, company: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Customers that exist before any subscription (the usage ingest makes them, nameless):
    a first import's chunks, applied side by side from their own rows, find and complete them
    as one transaction does."""
    external = sorted({line.split(",")[1] for line in company.splitlines()[1:]})[::5]
    assert len(external) > 10

    async def made_before() -> None:
        async with engine.begin() as connection:
            await connection.execute(
                sa.text(
                    "INSERT INTO customer (source, external_id) "
                    "SELECT 'csv', unnest(CAST(:ids AS text[]))"
                ),
                {"ids": external},
            )

    await made_before()
    whole = await load(engine, company)
    expected = await stored(engine)
    await empty(engine)
    await made_before()
    applied: list[str] = []
    apply_first = chunked._apply_first

    async def counted(*args: Any) -> tuple[int, int]:
        applied.append(args[2])
        return await apply_first(*args)

    monkeypatch.setattr(chunked, "_apply_first", counted)
    result = await load(engine, company, chunk_rows=60)
    assert result == whole
    assert await stored(engine) == expected
    [(state, chunks, done)] = await jobs(engine)
    assert (state, done) == ("done", chunks)
    assert len(applied) == chunks  # every chunk from its own rows


async def vacuums(engine: AsyncEngine) -> dict[str, tuple[int, int, int]]:
    """(pages, all-visible pages, manual VACUUMs so far) of the movement tables: a VACUUM run
    by Tidemill counts in `vacuum_count` (autovacuum's in `autovacuum_count`)."""
    async with engine.connect() as connection:
        query = """SELECT c.relname, c.relpages, c.relallvisible, s.vacuum_count
                   FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid
                   WHERE c.relname IN ('movement', 'movement_scope')"""
        rows = await connection.execute(sa.text(query))
        return {name: (pages, seen, count) for name, pages, seen, count in rows}


@pytest.mark.parametrize("chunk_rows", [0, 150])
async def test_a_large_import_leaves_the_derived_tables_vacuumed(
    engine: AsyncEngine, company: str, chunk_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import that recomputes at least REANALYZE_AFTER customers ends with VACUUM
    (ANALYZE) of the movements, so that their pages are marked all-visible and their day
    indexes answer alone, whether autovacuum runs or not; a smaller one leaves that to
    autovacuum. What the import controls is that it runs: whether a page is then marked
    depends on the snapshots other sessions hold meanwhile (with the test files side by side, a
    connection starting up on another database can hold the horizon back), so the manual
    vacuum count is checked."""
    await empty(engine)
    before = await vacuums(engine)
    monkeypatch.setattr(subscriptions, "REANALYZE_AFTER", 10_000)
    await load(engine, company, chunk_rows)
    assert {name: row[2] for name, row in (await vacuums(engine)).items()} == {
        name: row[2] for name, row in before.items()
    }
    await empty(engine)
    monkeypatch.setattr(subscriptions, "REANALYZE_AFTER", 100)  # the company has 240
    await load(engine, company, chunk_rows)
    after = await vacuums(engine)
    for name, (pages, _seen, count) in after.items():
        assert count == before[name][2] + 1, name
        assert pages > 0, name


# --- a large file staged by several processes (app.ingest.staging) ------------------------------


async def load_in_parts(engine: AsyncEngine, path: Path, chunk_rows: int) -> ImportResult:
    """Import a file in chunks, staged in parts by child processes (as the CLI does)."""
    text = await asyncio.to_thread(path.read_text)
    header, rows = read_periods(io.StringIO(text), "USD")
    return await load_periods(
        engine,
        rows,
        filename="company.csv",
        sha256=str(hash(text)),
        expected_rows=text.count("\n"),
        chunk_rows=chunk_rows,
        parted=PeriodsFile(path, header.names, "USD"),
    )


@pytest.fixture
def staged_parts(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """Files of any size staged in parts; what each staging in parts returned (None: a part
    had a bad line)."""
    monkeypatch.setattr(staging, "MIN_BYTES", 0)
    outcomes: list[int | None] = []
    stage_in_parts = staging.stage_in_parts

    async def recorded(*args: Any) -> int | None:
        assert len(args[3]) == args[2].processes  # (url, table, source, parts, progress)
        outcomes.append(await stage_in_parts(*args))
        return outcomes[-1]

    monkeypatch.setattr(staging, "stage_in_parts", recorded)
    return outcomes


async def test_a_file_staged_in_parts_imports_the_same_tables(
    engine: AsyncEngine, company: str, tmp_path: Path, staged_parts: list[int | None]
) -> None:
    path, expected = await company_file(engine, company, tmp_path)
    result = await load_in_parts(engine, path, chunk_rows=60)
    assert staged_parts == [company.count("\n") - 1] == [result.rows]
    assert await stored(engine) == expected
    [(state, chunks, done)] = await jobs(engine)
    assert (state, done) == ("done", chunks)


async def test_a_file_staged_in_parts_is_refused_as_one_process_refuses_it(
    engine: AsyncEngine, company: str, tmp_path: Path, staged_parts: list[int | None]
) -> None:
    """Across lines (the checks of the staged rows), the same lines as staged whole, those
    of the second part included; a bad line in either part, the same report as one
    process's (the file staged whole again for it): each time nothing is stored."""
    lines = company.splitlines(keepends=True)
    late = len(lines) - 20
    overlapping = company + lines[late]  # the same period again, at the end: overlaps
    values = lines[late].split(",")
    values[2] = "2022-13-01"  # start_date
    bad = "".join([*lines[:5], "s,c\n", *lines[5:late], ",".join(values), *lines[late + 1 :]])
    reports = []
    for text in (overlapping, bad + lines[6]):
        with pytest.raises(ImportFailed) as whole:
            await load(engine, text, chunk_rows=60)
        path = tmp_path / "company.csv"
        path.write_text(text)
        with pytest.raises(ImportFailed) as in_parts:
            await load_in_parts(engine, path, chunk_rows=60)
        assert (in_parts.value.lines, in_parts.value.more) == (whole.value.lines, whole.value.more)
        assert (await stored(engine))["customer"] == []
        assert await stage_tables(engine) == []
        reports.append(in_parts.value.lines)
    assert staged_parts == [len(overlapping.splitlines()) - 1, None]
    [(line, reason)] = reports[0]  # the lines of the second part, numbered as in the file
    assert (line, f"(line {late + 1})") == (len(lines) + 1, reason[-len(f"(line {late + 1})") :])
    assert reports[1][0] == (6, "start_date must not be empty")
    assert reports[1][1] == (
        late + 2,
        "start_date '2022-13-01' is not a date (expected YYYY-MM-DD)",
    )


async def test_a_failed_staging_process_fails_the_import_and_leaves_nothing(
    engine: AsyncEngine,
    database_url: str,
    company: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(staging, "MIN_BYTES", 0)
    path = tmp_path / "company.csv"
    path.write_text(company)
    monkeypatch.setattr(chunked, "_create_stage", _no_stage)
    with pytest.raises(
        staging.StagingFailed, match=r"staging the file in parts failed: .* does not exist"
    ):
        await load_in_parts(engine, path, chunk_rows=60)
    assert (await stored(engine))["customer"] == []
    result = await asyncio.to_thread(_cli_import, database_url, path, 100)  # told, no traceback
    assert result.exit_code == 1
    assert "staging the file in parts failed: " in result.output
    assert "TIDEMILL_IMPORT_PROCESSES=1" in result.output
    assert "Traceback" not in result.output
    assert (await stored(engine))["customer"] == []


async def _no_stage(connection: Any, job: chunked.Job) -> None:
    """No staging table: the staging processes' COPY fails."""


async def test_the_cli_stages_a_large_file_in_parts(
    engine: AsyncEngine,
    database_url: str,
    company: str,
    tmp_path: Path,
    staged_parts: list[int | None],
) -> None:
    path, expected = await company_file(engine, company, tmp_path)
    alone = {"TIDEMILL_IMPORT_PROCESSES": "1"}
    result = await asyncio.to_thread(_cli_import, database_url, path, 100, **alone)
    assert result.exit_code == 0, result.output
    assert staged_parts == []  # the importing process alone
    assert await stored(engine) == expected
    await empty(engine)
    result = await asyncio.to_thread(_cli_import, database_url, path, 100)
    assert result.exit_code == 0, result.output
    assert staged_parts == [company.count("\n") - 1]
    assert f"imported {company.count(chr(10)) - 1} rows" in result.output
    assert await stored(engine) == expected
