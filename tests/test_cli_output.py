"""Every client command in every format, on the demo company: the table shows what JSON and
CSV carry, numbers are never cut, counts are integers, money is integer cents, an empty result
says so with the span of the data."""

from __future__ import annotations

import csv
import fcntl
import functools
import io
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from typing import Any

import pytest

from app.cli.output import MONEY_FIELDS, cell, csv_header
from tests.demo_data import demo_server as serving
from tests.demo_data import tidemill

COMMANDS = {
    "mrr": ["mrr", "--at", "2026-11-30"],
    "mrr series": ["mrr", "--start", "2026-01-01", "--end", "2026-11-30"],
    "mrr breakdown": ["mrr", "breakdown", "-d", "plan", "--start", "2026-09-01", "--end", "2026-11-30"],
    "mrr compare": ["mrr", "breakdown", "--compare", "2", "--compare", "3", "--start", "2026-10-01",
                    "--end", "2026-11-30"],
    "arr": ["arr", "--at", "2026-06-30"],
    "arr series": ["arr", "--start", "2026-01-01", "--end", "2026-03-31", "--interval", "quarter"],
    "summary": ["summary", "--start", "2026-10-01", "--end", "2026-11-30"],
    "churn": ["churn", "--start", "2026-01-01", "--end", "2026-11-30", "--first", "5"],
    "churn logo": ["churn", "--type", "logo", "--start", "2026-01-01", "--end", "2026-11-30"],
    "retention": ["retention", "--start", "2025-01-01", "--end", "2026-11-30"],
    "retention mrr": ["retention", "--mrr", "--start", "2026-01-01", "--end", "2026-11-30"],
    "ltv": ["ltv", "--start", "2026-01-01", "--end", "2026-11-30"],
    "trials": ["trials", "--start", "2025-12-01", "--end", "2026-11-30"],
    "customers": ["customers", "--sort", "mrr", "--first", "5"],
    "segments": ["segments"],
}  # fmt: skip
# What each table shows of a data row (retention shows its own matrix, summary its cells).
TABLE_COLUMNS = {
    "mrr": ["date", "mrr", "customers", "arpa"],
    "arr": ["date", "arr", "customers"],
    "churn": ["day", "externalId", "name", "kind", "amount", "mrrBefore", "mrrAfter", "plans"],
    "customers": ["id", "externalId", "name", "country", "customerSince", "mrr", "status"],
    "ltv": ["date", "arpa", "customerChurnRate", "customerChurnAvg", "ltv"],
    "trials": ["date", "trialsStarted", "trialsConverted", "trialsExpired", "conversionRate"],
    "segments": ["id", "name", "description", "definition"],
}
DATA_SPAN = "data spans 2022-01-01..2026-11-30"  # the demo at PINNED: first sign-up, last change
NUMBER = re.compile(r"-?\d[\d,]*\.\d\d(?: %)?")


@pytest.fixture(scope="module")
def server(database: str) -> Iterator[str]:
    """One demo server for the module: the demo lives in a database of its own on the test
    server (read-only here), so it needs the server's URL, not the per-test emptied one."""
    with serving(database) as url:
        yield url


def run(server: str, *args: str, columns: int | None = 200) -> str:
    return _stdout(server, args, columns)


@functools.cache
def _stdout(server: str, args: tuple[str, ...], columns: int | None) -> str:
    """A command's output (the demo is read-only here, so each is run once per server)."""
    result = tidemill(server, *args, columns=columns)
    assert result.exit_code == 0, result.output
    return result.stdout


def data(server: str, name: str) -> list[dict[str, Any]]:
    rows = json.loads(run(server, *COMMANDS[name], "--format", "json"))
    assert isinstance(rows, list)
    assert rows, f"{name}: no rows"
    return rows


def squeezed(text: str) -> str:
    """Table text with the borders and runs of spaces gone, to find cell values in."""
    return " ".join(re.sub(r"[│┃┏┓┗┛┡┩└┘━─┳┻╇╈┼┠┨╋┃]", " ", text).split())


@pytest.mark.parametrize("name", COMMANDS)
def test_json_rows(server: str, name: str) -> None:
    rows = data(server, name)
    assert len({tuple(row) for row in rows}) == 1  # one shape
    for row in rows:
        for field, value in row.items():
            if field in MONEY_FIELDS or field in {"customers", "size", "totalCount"}:
                assert value is None or isinstance(value, int), (field, value)


@pytest.mark.parametrize("name", COMMANDS)
def test_csv_is_the_json_with_money_in_cents(server: str, name: str) -> None:
    rows = data(server, name)
    text = run(server, *COMMANDS[name], "--format", "csv")
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert len(parsed) == len(rows)
    assert list(parsed[0]) == [csv_header(field) for field in rows[0]]
    for row, line in zip(rows, parsed, strict=True):
        for field, value in row.items():
            found = line[csv_header(field)]
            if isinstance(value, bool):
                assert found == str(value).lower()
            elif isinstance(value, int | float):
                assert type(value)(found) == value, (field, found, value)
            elif isinstance(value, dict):
                assert json.loads(found) == value
            elif isinstance(value, list):
                assert found == "; ".join(value)
            else:
                assert found == ("" if value is None else str(value))


@pytest.mark.parametrize("name", [n for n in COMMANDS if n.split()[0] in TABLE_COLUMNS])
def test_table_shows_the_rows(server: str, name: str) -> None:
    command = name.split()[0]
    table = squeezed(run(server, *COMMANDS[name]))
    for row in data(server, name):
        for column in TABLE_COLUMNS[command]:
            if column in row:
                assert squeezed(cell(column, row[column])) in table, (column, row[column])
    assert "…" not in table


def test_breakdown_table_and_rows(server: str) -> None:
    rows = data(server, "mrr breakdown")
    table = squeezed(run(server, *COMMANDS["mrr breakdown"]))
    assert {row["key"] for row in rows} <= {"Starter", "Growth", "Scale", "Team"}
    for row in rows:
        line = " ".join([row["key"], row["date"], cell("mrr", row["mrr"])])
        assert line in table


def test_compared_segments_are_rows_of_their_names(server: str) -> None:
    rows = data(server, "mrr compare")
    assert [row["key"] for row in rows] == ["Small teams"] * 2 + ["Large teams"] * 2
    assert all(row["mrr"] > 0 for row in rows)


def test_summary_counts_are_integers_money_cents_rates_fractions(server: str) -> None:
    rows = {row["metric"]: row for row in data(server, "summary")}
    assert rows["customers"]["unit"] == "count"
    assert isinstance(rows["customers"]["current"], int)
    assert rows["mrr"]["unit"] == "cents"
    assert rows["arr"]["current"] == 12 * rows["mrr"]["current"]
    assert rows["nrr"]["unit"] == "rate"
    assert 0.5 < rows["nrr"]["current"] < 1.5
    assert {row["start"] for row in rows.values()} == {"2026-10-01"}
    table = squeezed(run(server, *COMMANDS["summary"]))
    assert f"customers {rows['customers']['current']} {rows['customers']['previous']}" in table
    assert f"mrr {cell('mrr', rows['mrr']['current'])}" in table
    assert ".00 %" not in table.split("customers")[1].split("arpa")[0]  # no "205.00"


def test_retention_cells_are_rows(server: str) -> None:
    rows = data(server, "retention")
    january = [row for row in rows if row["cohort"] == "2025-01-01"]
    assert [row["offset"] for row in january] == list(range(len(january)))
    assert january[0]["activeCustomers"] == january[0]["size"]
    assert january[0]["customerRetention"] == 1.0
    for row in january:
        assert row["customerRetention"] == pytest.approx(row["activeCustomers"] / row["size"])
        assert row["mrrRetention"] == pytest.approx(row["mrr"] / january[0]["mrr"])
    table = squeezed(run(server, *COMMANDS["retention"], columns=None))  # one row a line
    cells = " ".join(cell("customerRetention", row["customerRetention"]) for row in january)
    assert f"2025-01 {january[0]['size']} {cells}" in table


def test_trials_carry_the_funnel(server: str) -> None:
    rows = data(server, "trials")
    funnel = {key: rows[0][key] for key in rows[0] if key.startswith("funnel")}
    assert all({key: row[key] for key in funnel} == funnel for row in rows)
    assert funnel["funnelStarted"] == sum(row["trialsStarted"] for row in rows)
    table = run(server, *COMMANDS["trials"])
    assert (
        f"funnel: {funnel['funnelStarted']} started, {funnel['funnelConverted']} converted, "
        f"{funnel['funnelExpired']} expired, {funnel['funnelInProgress']} in progress"
    ) in table


def test_churn_pages_carry_totals_and_the_cursor(server: str) -> None:
    rows = data(server, "churn")
    assert len(rows) == 5
    assert rows[0]["hasNextPage"] is True
    total = rows[0]["totalCount"]
    table = squeezed(run(server, *COMMANDS["churn"]))
    assert f"{total} churn events, {cell('churn', rows[0]['totalAmount'])} in total" in table
    assert f"--after {rows[0]['endCursor']}" in table
    rest = json.loads(
        run(
            server,
            *COMMANDS["churn"],
            "--after",
            rows[0]["endCursor"],
            "--first",
            "500",
            "-f",
            "json",
        )
    )
    assert len(rows) + len(rest) == total
    assert rest[-1]["hasNextPage"] is False


def test_customers_next_page_from_the_last_cursor(server: str) -> None:
    rows = data(server, "customers")
    assert rows[0]["hasNextPage"] is True
    assert [row["mrr"] for row in rows] == sorted((row["mrr"] for row in rows), reverse=True)
    table = run(server, *COMMANDS["customers"])
    assert f"{rows[0]['totalCount']} customers (next page: --after {rows[-1]['cursor']})" in table
    following = run(server, *COMMANDS["customers"], "--after", rows[-1]["cursor"], "-f", "json")
    next_ids = {row["id"] for row in json.loads(following)}
    assert len(next_ids) == 5
    assert not next_ids & {row["id"] for row in rows}


def test_one_customer_is_singular(server: str) -> None:
    assert re.search(r"\b1 customer\b(?!s)", run(server, "customers", "--search", "cus_00001"))
    nine = run(server, "customers", "--search", "cus_0000", "--first", "2")  # cus_00001..9
    assert re.search(r"\b9 customers \(next page", nine)


def test_segments_definitions_are_json(server: str) -> None:
    rows = data(server, "segments")
    by_name = {row["name"]: row for row in rows}
    assert by_name["Large teams"]["definition"] == {
        "field": "attr.seats",
        "op": "GTE",
        "values": ["10"],
    }
    assert by_name["Europe"]["id"] == "1"


@pytest.mark.parametrize("name", ["mrr series", "retention", "customers", "churn", "summary"])
def test_a_narrow_console_splits_the_table_never_cuts_a_value(server: str, name: str) -> None:
    wide = run(server, *COMMANDS[name])
    narrow = run(server, *COMMANDS[name], columns=60)
    assert max(len(line) for line in narrow.splitlines()) <= 60
    assert "…" not in narrow
    assert set(NUMBER.findall(wide)) <= set(NUMBER.findall(narrow))  # each on one line, whole


@pytest.mark.parametrize("name", ["mrr series", "mrr breakdown", "retention", "segments"])
def test_a_pipe_gets_the_whole_table(server: str, name: str) -> None:
    piped = run(server, *COMMANDS[name], columns=None)
    assert "…" not in piped
    assert NUMBER.findall(piped) == NUMBER.findall(run(server, *COMMANDS[name], columns=400))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mrr", "--start", "2019-01-01", "--end", "2019-12-31"], "no data in 2019-01-01..2019-12-31"),
        (["mrr", "--at", "2019-06-30"], "no data on 2019-06-30"),
        (["arr", "--at", "2019-06-30"], "no data on 2019-06-30"),
        (["summary", "--start", "2019-01-01", "--end", "2019-02-28"], "no data in 2019-01-01..2019-02-28"),
        (["churn", "--start", "2019-01-01", "--end", "2019-12-31"], "no churn events in 2019-01-01..2019-12-31"),
        (["churn", "--type", "logo", "--start", "2019-01-01", "--end", "2019-12-31"],
         "no churned customers in 2019-01-01..2019-12-31"),
        (["retention", "--start", "2019-01-01", "--end", "2019-12-31"], "no cohorts in 2019-01-01..2019-12-31"),
        (["ltv", "--start", "2019-01-01", "--end", "2019-12-31"], "no data in 2019-01-01..2019-12-31"),
        (["trials", "--start", "2019-01-01", "--end", "2019-12-31"], "no trials in 2019-01-01..2019-12-31"),
        (["mrr", "breakdown", "-d", "plan", "--start", "2019-01-01", "--end", "2019-12-31"],
         "no data in 2019-01-01..2019-12-31"),
    ],
)  # fmt: skip
def test_an_empty_range_says_where_the_data_is(server: str, args: list[str], message: str) -> None:
    said = f"{message} ({DATA_SPAN})"
    table = tidemill(server, *args)
    assert (table.exit_code, table.stdout.strip(), table.stderr) == (0, said, "")
    as_json = tidemill(server, *args, "--format", "json")
    assert (as_json.stdout.strip(), " ".join(as_json.stderr.split())) == ("[]", said)
    as_csv = tidemill(server, *args, "--format", "csv")
    assert (as_csv.stdout, " ".join(as_csv.stderr.split())) == ("", said)


def test_no_match_and_no_segments_are_said(server: str) -> None:
    assert (
        run(server, "customers", "--search", "nobody-by-this-name").strip() == "no customers match"
    )


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def in_terminal(server: str, args: list[str], columns: int) -> str:
    """`tidemill ARGS` in a real pseudo-terminal `columns` wide; what it shows, uncoloured."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in {"COLUMNS", "LINES"}}
    env |= {"TIDEMILL_URL": f"{server}/graphql", "TIDEMILL_API_KEY": "", "TERM": "xterm"}
    command = [sys.executable, "-m", "app.cli", *args]
    child = subprocess.Popen(command, stdin=follower, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closes with the child
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert child.wait(timeout=120) == 0
    return ANSI.sub("", b"".join(chunks).decode()).replace("\r\n", "\n")


def test_a_narrow_terminal_splits_the_table(server: str) -> None:
    args = COMMANDS["mrr series"]
    shown = in_terminal(server, args, 60)
    assert max(len(line) for line in shown.splitlines()) <= 60
    assert "…" not in shown
    assert set(NUMBER.findall(run(server, *args))) <= set(NUMBER.findall(shown))


def test_usage_values_read_as_the_numbers_they_are() -> None:
    """A usage value is the API's Float: whole ones without a `.0`, with separators."""
    values = (537292.0, 5.25, -3.0, 12345678.5, 0.1, None)
    shown = ["537,292", "5.25", "-3", "12,345,678.5", "0.1", "—"]
    assert [cell("value", value) for value in values] == shown
