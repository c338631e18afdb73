"""Import files, read safely: text lines with their numbers, CSV rows with the line each starts
on, and whatever is wrong with a line (not UTF-8, a NUL byte, too long, bad or unclosed
quoting) as a reason to report, never an exception. Every import reads its file through here
(subscriptions, attributes, FX rates; from a path or an upload).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

MAX_LINE = 1 << 20  # characters in one line
BAD_BYTE = re.compile("[\udc80-\udcff]")  # how surrogateescape decodes a byte that is not UTF-8
EMPTY_FILE = "the file is empty (expected a header line)"


class TextLines:
    """The lines of a file as UTF-8 text (a leading byte-order mark dropped), one string per
    line so that csv's line numbers are the file's. A line that is not UTF-8, holds a NUL byte
    or is longer than MAX_LINE is still yielded (cleaned) so reading goes on, and its problem
    is kept in `problems`. Decoding runs in C; only a line that is not plain ASCII is looked
    at more closely. `consumed` is how far the file has been read (for progress bars).
    `first_line`: the number of the stream's first line (a part of a file, `split_records`)."""

    def __init__(
        self, stream: BinaryIO | None, decoded: Iterable[str] = (), first_line: int = 1
    ) -> None:
        self.stream = stream
        self.decoded = decoded  # lines that are text already (when there is no stream)
        self.number = first_line - 1
        self.problems: dict[int, str] = {}
        self.row_lines: list[str] = []  # the lines of the CSV row being read

    @property
    def consumed(self) -> int:
        return self.stream.tell() if self.stream is not None else 0

    def __iter__(self) -> Iterator[str]:
        if self.stream is None:
            yield from self._checked_lines(iter(self.decoded))
            return
        text = io.TextIOWrapper(
            self.stream, encoding="utf-8-sig", errors="surrogateescape", newline=""
        )
        try:
            yield from self._checked_lines(iter(partial(text.readline, MAX_LINE), ""))
        finally:
            if not self.stream.closed:  # (a wrapper of a closed stream is closed too)
                text.detach()  # the stream stays its opener's to close

    def _checked_lines(self, lines: Iterator[str]) -> Iterator[str]:
        for line in lines:
            self.number += 1
            if len(line) >= MAX_LINE or not line.isascii() or "\x00" in line:
                line = self._checked(line, lines)
            self.row_lines.append(line)
            yield line

    def _checked(self, text: str, lines: Iterator[str]) -> str:
        """The line with its problem recorded and what made it bad removed."""
        if len(text) >= MAX_LINE and not text.endswith("\n"):
            for rest in lines:  # the rest of the long line
                if rest.endswith("\n"):
                    break
            self._problem(f"the line is longer than {MAX_LINE:,} characters")
            return "\n"
        if bad := BAD_BYTE.search(text):
            byte = ord(bad.group()) - 0xDC00
            self._problem(
                f"not UTF-8 text (byte 0x{byte:02x} at column {bad.start() + 1}): "
                "save the file as UTF-8"
            )
            return BAD_BYTE.sub("\ufffd", text).replace("\x00", "")
        if "\x00" in text:
            column = text.index("\x00") + 1
            self._problem(f"a NUL byte (\\x00) at column {column}: is this a CSV text file?")
            return text.replace("\x00", "")
        return text

    def _problem(self, reason: str) -> None:
        self.problems.setdefault(self.number, reason)

    def problem_in(self, first: int, last: int) -> str | None:
        """The first problem of lines first..last, if any."""
        if not self.problems:
            return None
        return next((self.problems[n] for n in range(first, last + 1) if n in self.problems), None)


# (the line a row starts on, its values, what is wrong with its lines: then values may be
# anything). A plain tuple: a file has a row per line, and a tuple is the cheapest to make.
CsvRow = tuple[int, list[str], str | None]


def csv_rows(source: TextLines | Iterable[str]) -> Iterator[CsvRow]:
    """The CSV rows of a file (blank lines are rows without values). A quoting error is
    reported on the line it concerns; after a runaway quoted field (never closed, or over
    csv's field size limit) the rest of the file is not read."""
    lines = source if isinstance(source, TextLines) else TextLines(None, source)
    reader = csv.reader(lines, strict=True)
    row_lines, problems = lines.row_lines, lines.problems
    before = lines.number  # the lines before the source's first (a part of a file)
    while True:
        start = before + reader.line_num + 1
        row_lines.clear()
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            line, reason, runaway = _quoting_problem(str(error), start, row_lines)
            yield line, [], lines.problem_in(start, before + reader.line_num) or reason
            if runaway:
                return
            continue
        yield start, values, lines.problem_in(start, before + reader.line_num) if problems else None


def with_header(
    source: TextLines | Iterable[str],
) -> tuple[list[str], str | None, Iterator[CsvRow]]:
    """The header's names (stripped), what is wrong with the header line (EMPTY_FILE when
    there is none), and the rows after it."""
    rows = csv_rows(source)
    first = next(rows, None)
    if first is None:
        return [], EMPTY_FILE, rows
    _, values, problem = first
    return [value.strip() for value in values], problem or separator_problem(values), rows


SEPARATORS = {";": "semicolons (;)", "\t": "tabs"}


def separator_problem(values: list[str]) -> str | None:
    """A header of one column holding another separator: a file exported with semicolons
    (a spreadsheet in a locale whose decimal mark is a comma) or tabs, which would otherwise
    be reported as one unknown column."""
    if len(values) != 1:
        return None
    for separator, name in SEPARATORS.items():
        if separator in values[0]:
            return (
                f"the header line has no commas but {name}: Tidemill reads comma-separated "
                'files (from a spreadsheet, save as "CSV UTF-8 (comma delimited)")'
            )
    return None


def _quoting_problem(message: str, start: int, row_lines: list[str]) -> tuple[int, str, bool]:
    """(line, reason, whether the rest of the file is lost in the field) of a csv error."""
    if "unexpected end of data" in message:
        opened = _open_quote_line(row_lines, start)
        return opened, "unclosed quote: the quoted field starting on this line never ends", True
    if "field larger than field limit" in message:
        opened = _open_quote_line(row_lines, start)
        limit = csv.field_size_limit()
        reason = f"a field starting on this line is longer than {limit:,} characters"
        return opened, reason + " (is its closing quote missing?)", True
    if "new-line character seen in unquoted field" in message:
        return start, "a carriage return (\\r) inside the line: use \\n or \\r\\n line ends", False
    if "expected after" in message:
        reason = "bad quoting: a closing quote must be followed by a comma or the line's end"
        return start, reason, False
    return start, f"not valid CSV ({message})", False


def _open_quote_line(row_lines: list[str], first: int) -> int:
    """The line on which the row's quoted field that is still open began."""
    opened, quoted, field_start, closed = first, False, True, False
    for number, text in enumerate(row_lines, start=first):
        for char in text:
            if quoted:
                if char == '"':
                    quoted, closed = False, True
                continue
            if char == '"' and (field_start or closed):  # after a closing one: a doubled quote
                quoted = True
                if field_start:
                    opened = number
            field_start, closed = char in ",\r\n", False
    return opened


# --- a large file in parts, each read by its own process ---------------------------------------


class ByteRange(io.RawIOBase):
    """Bytes `start` to `end` (exclusive) of a file, as a stream of their own; `read_bytes`
    is how many have been read."""

    def __init__(self, path: Path, start: int, end: int) -> None:
        super().__init__()
        self.file = path.open("rb")
        self.file.seek(start)
        self.left = end - start
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")[: self.left]
        count = self.file.readinto(view)
        self.left -= count
        self.read_bytes += count
        return count

    def close(self) -> None:
        self.file.close()
        super().close()


# (its first byte, the byte after its last, the number of its first line)
Part = tuple[int, int, int]
SPLIT_BLOCK = 1 << 23  # bytes read at a time while looking for where to split


def split_records(path: Path, parts: int, block: int = SPLIT_BLOCK) -> list[Part]:
    """The rows after the header of a CSV file, in up to `parts` parts of about equal size,
    each starting on a line outside any quoted field (an even number of quotes before it:
    at a line start outside quotes, csv is in the same state as at the file's start). A part
    ends where the next begins, so each row is in exactly one; none for a file of a header
    alone. A split is made only where the lines before it end in \\n (a carriage return that
    ends a line by itself would number the lines after it apart from TextLines). A file whose
    quoting is broken may be split inside a field: the part before such a split then ends in
    an open quote, a problem its reader reports."""
    size = path.stat().st_size
    starts: list[tuple[int, int]] = []  # (first byte, number of its line) of each part
    quotes = lines = 0  # in the bytes read and counted so far
    with path.open("rb") as handle:
        offset, carriage = 0, False  # (the bytes before `data`; whether they end in \r)
        while len(starts) < parts and (data := handle.read(block)):
            if carriage and not data.startswith(b"\n"):
                return _parts(starts[:1], size)  # a line ended by \r alone: no split after
            counted = 0
            while len(starts) < parts:
                wanted = 0  # the header's end: the first line end outside quotes
                if starts:
                    wanted = starts[0][0] + len(starts) * (size - starts[0][0]) // parts - 1
                end = data.find(b"\n", max(counted, wanted - offset))
                if end < 0:
                    end = len(data)
                bare = data.count(b"\r", counted, end) - data.count(b"\r\n", counted, end + 1)
                if end == len(data) and data.endswith(b"\r"):
                    bare -= 1  # (the next block may begin with its \n)
                if bare:
                    return _parts(starts[:1], size)  # a line ended by \r alone: no split after
                quotes += data.count(b'"', counted, end)
                lines += data.count(b"\n", counted, end)
                if end == len(data):
                    break
                lines += 1
                counted = end + 1
                if quotes % 2 == 0 and offset + counted < size:
                    starts.append((offset + counted, lines + 1))
            carriage = data.endswith(b"\r")
            offset += len(data)
    return _parts(starts, size)


def _parts(starts: list[tuple[int, int]], size: int) -> list[Part]:
    ends = [start for start, _ in starts[1:]] + [size] if starts else []
    return [(start, end, line) for (start, line), end in zip(starts, ends, strict=True)]
