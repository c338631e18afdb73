"""What every `tidemill` command shares: consoles, error exit, common options."""

from __future__ import annotations

import datetime
import inspect
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from typer._click.core import Command, Context  # (Typer's own click)
from typer.core import TyperGroup

from app.cli.output import Format

console = Console()
errors = Console(stderr=True)


class Group(TyperGroup):
    """A command group whose list of commands gives each one's summary (its docstring's first
    paragraph) as one line of text for the terminal to wrap: Typer's rich help keeps the
    docstring's own line breaks there, so a summary broke after a few words at 80 columns."""

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None and command.short_help is None and command.help:
            summary = inspect.cleandoc(command.help).split("\n\n")[0]
            command.short_help = " ".join(summary.split())
        return command


class IntervalChoice(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


DAY_FORMAT = ["%Y-%m-%d"]
FormatOption = Annotated[Format, typer.Option("--format", "-f", help="table, json or csv")]
StartOption = Annotated[
    datetime.datetime | None, typer.Option(formats=DAY_FORMAT, help="First day (YYYY-MM-DD).")
]
EndOption = Annotated[
    datetime.datetime | None, typer.Option(formats=DAY_FORMAT, help="Last day (YYYY-MM-DD).")
]
AtOption = Annotated[
    datetime.datetime | None, typer.Option(formats=DAY_FORMAT, help="The day (YYYY-MM-DD).")
]
IntervalOption = Annotated[IntervalChoice, typer.Option(help="Period length of the series.")]
DimensionOption = Annotated[
    list[str] | None, typer.Option("--dimension", "-d", help="Break down by (repeatable).")
]
FilterOption = Annotated[
    list[str] | None,
    typer.Option(
        "--filter",
        help="key=value, key=v1,v2, key!=value, key>value (>= < <=), key~text (repeatable).",
    ),
]
SegmentOption = Annotated[
    str | None, typer.Option("--segment", help="Saved segment id: count only its customers.")
]
CompareOption = Annotated[
    list[str] | None,
    typer.Option("--compare", help="Saved segment id, one breakdown each (repeatable, <= 10)."),
]


def fail(message: str) -> typer.Exit:
    """Print a user-facing error and return the exit to raise (exit code 1)."""
    errors.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(code=1)
