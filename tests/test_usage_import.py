"""`tidemill import events FILE`: NDJSON and CSV, bad lines skipped, resumable."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from app.cli import cli
from app.errors import UserError
from app.metrics.service import MetricsEngine
from app.metrics.usage import Aggregation, QueryType, Window
from app.tables import customer, usage_event, usage_rollup, usage_rollup_day
from app.usage import bulk, definitions
from app.usage.bulk import import_events
from app.usage.definitions import MetricInput
from app.usage.events import TOO_DEEP
from app.usage.ingest import DEFAULT_SOURCE, Batch, check, ingest, rules, store
from app.usage.service import UsageService

SUM = Aggregation.SUM


def ndjson(path: Path, count: int) -> Path:
    lines = [
        json.dumps(
            {
                "id": f"n{i}",
                "customer": f"cust{i % 2}",
                "name": "api_call",
                "timestamp": f"2026-{1 + i % 12:02}-01T00:00:00Z",
                "properties": {"tokens": i},
            }
        )
        for i in range(count)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


async def total_tokens(engine: AsyncEngine) -> int:
    tokens = sa.cast(usage_event.c.properties["tokens"].astext, sa.Integer)
    async with engine.connect() as connection:
        return int(await connection.scalar(sa.select(sa.func.sum(tokens))) or 0)


class Stop(Exception):
    pass


async def test_an_interrupted_import_resumes_after_its_last_chunk(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = ndjson(tmp_path / "events.ndjson", 10)
    monkeypatch.setattr(bulk, "CHUNK", 4)
    calls = []

    def crash_after_first_chunk(done: int) -> None:
        calls.append(done)
        raise Stop

    with pytest.raises(Stop):
        await import_events(engine, path, progress=crash_after_first_chunk)
    assert await total_tokens(engine) == 0 + 1 + 2 + 3
    resumed = await import_events(engine, path)
    assert resumed.resumed_at == calls[0]
    assert (resumed.lines, resumed.accepted, resumed.duplicates) == (10, 10, 0)
    assert await total_tokens(engine) == sum(range(10))
    again = await import_events(engine, path)
    assert again.already_done
    assert await total_tokens(engine) == sum(range(10))


async def test_ctrl_c_keeps_the_stored_events_and_says_to_run_again(
    engine: AsyncEngine, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = ndjson(tmp_path / "events.ndjson", 10)
    monkeypatch.setattr(bulk, "CHUNK", 4)

    async def ctrl_c_after_the_first_chunk(
        engine: AsyncEngine, path: Path, source: str, _progress: Any
    ) -> bulk.ImportSummary:
        def stop(_done: int) -> None:
            raise KeyboardInterrupt

        return await import_events(engine, path, source, progress=stop)

    monkeypatch.setattr(bulk, "import_events", ctrl_c_after_the_first_chunk)
    env = {"TIDEMILL_DATABASE_URL": database_url, "COLUMNS": "200"}
    args = ["import", "events", str(path)]
    stopped = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
    assert stopped.exit_code == 130
    assert (
        "interrupted: the events stored so far are kept; run the same command again to resume "
        "where it stopped"
    ) in stopped.output
    assert await total_tokens(engine) == 0 + 1 + 2 + 3
    monkeypatch.setattr(bulk, "import_events", import_events)
    resumed = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
    assert resumed.exit_code == 0, resumed.output
    assert f"resumed {path} at byte" in resumed.output
    assert await total_tokens(engine) == sum(range(10))


async def test_csv_columns_become_properties_and_bad_lines_are_listed(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "id,customer,name,timestamp,tokens,model\n"
        "c1,acme,api_call,2026-10-01T00:00:00Z,12,gpt\n"
        "c2,acme,api_call,2026-10-02T00:00:00Z,30\n"
        "c3,acme,api_call,never,1,gpt\n"
        "c4,acme,api_call,2026-10-02T00:00:00Z,,\n"
    )
    summary = await import_events(engine, path)
    assert (summary.accepted, summary.rejected) == (2, 2)
    assert [item.index for item in summary.reasons] == [2, 3]
    assert "the line has 5 fields; the header has 6" in summary.reasons[0].reason
    path.write_bytes(b"id,customer,name,timestamp\nc5,acme,api\rcall,2026-10-03T00:00:00Z\n")
    again = await import_events(engine, path)  # a line the csv module refuses: rejected
    assert (again.accepted, again.rejected) == (0, 1)
    assert again.reasons[0].reason == "the line holds a carriage return (\\r) outside quotes"
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.select(usage_event.c.event_id, usage_event.c.properties).order_by("event_id")
        )
        assert rows.all() == [("c1", {"tokens": 12, "model": "gpt"}), ("c4", {})]


async def test_a_csv_header_names_each_column_once_and_a_property_comes_once(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """A column named twice kept the last value (5 tokens lost), an unnamed one made a
    property named "", and a property both in `properties` and a column took the column's:
    the header is refused, the line rejected, and nothing of such a file stored."""
    first = "e1,acme,api_call,2026-10-01T00:00:00Z"
    for header, problem in [
        ("id,customer,name,timestamp,tokens,tokens", "the CSV header names tokens more than once"),
        ("id,customer,name,timestamp,,model", "the CSV header has no name for column 5"),
        ("id,id,customer,name,timestamp,model", "the CSV header names id more than once"),
        ("id;customer;name;timestamp", "the header line has no commas but semicolons"),
    ]:
        path = tmp_path / "events.csv"
        path.write_text(f"{header}\n{first},5,7\n")
        with pytest.raises(UserError, match=re.escape(problem)):
            await import_events(engine, path)
    for raw, problem in [  # bytes that are no CSV header: refused, never a traceback
        (b"id,cust\xffomer,name,timestamp", "the CSV header (line 1) is not UTF-8 text (byte 0xff"),
        (b"id,cust\romer,name,timestamp", "the line holds a carriage return (\\r) outside"),
    ]:
        path = tmp_path / "events.csv"
        path.write_bytes(raw + b"\n" + first.encode() + b"\n")
        with pytest.raises(UserError, match=re.escape(problem)):
            await import_events(engine, path)
    path = tmp_path / "clash.csv"
    path.write_text(
        "id,customer,name,timestamp,properties,model\n"
        f'{first},"{{""model"": ""a""}}",b\n'
        'e2,acme,api_call,2026-10-01T00:00:00Z,"{""tokens"": 3}",b\n'
    )
    summary = await import_events(engine, path)
    assert (summary.accepted, summary.rejected) == (1, 1)
    assert [(r.index, r.reason) for r in summary.reasons] == [
        (1, "property 'model' is both in properties and a column")
    ]
    async with engine.connect() as connection:
        rows = await connection.execute(sa.select(usage_event.c.event_id, usage_event.c.properties))
        assert rows.all() == [("e2", {"tokens": 3, "model": "b"})]


def test_the_cli_reports_counts(database_url: str, tmp_path: Path) -> None:
    path = ndjson(tmp_path / "events.ndjson", 3)
    with path.open("a") as handle:
        handle.write("{broken\n")
    result = CliRunner().invoke(
        cli, ["import", "events", str(path)], env={"TIDEMILL_DATABASE_URL": database_url}
    )
    assert result.exit_code == 0, result.output
    assert "4 events read: 3 stored, 0 duplicates, 1 rejected" in result.output
    assert "event 4 (no id): the line is not JSON" in result.output


async def test_duplicates_in_the_file_and_already_stored_count_once(
    engine: AsyncEngine, metrics: MetricsEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stored before the import: d1 (acme, 5 tokens). The file, two lines a chunk:

        d1  acme  500 tokens  (already stored: a duplicate, its 500 never counted)
        d2  acme   7          d2 again (same chunk: a duplicate, 700 never counted)
        d3  beta  11          late: 2026-01-15, a day the INDEXED rollup has not seen yet
        d4  acme  13          d4 again in a later chunk (a duplicate, 1300 never counted)
        a\\tb  a\\\\c  1       an id and a customer holding a tab and a backslash

    acme in 2026: 5 + 7 + 13 = 25; beta 11; the customer `a\\c` 1. Both metrics agree."""
    monkeypatch.setattr(bulk, "CHUNK", 2)
    simple, indexed = [
        (
            await definitions.create(
                engine, MetricInput(name, "api_call", SUM, "tokens", query_type=kind)
            )
        ).id
        for name, kind in (("tokens", QueryType.SIMPLE), ("tokens_indexed", QueryType.INDEXED))
    ]
    before = await ingest(engine, [line("d1", "acme", "2026-03-01T00:00:00Z", 5)])
    assert before.accepted == 1
    path = tmp_path / "events.ndjson"
    lines = [
        line("d1", "acme", "2026-03-02T00:00:00Z", 500),
        line("d2", "acme", "2026-03-03T00:00:00Z", 7),
        line("d2", "acme", "2026-03-03T00:00:00Z", 700),
        line("d3", "beta", "2026-01-15T10:00:00Z", 11),
        line("d4", "acme", "2026-03-04T00:00:00Z", 13),
        line("a\tb", "a\\c", "2026-03-05T00:00:00Z", 1, note='say "hi"\n\\ \u00e9'),
        line("d4", "acme", "2026-03-04T00:00:00Z", 1300),
    ]
    path.write_text("".join(json.dumps(item) + "\n" for item in lines))
    summary = await import_events(engine, path)
    assert (summary.lines, summary.accepted, summary.duplicates, summary.rejected) == (7, 4, 3, 0)
    service = UsageService(metrics)
    year = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    async with engine.connect() as connection:
        ids = dict(
            (await connection.execute(sa.select(customer.c.external_id, customer.c.id))).all()
        )
        stored = await connection.execute(
            sa.select(usage_event.c.event_id, usage_event.c.properties).where(
                usage_event.c.customer_id == ids["a\\c"]
            )
        )
        assert stored.all() == [("a\tb", {"tokens": 1, "note": 'say "hi"\n\\ \u00e9'})]
    for metric in (simple, indexed):
        found = [
            (await service.value(metric, ids[who], year)).value for who in ("acme", "beta", "a\\c")
        ]
        assert found == [25, 11, 1]
    january = Window(datetime(2026, 1, 15, tzinfo=UTC), datetime(2026, 1, 16, tzinfo=UTC))
    assert (await service.value(indexed, ids["beta"], january)).value == 11


def line(ident: str, who: str, at: str, tokens: int, **more: str) -> dict[str, object]:
    properties: dict[str, object] = {"tokens": tokens, **more}
    return {
        "id": ident,
        "customer": who,
        "name": "api_call",
        "timestamp": at,
        "properties": properties,
    }


async def test_long_integers_and_unusual_json_are_read_exactly(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    path = tmp_path / "events.ndjson"
    path.write_text(
        '{"id": 12345678901234567890123, "customer": "acme", "name": "n",'
        ' "timestamp": "2026-03-01T00:00:00Z", "properties": {"big": 123456789012345678901234567890}}\n'
        '{"id": "x", "customer": "acme", "name": "n", "timestamp": "2026-03-01T00:00:00Z",'
        ' "properties": {"v": NaN}}\n'
        '{"id": "y", "customer": "acme", "name": "n", "timestamp": "2026-03-01T00:00:00Z",'
        ' "properties": {"v": 1e400}}\n'
    )
    summary = await import_events(engine, path)
    assert (summary.accepted, summary.rejected) == (1, 2)
    assert [item.reason for item in summary.reasons] == [
        "the line is not JSON: NaN is not JSON",
        "properties hold a number out of range (NaN or infinite)",
    ]
    async with engine.connect() as connection:
        rows = await connection.execute(sa.select(usage_event.c.event_id, usage_event.c.properties))
        assert rows.all() == [("12345678901234567890123", {"big": 123456789012345678901234567890})]


async def test_a_line_is_read_as_utf_8_whatever_its_first_bytes(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """Binary junk starting with NUL bytes is "not JSON" (the standard decoder guessed UTF-16
    from them, and called it not UTF-8); a byte order mark is skipped; invalid UTF-8 is named."""
    good = b'{"id": "%s", "customer": "acme", "name": "n", "timestamp": "2026-03-01T00:00:00Z"}'
    path = tmp_path / "events.ndjson"
    path.write_bytes(
        b"\xef\xbb\xbf" + good % b"bom" + b"\n"
        b"\x00\x01\x02garbage\n"
        + b'{"id": "latin", "customer": "caf\xe9"}\n'
        + good % b"last"
        + b"\n"
    )
    summary = await import_events(engine, path)
    assert (summary.accepted, summary.rejected) == (2, 2)
    assert [(item.index, item.reason) for item in summary.reasons] == [
        (2, "the line is not JSON: Expecting value: line 1 column 1 (char 0)"),
        (3, "the line is not UTF-8"),
    ]


async def test_deeply_nested_properties_are_a_reason_not_a_crash(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """Deeper than the decoders go (orjson reads 1,024 levels; the standard decoder and
    encoder, Python's recursion limit): the line or the event is rejected, the others kept."""
    good = '{"id": "%s", "customer": "acme", "name": "n", "timestamp": "2026-03-01T00:00:00Z"'
    deep = good % "deep" + ', "properties": ' + '{"k": ' * 3_000 + "1" + "}" * 3_000 + "}"
    path = tmp_path / "events.ndjson"
    path.write_text(f"{deep}\n{good % 'fine'}}}\n")
    summary = await import_events(engine, path)
    assert (summary.accepted, summary.rejected) == (1, 1)
    assert summary.reasons[0].reason == f"the line is {TOO_DEEP}"
    nested: dict[str, object] = {"k": 1}
    for _ in range(5_000):
        nested = {"k": nested}
    event = json.loads(good % "python" + "}") | {"properties": nested}
    result = await ingest(engine, [event, json.loads(good % "kept" + "}")])
    assert result.accepted == 1
    assert [item.reason for item in result.rejected] == [f"properties are {TOO_DEEP}"]


async def test_numbers_out_of_range_given_as_python_values_are_refused(engine: AsyncEngine) -> None:
    """orjson would write NaN and infinity as null: such properties are refused, nested too."""
    given = [
        line("nan", "acme", "2026-03-01T00:00:00Z", 1, note="x")
        | {"properties": {"v": float("nan")}},
        line("inf", "acme", "2026-03-01T00:00:00Z", 1)
        | {"properties": {"v": [{"w": float("-inf")}]}},
        line("null", "acme", "2026-03-01T00:00:00Z", 1) | {"properties": {"v": None, "w": 1.5}},
    ]
    result = await ingest(engine, given)
    assert result.accepted == 1
    assert [(item.id, item.reason) for item in result.rejected] == [
        ("nan", "properties hold a number out of range (NaN or infinite)"),
        ("inf", "properties hold a number out of range (NaN or infinite)"),
    ]
    async with engine.connect() as connection:
        stored = await connection.scalar(sa.select(usage_event.c.properties))
    assert stored == {"v": None, "w": 1.5}


async def test_an_id_stored_by_a_concurrent_ingest_is_applied_once(engine: AsyncEngine) -> None:
    """Batch A (c1: 5 tokens, c2: 7) is stored but not yet committed when batch B (c2: 700,
    c3: 11) comes: B's plain insert of its keys waits on A's c2, fails when A commits, and B is
    stored again with the conflict check: c3 alone. acme's INDEXED total: 5 + 7 + 11 = 23."""
    indexed = (
        await definitions.create(
            engine, MetricInput("tokens", "api_call", SUM, "tokens", query_type=QueryType.INDEXED)
        )
    ).id
    first = [
        line("c1", "acme", "2026-03-01T00:00:00Z", 5),
        line("c2", "acme", "2026-03-01T01:00:00Z", 7),
    ]
    second = [
        line("c2", "acme", "2026-03-01T01:00:00Z", 700),
        line("c3", "acme", "2026-03-01T02:00:00Z", 11),
    ]
    await ingest(engine, [line("c0", "acme", "2026-03-01T00:00:00Z", 0)])  # acme, the month
    async with engine.connect() as connection:
        found = await rules(connection)
    events, _ = check(first, found, datetime.now(UTC))
    async with engine.begin() as connection:
        assert await store(connection, Batch.of(events), DEFAULT_SOURCE, found, {}) == 2
        later = asyncio.create_task(ingest(engine, second))
        waiting = sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'"
        )
        async with engine.connect() as watcher:
            for _ in range(200):  # until B waits on A's key c2
                if await watcher.scalar(waiting):
                    break
                await watcher.rollback()  # pg_stat_activity is read once per transaction
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("the second batch never waited on the first")
    result = await later
    assert (result.accepted, result.duplicates) == (1, 1)
    tokens = sa.func.sum(usage_rollup.c.sum)
    async with engine.connect() as connection:
        total = await connection.scalar(
            sa.select(tokens).where(usage_rollup.c.metric_id == indexed)
        )
    assert total == 23
    assert await total_tokens(engine) == 23


async def test_per_day_totals_are_made_from_the_per_customer_groups(engine: AsyncEngine) -> None:
    """One day, two customers, two batches; the per-day row of each INDEXED metric by hand:

        a1 acme 10:00   5        b2 beta 08:00  20
        a2 acme 12:00   2        b1 beta 12:00   9   (same time as a2: b1 is later by id)
        then c1 acme 12:00 7 (later than b1 by id), and x1 beta the next day, 1

    March 1st: 5 events, sum 43, min 2, max 20, latest c1 (7); March 2nd: x1 alone."""
    made = {}
    for name, aggregation, prop in (
        ("latest", Aggregation.LATEST, "tokens"),
        ("least", Aggregation.MIN, "tokens"),
        ("total", SUM, "tokens"),
        ("calls", Aggregation.COUNT, None),
    ):
        given = MetricInput(name, "api_call", aggregation, prop, query_type=QueryType.INDEXED)
        made[name] = (await definitions.create(engine, given)).id
    first = [
        line("a1", "acme", "2026-03-01T10:00:00Z", 5),
        line("b1", "beta", "2026-03-01T12:00:00Z", 9),
        line("a2", "acme", "2026-03-01T12:00:00Z", 2),
        line("b2", "beta", "2026-03-01T08:00:00Z", 20),
    ]
    assert (await ingest(engine, first)).accepted == 4
    second = [
        line("c1", "acme", "2026-03-01T12:00:00Z", 7),
        line("x1", "beta", "2026-03-02T00:00:00Z", 1),
    ]
    assert (await ingest(engine, second)).accepted == 2
    t = usage_rollup_day.c
    query = sa.select(
        t.metric_id, t.day, t["count"], t.sum, t.min, t.max, t.latest_id, t.latest_value
    ).order_by(t.metric_id, t.day)
    async with engine.connect() as connection:
        rows = [tuple(row) for row in (await connection.execute(query)).all()]
    march_1, march_2 = date(2026, 3, 1), date(2026, 3, 2)
    assert rows == [
        (made["latest"], march_1, 5, 43, 2, 20, "c1", 7),
        (made["latest"], march_2, 1, 1, 1, 1, "x1", 1),
        (made["least"], march_1, 5, 43, 2, 20, None, None),
        (made["least"], march_2, 1, 1, 1, 1, None, None),
        (made["total"], march_1, 5, 43, 2, 20, None, None),
        (made["total"], march_2, 1, 1, 1, 1, None, None),
        (made["calls"], march_1, 5, None, None, None, None, None),
        (made["calls"], march_2, 1, None, None, None, None, None),
    ]


async def test_timestamps_are_stored_as_the_moments_they_name(engine: AsyncEngine) -> None:
    """Given to COPY as they came (with Z or an offset) or written again (no offset: UTC; a
    basic-format one): each stored as its moment, and rolled up on its UTC day."""
    metric = (
        await definitions.create(
            engine, MetricInput("tokens", "api_call", SUM, "tokens", query_type=QueryType.INDEXED)
        )
    ).id
    given = {
        "z": ("2026-03-01T10:00:00Z", datetime(2026, 3, 1, 10, tzinfo=UTC)),
        "offset": ("2026-03-01T23:30:00-02:00", datetime(2026, 3, 2, 1, 30, tzinfo=UTC)),
        "fraction": ("2026-03-01T10:00:00.25+01:00", datetime(2026, 3, 1, 9, 0, 0, 250_000, UTC)),
        "naive": ("2026-03-01T10:00:00", datetime(2026, 3, 1, 10, tzinfo=UTC)),
        "basic": ("20260301T100000Z", datetime(2026, 3, 1, 10, tzinfo=UTC)),
    }
    events = [line(ident, "acme", at, 1) for ident, (at, _) in given.items()]
    assert (await ingest(engine, events)).accepted == 5
    async with engine.connect() as connection:
        stored = dict(
            (await connection.execute(sa.select(usage_event.c.event_id, usage_event.c.ts))).all()
        )
        days = dict(
            (
                await connection.execute(
                    sa.select(usage_rollup_day.c.day, usage_rollup_day.c["count"]).where(
                        usage_rollup_day.c.metric_id == metric
                    )
                )
            ).all()
        )
    assert stored == {ident: moment for ident, (_, moment) in given.items()}
    assert days == {date(2026, 3, 1): 4, date(2026, 3, 2): 1}


async def test_a_large_import_refreshes_the_statistics_plans_read(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "ANALYZE_FROM", 5)
    await import_events(engine, ndjson(tmp_path / "events.ndjson", 24))
    async with engine.connect() as connection:
        analyzed = await connection.execute(
            sa.text(
                "SELECT DISTINCT attname FROM pg_stats "
                "WHERE tablename = 'usage_event' AND inherited"
            )
        )
        # the columns events are chosen by; not the JSON documents (read through expressions)
        assert sorted(analyzed.scalars()) == ["customer_id", "name", "ts"]


async def test_a_stored_batch_leaves_no_reference_to_its_rows(engine: AsyncEngine) -> None:
    """A bulk import keeps the cycle collector idle while it parses (`fewer_collections`), so
    the COPY must not leave its rows in a reference cycle: a file object given to asyncpg was
    (4 MB more memory for each 50,000-event chunk, until the import ended)."""
    await ingest(engine, [line("r0", "acme", "2026-03-01T00:00:00Z", 0)])  # acme, the month
    async with engine.connect() as connection:
        found = await rules(connection)
    events, _ = check(
        [line(f"r{i}", "acme", "2026-03-01T01:00:00Z", i) for i in range(1, 50)],
        found,
        datetime.now(UTC),
    )
    batch = Batch.of(events)
    references = sys.getrefcount(batch.rows)
    gc.disable()  # a cycle would hold the rows until the collector runs: not now
    try:
        async with engine.begin() as connection:
            assert await store(connection, batch, DEFAULT_SOURCE, found, {}) == 49
        left = sys.getrefcount(batch.rows)  # not inside `assert`: pytest would hold it too
        assert left == references
    finally:
        gc.enable()
    assert await total_tokens(engine) == sum(range(50))


@pytest.mark.parametrize(
    ("name", "content", "reported", "kept"),
    [
        (
            "offset.ndjson",
            '{"id": "ok1", "customer": "C1", "name": "api_call", "timestamp": "2026-11-30T12:00:00Z"}\n'
            '{"id": "t1", "customer": "C1", "name": "api_call", "timestamp": "2026-11-30T12:00:00+16:00"}\n'
            '{"id": "ok2", "customer": "C1", "name": "api_call", "timestamp": "2026-11-30T12:00:00-15:59"}\n',
            "event 2 (t1): timestamp 2026-11-30T12:00:00+16:00 has the UTC offset +16:00; accepted "
            "offsets are less than 16 hours from UTC, -15:59 to +15:59",
            ["ok1", "ok2"],
        ),
        (
            "overflow.ndjson",
            '{"id": "ok1", "customer": "C1", "name": "api_call", "timestamp": "2026-11-30T12:00:00Z"}\n'
            '{"id": "t1", "customer": "C1", "name": "api_call", "timestamp": "0001-01-01T00:00:00+01:00"}\n'
            '{"id": "ok2", "customer": "C1", "name": "api_call", "timestamp": "2026-11-30T12:00:00Z"}\n',
            "event 2 (t1): timestamp 0001-01-01T00:00:00+01:00 is outside the accepted range: from "
            "2000-01-01 to one day after the server's clock",
            ["ok1", "ok2"],
        ),
        (
            "offset.csv",
            "id,customer,name,timestamp\n"
            "ok1,C1,api_call,2026-11-30T12:00:00Z\n"
            "t1,C1,api_call,2026-11-30T12:00:00+20:00\n"
            "ok2,C1,api_call,9999-12-31T23:59:59-01:00\n"
            "ok3,C1,api_call,2026-11-30T12:00:00+15:00\n",
            "event 2 (t1): timestamp 2026-11-30T12:00:00+20:00 has the UTC offset +20:00; accepted "
            "offsets are less than 16 hours from UTC, -15:59 to +15:59",
            ["ok1", "ok3"],  # (ok2: 9999-12-31T23:59:59-01:00, beyond Python's years in UTC)
        ),
    ],
)  # fmt: skip
async def test_a_timestamp_the_database_cannot_hold_is_a_bad_line_reported_and_skipped(
    engine: AsyncEngine,
    database_url: str,
    tmp_path: Path,
    name: str,
    content: str,
    reported: str,
    kept: list[str],
) -> None:
    """Such a line stopped the import with a traceback, its chunk's good lines lost."""
    path = tmp_path / name
    path.write_text(content)
    env = {"TIDEMILL_DATABASE_URL": database_url, "COLUMNS": "300"}
    args = ["import", "events", str(path)]
    result = await asyncio.to_thread(CliRunner().invoke, cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    lines = content.count("\n") - name.endswith(".csv")
    rejected = lines - len(kept)
    assert f"{lines} events read: 2 stored, 0 duplicates, {rejected} rejected" in result.output
    assert reported in result.output
    async with engine.connect() as connection:
        found = await connection.scalars(sa.select(usage_event.c.event_id).order_by("event_id"))
        assert list(found) == kept


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ("ev\tents", "source holds a control character (U+0009 at character 3)"),
        ("\udcff", "source holds a lone UTF-16 surrogate (U+DCFF at character 1)"),
        ("s" * 101, "source must be 1-100 characters"),
    ],
)
async def test_a_source_that_cannot_name_one_stops_the_import_saying_so(
    engine: AsyncEngine, tmp_path: Path, source: str, problem: str
) -> None:
    path = ndjson(tmp_path / "events.ndjson", 2)
    with pytest.raises(UserError, match=re.escape(problem)):
        await import_events(engine, path, source)
    assert await total_tokens(engine) == 0
