"""Operations at scale: each customer's current MRR kept by the recompute (customers sorted by
MRR read a page, not every customer), a resumable record of chunked imports, and the data
version that result caches are keyed by (bumped once by every write transaction).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Tables whose content a query result may depend on: a write to any of them bumps the version.
VERSIONED = (
    "customer",
    "plan",
    "subscription",
    "subscription_version",
    "mrr_change",
    "movement",
    "movement_scope",
    "ledger_currency",
    "fx_rate",
    "import_run",
    "attribute",
    "customer_attribute",
    "segment",
    # sources and their inbox (0011), usage events and metrics (0012), the rollups (0013)
    "subscription_item",
    "source",
    "raw_event",
    "source_object",
    "usage_metric",
    "usage_event",
    "usage_event_key",
    "usage_rollup",
    "usage_rollup_day",
    "usage_rollup_value",
    "rollup",
    "cohort_rollup",
    "rollup_rebuild",
)

SLOTS = 64
BUMP = f"""
CREATE FUNCTION bump_data_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- once per transaction (the flag is transaction-local, and rolls back with a savepoint),
    -- in the slot of this backend: concurrent writers do not wait for each other's commit
    IF current_setting('tidemill.data_version_bumped', true) IS DISTINCT FROM 'on' THEN
        INSERT INTO data_version (slot, version)
        VALUES (pg_backend_pid() % {SLOTS}, nextval('data_version_seq'))
        ON CONFLICT (slot) DO UPDATE SET version = EXCLUDED.version;
        PERFORM set_config('tidemill.data_version_bumped', 'on', true);
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.add_column(
        "customer", sa.Column("current_mrr", sa.BigInteger, nullable=False, server_default="0")
    )
    op.add_column("customer", sa.Column("current_mrr_since", sa.Date))
    op.add_column("customer", sa.Column("current_mrr_until", sa.Date))
    # backfill from the movements already derived
    op.execute(
        """
        UPDATE customer c SET current_mrr = coalesce(s.after, 0),
               current_mrr_since = s.day, current_mrr_until = s.until
        FROM (
            SELECT c2.id, l.after, l.day,
                   CASE WHEN l.day IS NULL
                        THEN (SELECT min(m.day) FROM movement m WHERE m.customer_id = c2.id)
                        ELSE l.next_day END AS until
            FROM customer c2 LEFT JOIN LATERAL (
                SELECT m.after, m.day, m.next_day FROM movement m
                WHERE m.customer_id = c2.id AND m.day <= current_date
                ORDER BY m.day DESC LIMIT 1
            ) l ON true
        ) s
        WHERE c.id = s.id
        """
    )
    op.execute("CREATE INDEX customer_current_mrr_idx ON customer ((-current_mrr), id)")
    op.create_index(
        "customer_current_mrr_until_idx",
        "customer",
        ["current_mrr_until"],
        postgresql_where=sa.text("current_mrr_until IS NOT NULL"),
    )
    op.create_index(
        "customer_current_mrr_since_idx",
        "customer",
        ["current_mrr_since"],
        postgresql_where=sa.text("current_mrr_since IS NOT NULL"),
    )
    op.create_table(
        "import_job",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("filename", sa.Text, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
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
    op.create_table(
        "data_version",
        sa.Column("slot", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("version", sa.BigInteger, nullable=False),
    )
    op.execute("CREATE SEQUENCE data_version_seq")
    op.execute(BUMP)
    for table in VERSIONED:
        op.execute(
            f"CREATE TRIGGER {table}_data_version BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE "
            f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version()"
        )
    # a key created or revoked (not the record of its last use): cached key lookups see it
    op.execute(
        "CREATE TRIGGER api_key_data_version BEFORE INSERT OR DELETE OR TRUNCATE "
        "OR UPDATE OF revoked_at, scopes, key_hash ON api_key "
        "FOR EACH STATEMENT EXECUTE FUNCTION bump_data_version()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER api_key_data_version ON api_key")
    for table in VERSIONED:
        op.execute(f"DROP TRIGGER {table}_data_version ON {table}")
    op.execute("DROP FUNCTION bump_data_version()")
    op.drop_table("data_version")
    op.execute("DROP SEQUENCE data_version_seq")
    op.drop_table("import_job")
    op.drop_index("customer_current_mrr_since_idx", "customer")
    op.drop_index("customer_current_mrr_until_idx", "customer")
    op.drop_index("customer_current_mrr_idx", "customer")
    for column in ("current_mrr_until", "current_mrr_since", "current_mrr"):
        op.drop_column("customer", column)
