"""Customer search reads a trigram index instead of every customer, where pg_trgm is.

`customers(search:)` matches a customer whose email equals the text (case-insensitive) or
whose name or external id contains it (app.customers.search_conditions): at a million
customers every search read the whole table (about 1 s). Where the server offers the
`pg_trgm` extension (PostgreSQL's contrib, in most packages; not in the embedded server), a
GIN trigram index of the name, the external id and the lowercased email now answers all
three (`=` from pg_trgm 1.6, PostgreSQL 14), so a search costs about its matches. Without
pg_trgm a search stays exact and reads the table as before: the index is made only where
the extension is installed or this role may create it (a refusal is not an error).

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEARCH_INDEX = (
    "CREATE INDEX IF NOT EXISTS customer_search_trgm_idx ON customer"
    " USING gin (name gin_trgm_ops, external_id gin_trgm_ops, lower(email) gin_trgm_ops)"
)


def _trigrams(bind: sa.Connection) -> bool:
    """Whether pg_trgm is installed in the database, creating it where the server has it and
    this role may (in a savepoint: a refusal leaves the migration's transaction usable)."""
    available = bind.scalar(
        sa.text("SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'pg_trgm')")
    )
    if not available:
        return False
    try:
        with bind.begin_nested():
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except sa.exc.DBAPIError:
        return False
    return True


def upgrade() -> None:
    if _trigrams(op.get_bind()):
        op.execute(SEARCH_INDEX)


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS customer_search_trgm_idx")
