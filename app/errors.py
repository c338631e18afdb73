"""Errors a user can act on, kept apart from internal ones (which are masked at the edge)."""

from __future__ import annotations

from collections.abc import Iterable


class UserError(Exception):
    """Something the caller asked for is wrong; the message says what and what is accepted."""

    code = "BAD_USER_INPUT"

    def __init__(self, message: str, problems: Iterable[str] = ()) -> None:
        self.problems = tuple(problems)
        super().__init__(message)


class NotFound(UserError):
    code = "NOT_FOUND"


class InvalidQuery(UserError):
    """A query spec failed validation; `problems` lists every issue found."""

    def __init__(self, problems: Iterable[str]) -> None:
        listed = tuple(problems)
        super().__init__("; ".join(listed), listed)


MAX_REPORTED = 20  # bad lines listed by a failed import; the others are counted


class ImportFailed(UserError):
    """An import stopped; nothing of the file was committed. `lines` are the first bad lines
    (line, reason) and `more` counts the bad lines not listed."""

    def __init__(self, filename: str, problems: Iterable[tuple[int, str]], more: int = 0) -> None:
        self.filename = filename
        self.lines = tuple(problems)
        self.more = more
        described = [f"{filename}, line {line}: {reason}" for line, reason in self.lines]
        if more:
            described.append(f"... and {more} more bad line{'s' if more > 1 else ''}")
        super().__init__("import failed, nothing was saved: " + "; ".join(described), described)


class BadLines:
    """The bad lines of a file as they are found: the first MAX_REPORTED kept, the others
    counted, so a file of a million bad lines costs no memory."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.kept: list[tuple[int, str]] = []
        self.more = 0

    def add(self, line: int, reason: str) -> None:
        if len(self.kept) < MAX_REPORTED:
            self.kept.append((line, reason))
        else:
            self.more += 1

    def __bool__(self) -> bool:
        return bool(self.kept)

    def error(self) -> ImportFailed:
        return ImportFailed(self.filename, self.kept, self.more)

    def check(self) -> None:
        """Raise the import error when any line was bad."""
        if self.kept:
            raise self.error()
