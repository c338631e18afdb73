"""Ingestion: canonical rows in, derived ledger and movements recomputed."""
