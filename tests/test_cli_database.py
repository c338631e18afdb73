"""The `tidemill` command against the database it is given: a new, empty database is migrated
by whichever command runs first (an import, say); one that cannot be used (it does not exist,
nothing listens there, not a PostgreSQL URL) is an error naming it, password hidden, and the
server's reason, with exit code 1 and no traceback. Each runs the real command (`python -m
app.cli`) in a child process, as a user would."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

REPO = Path(__file__).resolve().parent.parent
PERIODS = (
    "subscription_id,customer_id,start_date,end_date,monthly_amount,plan\n"
    "s1,alice,2025-01-01,2025-03-01,100,basic\n"
    "s1,alice,2025-03-01,,250,pro\n"
    "s2,bob,2025-02-01,2025-04-01,40,basic\n"
)


def tidemill(
    database_url: str, *args: str, home: Path, **settings: str
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "TIDEMILL_DATABASE_URL": database_url,
        "COLUMNS": "200",
        **settings,
    }
    command = [sys.executable, "-m", "app.cli", *args]
    return subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture
async def new_database(database: str) -> AsyncIterator[str]:
    """The URL of a database just created on the test server: no schema, no rows."""
    admin = create_async_engine(make_url(database), isolation_level="AUTOCOMMIT")
    name = f"tidemill_test_new_{uuid.uuid4().hex[:8]}"
    async with admin.connect() as connection:
        await connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(database).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as connection:
            await connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        await admin.dispose()


async def test_a_first_import_into_a_new_database_migrates_it(
    new_database: str, tmp_path: Path
) -> None:
    periods = tmp_path / "periods.csv"
    periods.write_text(PERIODS)
    done = tidemill(new_database, "import", "subscriptions", str(periods), home=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "imported 3 rows: 2 subscriptions changed, 2 customers recomputed" in done.stdout
    engine = create_async_engine(make_url(new_database))
    try:
        async with engine.connect() as connection:
            customers = await connection.scalar(sa.text("SELECT count(*) FROM customer"))
            periods_stored = await connection.scalar(
                sa.text("SELECT count(*) FROM subscription_version")
            )
            # alice: new 100 (Jan), expansion +150 (Mar); bob: new 40 (Feb), churn -40 (Apr)
            movements = (
                await connection.execute(
                    sa.text("SELECT kind, amount FROM movement ORDER BY day, kind")
                )
            ).all()
    finally:
        await engine.dispose()
    assert (customers, periods_stored) == (2, 3)
    assert [(kind, int(amount)) for kind, amount in movements] == [
        ("new", 10000),
        ("new", 4000),
        ("expansion", 15000),
        ("churn", -4000),
    ]


async def test_a_new_database_takes_events_first_and_judges_attributes_by_its_keys(
    new_database: str, tmp_path: Path
) -> None:
    events = tmp_path / "events.ndjson"
    events.write_text(
        '{"id": "e1", "customer": "alice", "name": "tokens",'
        ' "timestamp": "2025-01-02T00:00:00Z", "properties": {"n": 3}}\n'
    )
    done = tidemill(new_database, "import", "events", str(events), home=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 events read: 1 stored, 0 duplicates, 0 rejected" in done.stdout
    attributes = tmp_path / "attributes.csv"
    attributes.write_text("customer_id,industry\nalice,media\n")
    refused = tidemill(new_database, "import", "attributes", str(attributes), home=tmp_path)
    assert refused.returncode == 1  # no key is defined in a new database: told, not a crash
    assert "industry" in refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr


async def test_a_statement_the_database_stops_is_said_with_what_was_kept(
    new_database: str, tmp_path: Path
) -> None:
    """An import whose statement the server cancels (here a 1 ms statement timeout) exits 1
    with the server's reason and what the import kept, not a traceback."""
    periods = tmp_path / "periods.csv"
    periods.write_text(PERIODS)
    migrated = tidemill(new_database, "migrate", home=tmp_path)
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    done = tidemill(
        new_database,
        *("import", "subscriptions", str(periods)),
        home=tmp_path,
        TIDEMILL_STATEMENT_TIMEOUT_MS="1",
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    said = " ".join(done.stderr.split())  # (a timeout the server or the client enforced)
    assert said.startswith("error: the database stopped the import (canceling statement due to")
    assert said.endswith("): nothing was saved")
    engine = create_async_engine(make_url(new_database))
    try:
        async with engine.connect() as connection:
            assert await connection.scalar(sa.text("SELECT count(*) FROM customer")) == 0
    finally:
        await engine.dispose()


def _closed_port() -> int:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        return int(listener.getsockname()[1])


@pytest.mark.parametrize("command", [("keys", "list"), ("import", "subscriptions"), ("serve",)])
async def test_a_database_that_does_not_exist_is_named_not_a_traceback(
    database: str, tmp_path: Path, command: tuple[str, ...]
) -> None:
    missing = make_url(database).set(database="tidemill_no_such_db", password="s3cret")
    args = [*command, str(tmp_path / "p.csv")] if command[0] == "import" else list(command)
    if command == ("serve",):  # a free port: the database is what fails
        args += ["--port", str(_closed_port())]
    (tmp_path / "p.csv").write_text(PERIODS)
    done = tidemill(missing.render_as_string(hide_password=False), *args, home=tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    shown = missing.render_as_string(hide_password=True)
    assert f"error: cannot use the database {shown}:" in done.stderr
    assert 'database "tidemill_no_such_db" does not exist' in done.stderr
    assert "s3cret" not in done.stdout + done.stderr
    assert "TIDEMILL_DATABASE_URL" in done.stderr


async def test_nothing_listening_and_a_url_of_another_kind_are_named(tmp_path: Path) -> None:
    port = _closed_port()
    refused = tidemill(f"postgresql://postgres@127.0.0.1:{port}/x", "keys", "list", home=tmp_path)
    assert refused.returncode == 1
    assert f"cannot use the database postgresql://postgres@127.0.0.1:{port}/x:" in refused.stderr
    assert "Traceback" not in refused.stdout + refused.stderr
    other = tidemill("mysql://root:pw@127.0.0.1/test", "keys", "list", home=tmp_path)
    assert other.returncode == 1
    assert "not a PostgreSQL URL: 'mysql://root:***@127.0.0.1/test'" in other.stderr
    assert "expected postgresql://" in other.stderr
    garbled = tidemill("localhost:5432", "serve", "--port", str(_closed_port()), home=tmp_path)
    assert garbled.returncode == 1
    assert "not a database URL: 'localhost:5432'" in garbled.stderr


def test_a_bad_setting_is_one_error_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve"],
        cwd=REPO,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "TIDEMILL_WORKERS": "x"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "error: TIDEMILL_WORKERS: 'x' is not a whole number of 0 or more"


def test_a_port_already_taken_is_said_before_any_work(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for command in (["serve"], ["demo", "--customers", "5"]):
            done = subprocess.run(
                [sys.executable, "-m", "app.cli", *command, "--port", str(port)],
                cwd=REPO,
                env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 1
            assert done.stderr.startswith(
                f"error: cannot listen on 127.0.0.1:{port}: address already in use"
            )
            assert not (tmp_path / ".local").exists()  # no embedded server was started


def test_the_embedded_default_starts_quietly(tmp_path: Path) -> None:
    """No TIDEMILL_DATABASE_URL: the embedded server is made in the data dir, migrated and
    stopped again, and nothing but Tidemill's own line is printed (pgserver's platformdirs
    warned of XDG_RUNTIME_DIR on every start where it is unset)."""
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    data = tmp_path / "data"
    env["TIDEMILL_DATA_DIR"] = str(data)
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "migrate"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    assert done.stdout.startswith("loaded ")
    assert "ECB reference rates to USD" in done.stdout
    assert (data / "pg" / "PG_VERSION").is_file()
