"""Billing-source connectors: each turns source data into canonical rows (app.ingest.rows)."""
