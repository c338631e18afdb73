"""A partial index of the trialing subscription versions: a customer page finds which of its
customers are on a trial without scanning every version.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "subscription_version_trialing_idx",
        "subscription_version",
        ["subscription_id"],
        postgresql_where=sa.text("status = 'trialing'"),
    )


def downgrade() -> None:
    op.drop_index("subscription_version_trialing_idx", table_name="subscription_version")
