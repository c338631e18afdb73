"""Stripe: translate Stripe objects (events, list pages) into canonical rows.

Nothing here touches the database: the inbox, the worker, the ordering and the recompute are
`app.ingest`'s. Both payload shapes are read: before 2025 (`discount`, `plan`, top-level
`current_period_*`) and from 2025 (`discounts[]`, `Discount.source.coupon`, periods on items).
"""
