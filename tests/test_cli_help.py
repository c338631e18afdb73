"""The CLI's own help: what a command's text says reaches the terminal."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import typer

from app.cli import cli

# what rich reads as a markup tag (and removes) in help text: [word], [#hex], [/word], [@...]
MARKUP = re.compile(r"(?<!\\)\[[a-z#/@][^\[\]]*\]")


def commands(group: Any, path: str = "tidemill") -> Iterator[tuple[str, Any]]:
    """Every command under `group` (Typer's own click), by its command line."""
    yield path, group
    for name, command in getattr(group, "commands", {}).items():
        yield from commands(command, f"{path} {name}")


def texts(command: Any) -> Iterator[str]:
    yield command.help or ""
    yield command.short_help or ""
    for parameter in command.params:
        yield getattr(parameter, "help", None) or ""


def test_no_help_text_reads_as_markup() -> None:
    """`[properties]` in a docstring vanished from `tidemill import --help`."""
    found = [
        (path, match)
        for path, command in commands(typer.main.get_command(cli))
        for text in texts(command)
        for match in MARKUP.findall(text)
    ]
    assert found == []


def test_every_command_is_looked_at() -> None:
    paths = {path for path, _ in commands(typer.main.get_command(cli))}
    assert {"tidemill import events", "tidemill usage series", "tidemill mrr"} <= paths


def _descriptions(panel: list[str]) -> dict[str, list[str]]:
    """A commands panel's rows: each command's description as its lines (the description
    column starts where the first row's does)."""
    column = panel[0].index(panel[0].split()[2], len("│ ") + len(panel[0].split()[1]))
    rows: dict[str, list[str]] = {}
    name = ""
    for line in panel:
        cells = line.strip("│").rstrip()
        if cells[: column - 1].strip():
            name = cells[: column - 1].strip()
            rows[name] = []
        rows[name].append(cells[column - 1 :].strip())
    return rows


def test_command_summaries_wrap_to_the_terminal() -> None:
    """`tidemill rollups --help` at 80 columns broke the summary of `add` after a few words,
    where its docstring broke its lines: a summary fills each line before the next."""
    from typer.testing import CliRunner

    width = 80
    broken = []
    for path, command in commands(typer.main.get_command(cli)):
        if not getattr(command, "commands", None):
            continue
        arguments = [*path.split()[1:], "--help"]
        result = CliRunner().invoke(
            cli, arguments, env={"COLUMNS": str(width)}, terminal_width=width
        )
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        top = next(n for n, line in enumerate(lines) if "Commands" in line and "╭" in line)
        panel = lines[top + 1 : next(n for n in range(top, len(lines)) if "╰" in lines[n])]
        assert all(len(line) <= width for line in panel), panel
        for name, text in _descriptions(panel).items():
            room = max(map(len, text))
            for line, after in itertools.pairwise(text):
                if len(line) + 1 + len(after.split()[0]) <= room:
                    broken.append((path, name, line))
    assert broken == []
