"""A CSV file in parts (app.ingest.csvfile.split_records), each read as the whole file is read:
the same rows with the same line numbers, or a problem that sends the import back to reading
the file whole (app.ingest.staging)."""

from __future__ import annotations

import io
import multiprocessing
import signal
from multiprocessing.connection import Connection
from pathlib import Path

from app.ingest import staging
from app.ingest.csvfile import CsvRow, Part, TextLines, csv_rows, split_records
from connectors.csv.subscriptions import PeriodsFile, read_periods

HEADER = "subscription_id,customer_id,start_date,end_date,monthly_amount,customer_name\n"


def whole(path: Path) -> list[CsvRow]:
    """The rows after the header, read as an import of the whole file reads them."""
    with path.open("rb") as handle:
        rows = csv_rows(TextLines(handle))
        next(rows)
        return list(rows)


def in_parts(path: Path, parts: list[Part]) -> list[CsvRow]:
    found: list[CsvRow] = []
    for start, end, first_line in parts:
        data = path.read_bytes()[start:end]
        found += csv_rows(TextLines(io.BytesIO(data), first_line=first_line))
    return found


def line(number: int, name: str = "Acme") -> str:
    return f"s{number},c{number},2024-01-01,,10,{name}\n"


def test_parts_hold_each_row_once_with_its_line_number(tmp_path: Path) -> None:
    path = tmp_path / "periods.csv"
    path.write_text(HEADER + "".join(line(n) for n in range(1, 101)))
    for count in (2, 3, 7):
        parts = split_records(path, count)
        assert len(parts) == count
        assert parts[0][0] == len(HEADER)
        assert parts[-1][1] == path.stat().st_size
        assert [end for _, end, _ in parts[:-1]] == [start for start, _, _ in parts[1:]]
        assert in_parts(path, parts) == whole(path)
    [(start, _, first_line)] = split_records(path, 1)
    assert (start, first_line) == (len(HEADER), 2)


def test_a_part_never_starts_inside_a_quoted_field(tmp_path: Path) -> None:
    """Quoted line breaks around where the middle split would fall: the split moves past
    them, and the lines after them keep their numbers."""
    path = tmp_path / "periods.csv"
    names = ['"Acme\nEast"', '"Quote ""x""\n\nand more"', "Plain"]
    body = "".join(line(n, names[n % 3]) for n in range(1, 61))
    path.write_text(HEADER + body)
    wanted = whole(path)
    # the last row's line: the header's, 59 rows', the breaks in 20 rows of two and 19 of one
    assert wanted[-1][0] == 1 + 59 + 2 * 20 + 1 * 19 + 1
    for count in (2, 3, 5):
        for block in (7, 64, 1 << 20):  # the file read a few bytes at a time, too
            parts = split_records(path, count, block)
            assert len(parts) > 1
            assert in_parts(path, parts) == wanted
            assert all(problem is None for _, _, problem in in_parts(path, parts))


def test_lines_ended_by_a_carriage_return_alone_are_not_split(tmp_path: Path) -> None:
    """csv ends a line at a lone \\r too, which counting \\n would not: no split after one."""
    path = tmp_path / "periods.csv"
    path.write_bytes((HEADER + line(1) + line(2).replace("\n", "\r") + line(3) * 40).encode())
    [part] = split_records(path, 2)
    assert in_parts(path, [part]) == whole(path)
    crlf = tmp_path / "windows.csv"
    crlf.write_bytes(
        (HEADER + "".join(line(n) for n in range(1, 41))).replace("\n", "\r\n").encode()
    )
    assert len(split_records(crlf, 2, block=5)) == 2  # \r\n split across blocks is still a line end
    assert in_parts(crlf, split_records(crlf, 2, block=5)) == whole(crlf)


def test_a_header_alone_has_no_parts(tmp_path: Path) -> None:
    path = tmp_path / "periods.csv"
    path.write_text(HEADER)
    assert split_records(path, 2) == []
    path.write_text(HEADER.rstrip("\n"))
    assert split_records(path, 2) == []


def test_broken_quoting_ends_a_part_in_a_problem(tmp_path: Path) -> None:
    """A quote inside an unquoted field (a literal for csv) shifts the quote count, so a split
    may fall inside a quoted field: the part before it then ends in an open quote, reported,
    and the import reads the file whole instead."""
    path = tmp_path / "periods.csv"
    body = line(1, 'Joe"s') + "".join(line(n, '"Acme\nEast"') for n in range(2, 40))
    path.write_text(HEADER + body)
    parts = split_records(path, 2)
    assert len(parts) == 2
    assert in_parts(path, parts) != whole(path)
    assert any(problem for _, _, problem in in_parts(path, parts))


def test_a_periods_file_part_reads_as_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "periods.csv"
    path.write_text(HEADER + "".join(line(n) for n in range(1, 51)) + "s9,c9,2024-13-01,,10,\n")
    with path.open("rb") as handle:
        header, rows = read_periods(TextLines(handle), "USD")
        expected = list(rows)
    periods = PeriodsFile(path, header.names, "USD")
    found = []
    for part in periods.parts(3):
        rows, stream = periods.read(part)
        found += list(rows)
        assert stream.read_bytes == part[1] - part[0]
    assert found == expected
    assert found[-1] == (52, "start_date '2024-13-01' is not a date (expected YYYY-MM-DD)")


def _sigint_disposition(results: Connection) -> None:
    results.send(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)


def test_a_staging_process_leaves_ctrl_c_to_its_parent() -> None:
    """Children are started ignoring SIGINT (from their first instruction: their start-up
    imports take a while), the parent's own handler put back: Ctrl-C reaches the import,
    which stops the children, and no child prints a KeyboardInterrupt of its own. The test
    gives itself Python's own Ctrl-C handler first: a test run started in the background by
    a shell without job control inherits SIGINT ignored, and so would every child."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with staging._ctrl_c_ignored():
            child = context.Process(target=_sigint_disposition, args=(sender,))
            child.start()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert receiver.recv() is True
        child.join()
        unguarded = context.Process(target=_sigint_disposition, args=(sender,))
        unguarded.start()
        assert receiver.recv() is False
        unguarded.join()
    finally:
        signal.signal(signal.SIGINT, inherited)
