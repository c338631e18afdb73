"""Usage events and usage metrics (METRICS.md 9): ingest, definitions, values."""
