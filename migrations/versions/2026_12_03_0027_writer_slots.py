"""The data version's and the customer tally's slot may be chosen by the writer.

Both are spread over slots, the writing backend's pid % 64 (migrations 0014 and 0021), so
that concurrent writers do not wait for each other's commit: two backends whose pids share a
slot do wait. That is harmless for writers that commit on their own, but a first import
applies two chunks side by side and commits them in order, the second waiting for the first
to commit while it holds its slot's rows: when the two connections' pids shared a slot, the
first chunk waited for the second's slot row and the second for the first's commit, for ever
(seen once in 64 such imports, as a CI run that hung). A transaction may now name its slot in
`tidemill.slot` (set_config, transaction-local); a chunk applied side by side takes one of its
own past the backends' (app.ingest.chunked), so the two never share one.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLOTS = 64
BY_PID = f"pg_backend_pid() % {SLOTS}"
CHOSEN = f"coalesce(nullif(current_setting('tidemill.slot', true), '')::smallint, {BY_PID})"


def _bump(slot: str) -> str:
    return f"""
CREATE OR REPLACE FUNCTION bump_data_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- once per transaction (the flag is transaction-local, and rolls back with a savepoint),
    -- in the slot of this backend (or the one its transaction chose): concurrent writers do
    -- not wait for each other's commit
    IF current_setting('tidemill.data_version_bumped', true) IS DISTINCT FROM 'on' THEN
        INSERT INTO data_version (slot, version)
        VALUES ({slot}, nextval('data_version_seq'))
        ON CONFLICT (slot) DO UPDATE SET version = EXCLUDED.version;
        PERFORM set_config('tidemill.data_version_bumped', 'on', true);
    END IF;
    RETURN NULL;
END
$$
"""


def _tally(name: str, rows: str, sign: str, slot: str) -> str:
    return f"""
CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO customer_tally (slot, customers)
    SELECT {slot}, {sign}count(*) FROM {rows} HAVING count(*) > 0
    ON CONFLICT (slot) DO UPDATE SET customers = customer_tally.customers + EXCLUDED.customers;
    RETURN NULL;
END
$$
"""


def _functions(slot: str) -> None:
    op.execute(_bump(slot))
    op.execute(_tally("customer_tally_added", "added", "", slot))
    op.execute(_tally("customer_tally_removed", "removed", "-", slot))


def upgrade() -> None:
    _functions(CHOSEN)


def downgrade() -> None:
    _functions(BY_PID)
