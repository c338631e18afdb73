"""`python -m app.cli` runs the `tidemill` command."""

from app.cli import main

main()
