"""The canonical tables, as SQLAlchemy Core metadata.

Alembic migrations in `migrations/` create them; this module only describes them for queries.
A test checks that the migrated database and this metadata agree.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

metadata = sa.MetaData()

# Event ids (and the source naming them) compare byte by byte, i.e. by code point, whatever
# the database's collation: they break ties of equal timestamps (LATEST, a source object's
# latest state), which must not depend on the installation's locale (migration 0025).
BYTES = sa.Text(collation="C")

# The customers page's key for a customer never active, sorted after every day (SQL, so that
# the statement and the index say the same expression: app.customers.sort_key)
NO_SINCE = "'9999-12-31'::date"

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
    # the customers page sorted by name (app.customers.sort_key), in order
    sa.Index("customer_name_sort_idx", sa.text("coalesce(name, external_id)"), "id"),
    # ... and by the day it became a customer, the never-active last (app.customers.sort_key)
    sa.Index("customer_since_sort_idx", sa.text(f"coalesce(customer_since, {NO_SINCE})"), "id"),
)

# A search (app.customers.search_conditions: the email exactly, the name or external id as a
# substring) from a trigram index, where the server offers pg_trgm (migration 0028; not in
# `metadata`: the embedded server has no pg_trgm, so the index exists only where the extension
# does; without it a search reads every customer). A first import builds it once at the end.
CUSTOMER_SEARCH_INDEX = "customer_search_trgm_idx"
CUSTOMER_SEARCH_DDL = (
    f"CREATE INDEX IF NOT EXISTS {CUSTOMER_SEARCH_INDEX} ON customer"
    " USING gin (name gin_trgm_ops, external_id gin_trgm_ops, lower(email) gin_trgm_ops)"
)

plan = sa.Table(
    "plan",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("external_id", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("product", sa.Text),  # the product it prices, when the source has products
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
    sa.Column("collection_method", sa.Text),  # charge_automatically | send_invoice
    sa.UniqueConstraint("subscription_id", "valid_from", name="subscription_version_start_key"),
    sa.CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="version_period_check"),
    sa.CheckConstraint("mrr >= 0", name="version_mrr_check"),
    sa.Index(
        "subscription_version_trialing_idx",
        "subscription_id",
        postgresql_where=sa.text("status = 'trialing'"),
    ),
    # the data's first and last day from the ends of an index each (app.metrics.coverage)
    sa.Index("subscription_version_valid_from_idx", "valid_from"),
    sa.Index("subscription_version_last_change_idx", sa.text("greatest(valid_from, valid_to)")),
)

# One row per trial (METRICS.md 6): what app.metrics.trials.trial_facts derives from a trial
# subscription's versions, kept by the recompute for the customers it touches, so that the
# trials' series and funnel read one row per trial instead of aggregating every version.
trial = sa.Table(
    "trial",
    metadata,
    sa.Column("subscription_id", sa.BigInteger, primary_key=True),  # subscription.id
    sa.Column("customer_id", sa.BigInteger, nullable=False),
    sa.Column("plan_id", sa.BigInteger),  # the subscription's first version's
    sa.Column("currency", sa.Text),
    sa.Column("plan_interval", sa.Text),
    sa.Column("started", sa.Date, nullable=False),
    sa.Column("converted", sa.Date),
    sa.Column("expired", sa.Date),
    sa.Index("trial_customer_idx", "customer_id"),
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
    sa.Column("collection_method", sa.Text),
    sa.Index("mrr_change_customer_day_idx", "customer_id", "day"),
    sa.Index("mrr_change_day_idx", "day"),  # the customers who changed in a cut period
)

# What a cut period reads of its movements by day (app/metrics/rollup.py, `_cut_facts`)
CUT_READS = ["customer_id", "kind", "before", "after", "prev_day", "next_day"]

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
    # the calendar periods it is the customer's only movement in (app.movements.ALONE_BITS)
    sa.Column("alone", sa.SmallInteger, nullable=False),
    # a cut period's movements, read from the index alone (migration 0024)
    sa.Index("movement_day_idx", "day", postgresql_include=CUT_READS),
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
    sa.Column("alone", sa.SmallInteger, nullable=False),  # as movement.alone, in the value
    sa.Index("movement_scope_customer_idx", "customer_id"),
    sa.Index(  # a cut period's movements, read from the index alone (migration 0024)
        "movement_scope_dimension_day_idx",
        "dimension",
        "day",
        postgresql_include=["value", *CUT_READS],
    ),
)

# Exact per-period aggregates of the movements, kept by the recompute (docs/architecture.md,
# "Query plans"): one row per (interval, dimension, value, calendar period k) with movements.
# `dimension` '' (value '') is the total; the others are plan, currency and plan_interval.
# Every column is a sum over customers of a per-(customer, period) fact, so a recompute
# subtracts a customer's old contribution and adds its new one; `members` counts the
# customers with a movement in the period (a row whose count drops to 0 is deleted).
ROLLUP_MONEY = ("new", "expansion", "contraction", "churn", "reactivation", "net")
ROLLUP_COUNTS = (
    "customers_net",
    "new_customers",
    "expansion_customers",
    "contraction_customers",
    "churn_customers",
    "reactivation_customers",
    "churned_customers",
)
ROLLUP_DELTAS = ("retained_delta", "gross_retained_delta")
rollup = sa.Table(
    "rollup",
    metadata,
    sa.Column("interval", sa.Text, primary_key=True),
    sa.Column("dimension", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, primary_key=True),
    sa.Column("k", sa.Date, primary_key=True),
    *(sa.Column(name, sa.Numeric, nullable=False) for name in ROLLUP_MONEY),
    *(sa.Column(name, sa.BigInteger, nullable=False) for name in ROLLUP_COUNTS),
    *(sa.Column(name, sa.Numeric, nullable=False) for name in ROLLUP_DELTAS),
    sa.Column("members", sa.BigInteger, nullable=False),
)

# The retention matrix's sums per (cohort month, month of the movements), kept like `rollup`:
# sums over the cohort's members of their movement amounts, active-customer changes and
# amount x day number (days since 1900-01-01: realized LTV up to any month end follows), the
# members who joined (their `new`), and how many movements are summed (0: the row goes).
cohort_rollup = sa.Table(
    "cohort_rollup",
    metadata,
    sa.Column("cohort", sa.Date, primary_key=True),
    sa.Column("month", sa.Date, primary_key=True),
    sa.Column("mrr_change", sa.Numeric, nullable=False),
    sa.Column("active_change", sa.BigInteger, nullable=False),
    sa.Column("amount_days", sa.Numeric, nullable=False),
    sa.Column("joined", sa.BigInteger, nullable=False),
    sa.Column("movements", sa.BigInteger, nullable=False),
)

# A row here means the rollups are behind the movements (a database migrated with data):
# queries scan movements until the next import rebuilds them. Empty = up to date.
rollup_rebuild = sa.Table(
    "rollup_rebuild",
    metadata,
    sa.Column("id", sa.SmallInteger, primary_key=True),
    sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
)

# The subscription-level dimensions kept in the rollups besides plan, currency and
# plan_interval (`tidemill rollups add`): app.metrics.rollup.OPTIONAL names those allowed.
rollup_dimension = sa.Table(
    "rollup_dimension",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("added_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# An unfinished `tidemill rollups add` (migration 0032): the dimensions it builds, the first
# customer id it has not read yet, and the data version when it committed its last slice
# (one row at most); and each committed slice's contribution to their rollup rows, summed into
# `rollup` when every customer is in. No query reads them (no data version trigger).
rollup_build = sa.Table(
    "rollup_build",
    metadata,
    sa.Column("id", sa.SmallInteger, primary_key=True, server_default="1"),
    sa.Column("dimensions", ARRAY(sa.Text), nullable=False),
    sa.Column("next_customer", sa.BigInteger, nullable=False),
    sa.Column("data_version", sa.BigInteger, nullable=False),
    sa.Column(
        "started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.CheckConstraint("id = 1", name="rollup_build_one_row"),
)
rollup_build_part = sa.Table(
    "rollup_build_part",
    metadata,
    *(sa.Column(name, sa.Text, nullable=False) for name in ("interval", "dimension", "value")),
    sa.Column("k", sa.Date, nullable=False),
    *(
        sa.Column(name, sa.Numeric, nullable=False)
        for name in (*ROLLUP_MONEY, *ROLLUP_COUNTS, *ROLLUP_DELTAS, "members")
    ),
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

# The items of a subscription version (a version without items is one item: its own plan
# and quantity). Their `mrr` add up to the version's; the ledger has one row per item.
subscription_item = sa.Table(
    "subscription_item",
    metadata,
    sa.Column("subscription_id", sa.BigInteger, primary_key=True),
    sa.Column("valid_from", sa.Date, primary_key=True),  # the version's
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("plan_id", sa.BigInteger),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("mrr", sa.BigInteger, nullable=False),  # its share of the version's MRR, cents
    sa.Column("billing_interval", sa.Text, nullable=False),
    sa.Column("interval_count", sa.Integer, nullable=False),
    sa.Column("pricing_model", sa.Text, nullable=False),
    sa.Column("usage_type", sa.Text, nullable=False),  # licensed | metered
    sa.CheckConstraint("mrr >= 0", name="subscription_item_mrr_check"),
)

# A connected billing system. `secrets` is a Fernet token of a JSON object (app.ingest.secrets);
# `secret_hints` holds the last 4 characters of each, the only part ever shown.
source = sa.Table(
    "source",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("secrets", sa.LargeBinary, nullable=False),
    sa.Column("secret_hints", JSONB, nullable=False, server_default="{}"),
    sa.Column("settings", JSONB, nullable=False, server_default="{}"),
    sa.Column("cursor", JSONB, nullable=False, server_default="{}"),  # a pull sync's position
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.UniqueConstraint("name", name="source_name_key"),
    sa.CheckConstraint("kind IN ('csv', 'stripe', 'lago', 'killbill')", name="source_kind_check"),
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

# The number of customers, kept by statement triggers on `customer` (migration 0021): rows
# inserted are added and rows deleted subtracted in the writing backend's slot (pid % 64, so
# concurrent writers never wait for each other), a TRUNCATE empties it; the count is the sum.
customer_tally = sa.Table(
    "customer_tally",
    metadata,
    sa.Column("slot", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("customers", sa.BigInteger, nullable=False),
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

# The durable inbox: every event a source delivered, unique per source and event id.
raw_event = sa.Table(
    "raw_event",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column(
        "source_id", sa.BigInteger, sa.ForeignKey("source.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("event_id", BYTES, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("api_version", sa.Text),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("payload", JSONB, nullable=False),
    # received | pending (queued again by a replay) | processed | failed | ignored
    sa.Column("status", sa.Text, nullable=False, server_default="received"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.Column(
        "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("processed_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("source_id", "event_id", name="raw_event_source_event_id_key"),
    sa.CheckConstraint(
        "status IN ('received', 'pending', 'processed', 'failed', 'ignored')",
        name="raw_event_status_check",
    ),
    sa.Index(
        "raw_event_waiting_idx",
        "occurred_at",
        "id",
        postgresql_where=sa.text("status IN ('received', 'pending', 'failed')"),
    ),
)

# Every state of a source's objects, as observed at an event's time: a subscription's history
# is rebuilt from all of its states, other objects are read at their latest.
source_object = sa.Table(
    "source_object",
    metadata,
    sa.Column(
        "source_id",
        sa.BigInteger,
        sa.ForeignKey("source.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("object_id", sa.Text, primary_key=True),
    sa.Column("observed_at", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("event_id", BYTES, primary_key=True),
    sa.Column("object_type", sa.Text, nullable=False),
    sa.Column("customer_ref", sa.Text),  # the source's id of the customer it belongs to
    sa.Column("refs", ARRAY(sa.Text), nullable=False, server_default="{}"),  # objects it reads
    sa.Column("payload", JSONB, nullable=False),
    sa.Index("source_object_customer_idx", "source_id", "customer_ref"),
    sa.Index("source_object_refs_idx", "refs", postgresql_using="gin"),
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
    # The holders of a value (an attribute filter, a segment's condition) read from the index
    # alone (migration 0037, which also gives the planner statistics on each pair).
    sa.Index(
        "customer_attribute_string_value_idx",
        "key",
        "string_value",
        postgresql_include=["customer_id"],
    ),
    sa.Index(
        "customer_attribute_number_value_idx",
        "key",
        "number_value",
        postgresql_include=["customer_id"],
    ),
    sa.Index(
        "customer_attribute_boolean_value_idx",
        "key",
        "boolean_value",
        postgresql_include=["customer_id"],
    ),
    sa.Index(
        "customer_attribute_date_value_idx", "key", "date_value", postgresql_include=["customer_id"]
    ),
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

# Usage events (METRICS.md 9), partitioned by month of `ts` (UTC); the partitions are made on
# demand in schema `usage_partitions` (app/usage/partitions.py).
usage_event = sa.Table(
    "usage_event",
    metadata,
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("event_id", BYTES, nullable=False),
    sa.Column("customer_id", sa.BigInteger, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("properties", JSONB, nullable=False),
    sa.Column("product", sa.Text),
    sa.Column(
        "received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    # one customer's events by name and time; a read over every customer scans the months'
    # partitions (pruned by `ts`), so no index by name alone is maintained on each insert
    sa.Index("usage_event_customer_idx", "customer_id", "name", "ts"),
    postgresql_partition_by="RANGE (ts)",
)

# An event id is unique per source: the key a partitioned table cannot hold (its unique keys
# must include the partition key).
usage_event_key = sa.Table(
    "usage_event_key",
    metadata,
    sa.Column("source", BYTES, primary_key=True),
    sa.Column("event_id", BYTES, primary_key=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
)

# Usage metric definitions; deletion is soft (`deleted_at`).
usage_metric = sa.Table(
    "usage_metric",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("event_name", sa.Text),  # NULL for COMPOSITE
    sa.Column("aggregation", sa.Text),  # NULL for COMPOSITE
    sa.Column("property", sa.Text),
    sa.Column("value_type", sa.Text, nullable=False),
    sa.Column("filters", JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
    sa.Column("query_type", sa.Text, nullable=False),
    sa.Column("expression", sa.Text),  # COMPOSITE: arithmetic over other metrics' names
    sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("deleted_at", sa.DateTime(timezone=True)),
    # INDEXED: the build of its rollup under way (app/usage/builds.py); NULL: the rollup is whole
    sa.Column("rollup_build", sa.BigInteger),
    sa.CheckConstraint(
        "query_type IN ('SIMPLE', 'INDEXED', 'COMPOSITE')", name="usage_metric_query_type_check"
    ),
)

# The rollups of usage metrics hold no foreign key to usage_metric (migration 0016): its check
# cost one lookup per rollup row written, on the ingest path, and a metric is never removed
# (deletion is soft; its rollup rows are dropped by the code that drops them, app/usage).

# INDEXED metrics: per (metric, customer, UTC day) what every aggregation is served from:
# count and sum (COUNT, SUM, AVG = sum / count), min, max, and the latest value with its
# timestamp and event id (LATEST). Late events add to their day.
usage_rollup = sa.Table(
    "usage_rollup",
    metadata,
    sa.Column("metric_id", sa.BigInteger, primary_key=True),  # no foreign key (above)
    sa.Column("customer_id", sa.BigInteger, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("sum", sa.Numeric),
    sa.Column("min", sa.Numeric),
    sa.Column("max", sa.Numeric),
    sa.Column("latest_at", sa.DateTime(timezone=True)),
    sa.Column("latest_id", BYTES),
    sa.Column("latest_value", sa.Numeric),
    sa.Index("usage_rollup_day_idx", "metric_id", "day"),
)

# The same per (metric, UTC day) over every customer: what a series with no dimension, filter
# or segment reads (O(days), not O(customers x days)). Not for UNIQUE_COUNT.
usage_rollup_day = sa.Table(
    "usage_rollup_day",
    metadata,
    sa.Column("metric_id", sa.BigInteger, primary_key=True),  # no foreign key (above)
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("sum", sa.Numeric),
    sa.Column("min", sa.Numeric),
    sa.Column("max", sa.Numeric),
    sa.Column("latest_at", sa.DateTime(timezone=True)),
    sa.Column("latest_id", BYTES),
    sa.Column("latest_value", sa.Numeric),
)

# UNIQUE_COUNT of an INDEXED metric: the distinct values of each (customer, day); a range's
# count is count(DISTINCT value) over its days (distinct counts do not add up).
usage_rollup_value = sa.Table(
    "usage_rollup_value",
    metadata,
    sa.Column("metric_id", sa.BigInteger, primary_key=True),  # no foreign key (above)
    sa.Column("customer_id", sa.BigInteger, primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("value", sa.Text, primary_key=True),
    sa.Index("usage_rollup_value_day_idx", "metric_id", "day"),
)

# `tidemill import events FILE`: how far a file (by its sha256) is committed, to resume.
usage_import = sa.Table(
    "usage_import",
    metadata,
    sa.Column("sha256", sa.Text, primary_key=True),
    sa.Column("filename", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("committed_bytes", sa.BigInteger, nullable=False),
    sa.Column("lines", sa.BigInteger, nullable=False),
    sa.Column("accepted", sa.BigInteger, nullable=False),
    sa.Column("duplicates", sa.BigInteger, nullable=False),
    sa.Column("rejected", sa.BigInteger, nullable=False),
    sa.Column(
        "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    ),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
)
