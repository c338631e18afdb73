"""Progress display for long jobs (imports, demo load): rich bars fed by byte or row counts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TextIO

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)


class CountingLines:
    """Iterate a text file's lines while counting the characters consumed (for a progress bar;
    close enough to bytes for the mostly-ASCII files it reads)."""

    def __init__(self, handle: TextIO) -> None:
        self.handle = handle
        self.consumed = 0

    def __iter__(self) -> Iterator[str]:
        for line in self.handle:
            self.consumed += len(line)
            yield line


def file_progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )


def count_progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
