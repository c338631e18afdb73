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


class ImportFailed(UserError):
    """An import stopped; nothing of the file was committed."""

    def __init__(self, filename: str, problems: Iterable[tuple[int, str]]) -> None:
        self.filename = filename
        self.lines = tuple(problems)
        described = [f"{filename}, line {line}: {reason}" for line, reason in self.lines]
        super().__init__("import failed, nothing was saved: " + "; ".join(described), described)
