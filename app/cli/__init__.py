"""The `tidemill` command line: server-side admin commands and GraphQL client commands."""

from app.cli.commands import cli, main

__all__ = ["cli", "main"]
