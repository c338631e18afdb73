"""Usage metrics gain `rollup_build`: an INDEXED metric's rollup being built.

A rollup used to be built inside the definition's transaction, under the definitions' lock
that every event store takes: events were held back for the whole build (15 s for a SUM over
10 million events, 26 s for a LATEST). Now the definition commits at once with a build token
here, the build runs beside the stores, and the token is cleared when the rollup holds every
event (app/usage/builds.py). Until then the metric's values are computed from its events.
Existing metrics' rollups are complete: NULL.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("usage_metric", sa.Column("rollup_build", sa.BigInteger))


def downgrade() -> None:
    op.drop_column("usage_metric", "rollup_build")
