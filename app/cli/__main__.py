"""`python -m app.cli` runs the `tidemill` command."""

from app.cli import main

if __name__ == "__main__":  # (not when a child process imports it: app.ingest.staging)
    main()
