"""No test depends on another having run, nor on the developer's own configuration.

pytest-randomly shuffles every run; this pins down the orders that once failed, in a child
pytest (its own database) with the order fixed, under a home directory and environment that
would change every answer if they were read.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.tables import metadata
from tests.conftest import TABLES

ROOT = Path(__file__).resolve().parents[1]
ORDER = (
    # needs only the database's URL, and runs first: the database must be migrated and empty
    "tests/test_auth.py::test_no_keyless_access_when_bound_beyond_loopback",
    # a server and the CLI: neither may read TIDEMILL_* variables or ~/.tidemill.toml
    "tests/test_server.py::test_cli_mrr_at_a_day_as_json",
    # leaves a (revoked) API key in the database...
    "tests/test_auth.py::test_keys_commands",
    # ...which must not lock the next server out of keyless loopback access
    "tests/test_cli_client.py::test_mrr_breakdown",
)


def test_order_and_the_developers_configuration_change_nothing(tmp_path: Path) -> None:
    (tmp_path / ".tidemill.toml").write_text('api_key = "tm_not-a-key"\nbase_currency = "EUR"\n')
    hostile = {
        "HOME": str(tmp_path),
        "TIDEMILL_BASE_CURRENCY": "JPY",
        "TIDEMILL_HOST": "0.0.0.0",
        "TIDEMILL_URL": "http://127.0.0.1:1/graphql",
    }
    command = [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [*command, "-q", *ORDER],
        cwd=ROOT,
        env={**os.environ, **hostile},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert f"{len(ORDER)} passed" in done.stdout


def test_every_table_is_emptied_before_a_test() -> None:
    assert set(TABLES) == set(metadata.tables)
