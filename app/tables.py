"""The canonical tables, as SQLAlchemy Core metadata.

Alembic migrations in `migrations/` create them; this module only describes them for queries.
A test checks that the migrated database and this metadata agree.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = sa.MetaData()

customer = sa.Table(
    "customer",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("external_id", sa.Text, nullable=False),
    sa.Column("name", sa.Text),
    sa.Column("email", sa.Text),
    sa.Column("country", sa.Text),
    sa.Column("customer_since", sa.Date),  # day of its first `new` movement (derived)
    # Derived by the recompute: the MRR (own currency) that holds on every day of
    # [current_mrr_since, current_mrr_until) (NULL: unbounded), the period around the day of
    # the recompute; customers sorted by MRR read it through customer_current_mrr_idx.
    sa.Column("current_mrr", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("current_mrr_since", sa.Date),
    sa.Column("current_mrr_until", sa.Date),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.UniqueConstraint("source", "external_id", name="customer_source_external_id_key"),
    sa.Index("customer_current_mrr_idx", sa.text("(-current_mrr)"), "id"),
    sa.Index(
        "customer_current_mrr_until_idx",
        "current_mrr_until",
        postgresql_where=sa.text("current_mrr_until IS NOT NULL"),
    ),
    sa.Index(
        "customer_current_mrr_since_idx",
        "current_mrr_since",
        postgresql_where=sa.text("current_mrr_since IS NOT NULL"),
    ),
)

plan = sa.Table(
    "plan",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("external_id", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.UniqueConstraint("source", "external_id", name="plan_source_external_id_key"),
)

subscription = sa.Table(
    "subscription",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("external_id", sa.Text, nullable=False),
    sa.Column("customer_id", sa.BigInteger, sa.ForeignKey("customer.id"), nullable=False),
    sa.UniqueConstraint("source", "external_id", name="subscription_source_external_id_key"),
    sa.Index("subscription_customer_id_idx", "customer_id"),
)

# One row per state of a subscription: valid on [valid_from, valid_to) (valid_to NULL = open).
subscription_version = sa.Table(
    "subscription_version",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("subscription_id", sa.BigInteger, nullable=False),  # subscription.id
    sa.Column("valid_from", sa.Date, nullable=False),
    sa.Column("valid_to", sa.Date),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("plan_id", sa.BigInteger),  # plan.id; no FK: set only by the loader's joins
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("amount", sa.Numeric, nullable=False),  # per unit per billing period, major units
    sa.Column("billing_interval", sa.Text, nullable=False),  # day | week | month | year
    sa.Column("interval_count", sa.Integer, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("mrr", sa.BigInteger, nullable=False),  # cents in `currency`, METRICS.md 2
    sa.Column("trial_start", sa.Date),
    sa.Column("trial_end", sa.Date),
    sa.Column("pricing_model", sa.Text, nullable=False),  # flat | per_unit | tiered
    sa.UniqueConstraint("subscription_id", "valid_from", name="subscription_version_start_key"),
    sa.CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="version_period_check"),
    sa.CheckConstraint("mrr >= 0", name="version_mrr_check"),
    sa.Index(
        "subscription_version_trialing_idx",
        "subscription_id",
        postgresql_where=sa.text("status = 'trialing'"),
    ),
)

# The MRR ledger: +mrr on the first day a contributing version counts, -mrr on the day it stops.
mrr_change = sa.Table(
    "mrr_change",
    metadata,
    sa.Column("customer_id", sa.BigInteger, nullable=False),
    sa.Column("subscription_id", sa.BigInteger, nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("delta", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("plan_id", sa.BigInteger),
    sa.Column("plan_interval", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("pricing_model", sa.Text, nullable=False),
    sa.Index("mrr_change_customer_day_idx", "customer_id", "day"),
)

# Customer movements of the unfiltered total, derived from the ledger (METRICS.md 3).
movement = sa.Table(
    "movement",
    metadata,
    sa.Column("customer_id", sa.BigInteger, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("before", sa.BigInteger, nullable=False),
    sa.Column("after", sa.BigInteger, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),  # amounts are in the customer's currency
    sa.Column("prev_day", sa.Date),  # the customer's previous and next movement days
    sa.Column("next_day", sa.Date),
    sa.Index("movement_day_idx", "day"),
)

# Movements inside the scope of one value of a subscription-level dimension (METRICS.md 3,
# filtered views), kept for the dimension most broken down by (plan).
# Derived and rewritten per customer, so unique by construction: no key to maintain.
movement_scope = sa.Table(
    "movement_scope",
    metadata,
    sa.Column("dimension", sa.Text, nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("customer_id", sa.BigInteger, nullable=False),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("before", sa.BigInteger, nullable=False),
    sa.Column("after", sa.BigInteger, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("prev_day", sa.Date),
    sa.Column("next_day", sa.Date),
    sa.Index("movement_scope_customer_idx", "customer_id"),
)

# Currencies the ledger has ever held (so queries skip FX work when all are the report's).
ledger_currency = sa.Table(
    "ledger_currency",
    metadata,
    sa.Column("currency", sa.Text, primary_key=True),
    sa.Column("first_day", sa.Date, nullable=False),
)

# Value of one unit of `currency` in the base currency on `day` (ECB reference or user-loaded).
fx_rate = sa.Table(
    "fx_rate",
    metadata,
    sa.Column("currency", sa.Text, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("rate", sa.Numeric, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.CheckConstraint("rate > 0", name="fx_rate_positive_check"),
)

import_run = sa.Table(
    "import_run",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("filename", sa.Text, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("row_count", sa.Integer, nullable=False),
    sa.Column("changed_customers", sa.Integer, nullable=False),
    sa.Column(
        "finished_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

# A chunked import in progress (app/ingest/chunked.py): where it is, so a run resumes.
import_job = sa.Table(
    "import_job",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("filename", sa.Text, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),  # staging | applying | finishing | done | failed
    sa.Column("row_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("chunks", sa.Integer, nullable=False, server_default="0"),
    sa.Column("done_chunks", sa.Integer, nullable=False, server_default="0"),
    sa.Column("changed_subscriptions", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("changed_customers", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column(
        "started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.CheckConstraint(
        "state IN ('staging', 'applying', 'finishing', 'done', 'failed')",
        name="import_job_state_check",
    ),
)

# What result caches are keyed by (app/datacache.py): every transaction that writes a table a
# query may read sets the slot of its backend (pid % 64) to a new number from
# data_version_seq, once (statement triggers, migration 0014); (sum, max) of the slots changes
# with every such commit, and concurrent writers of different slots never wait for each other.
data_version = sa.Table(
    "data_version",
    metadata,
    sa.Column("slot", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger, nullable=False),
)

raw_event = sa.Table(
    "raw_event",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("payload", JSONB, nullable=False),
    sa.Column(
        "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("processed_at", sa.DateTime(timezone=True)),
    sa.Column("error", sa.Text),
    sa.UniqueConstraint("source", "event_id", name="raw_event_source_event_id_key"),
)

# Customer attributes: a definition per key, one typed value per (customer, key).
attribute = sa.Table(
    "attribute",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("type", sa.Text, nullable=False),  # string | number | boolean | date
    sa.Column("source", sa.Text, nullable=False),  # stripe | csv | api | computed
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.CheckConstraint(
        "type IN ('string', 'number', 'boolean', 'date')", name="attribute_type_check"
    ),
)

customer_attribute = sa.Table(
    "customer_attribute",
    metadata,
    sa.Column(
        "customer_id",
        sa.BigInteger,
        sa.ForeignKey("customer.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("key", sa.Text, sa.ForeignKey("attribute.key", ondelete="CASCADE"), primary_key=True),
    sa.Column("string_value", sa.Text),
    sa.Column("number_value", sa.Numeric),
    sa.Column("boolean_value", sa.Boolean),
    sa.Column("date_value", sa.Date),
    sa.Index("customer_attribute_string_value_idx", "key", "string_value"),
    sa.Index("customer_attribute_number_value_idx", "key", "number_value"),
    sa.Index("customer_attribute_boolean_value_idx", "key", "boolean_value"),
    sa.Index("customer_attribute_date_value_idx", "key", "date_value"),
)

# Saved segments: a named boolean tree of conditions (see app/segments.py).
segment = sa.Table(
    "segment",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("name", sa.Text, nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("definition", JSONB, nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)

# API keys: only the SHA-256 of a key is stored; `scopes` are app.security.keys.Scope values.
api_key = sa.Table(
    "api_key",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("key_hash", sa.Text, nullable=False),
    sa.Column("scopes", ARRAY(sa.Text), nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("name", name="api_key_name_key"),
    sa.UniqueConstraint("key_hash", name="api_key_key_hash_key"),
)

# Documents registered by clients through automatic persisted queries, by their sha256.
persisted_query = sa.Table(
    "persisted_query",
    metadata,
    sa.Column("sha256", sa.Text, primary_key=True),
    sa.Column("document", sa.Text, nullable=False),
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
)
