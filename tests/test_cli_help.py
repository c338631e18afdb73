"""The CLI's own help: what a command's text says reaches the terminal."""

from __future__ import annotations

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
