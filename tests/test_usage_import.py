"""`tidemill import events FILE`: NDJSON and CSV, bad lines skipped, resumable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from app.cli import cli
from app.tables import usage_event
from app.usage import bulk
from app.usage.bulk import import_events


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
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.select(usage_event.c.event_id, usage_event.c.properties).order_by("event_id")
        )
        assert rows.all() == [("c1", {"tokens": 12, "model": "gpt"}), ("c4", {})]


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
