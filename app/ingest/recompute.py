"""Derive a customer's ledger and movements from its subscription history (idempotent).

Recomputing a customer from scratch always yields the same rows, so a backdated or corrected
import just recomputes the customers it touched.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from app.movements import CONTRIBUTING_STATUSES, movements_from_changes
from app.tables import movement, mrr_change, subscription, subscription_version

TOUCHED = sa.table("touched_customer", sa.column("customer_id", sa.BigInteger))


def _plan_interval(version: sa.Table) -> sa.ColumnElement[str]:
    """Billing frequency label: `month`, `year`, or e.g. `3 month` for every three months."""
    return sa.case(
        (version.c.interval_count == 1, version.c.billing_interval),
        else_=sa.cast(version.c.interval_count, sa.Text) + " " + version.c.billing_interval,
    )


def _ledger_side(day: sa.ColumnElement[object], sign: int) -> sa.Select[tuple[object, ...]]:
    version = subscription_version
    return (
        sa.select(
            subscription.c.customer_id,
            version.c.subscription_id,
            day.label("day"),
            (version.c.mrr * sign).label("delta"),
            version.c.currency,
            version.c.plan_id,
            _plan_interval(version).label("plan_interval"),
        )
        .join(subscription, subscription.c.id == version.c.subscription_id)
        .where(
            subscription.c.customer_id.in_(sa.select(TOUCHED.c.customer_id)),
            version.c.status.in_(CONTRIBUTING_STATUSES),
            version.c.mrr > 0,
            day.is_not(None),
        )
    )


async def create_touched_table(connection: AsyncConnection) -> None:
    await connection.execute(
        sa.text(
            "CREATE TEMP TABLE IF NOT EXISTS touched_customer (customer_id bigint PRIMARY KEY)"
            " ON COMMIT DROP"
        )
    )


async def recompute_touched(connection: AsyncConnection) -> None:
    """Rebuild `mrr_change` and `movement` for every customer in the temp `touched_customer`."""
    touched = sa.select(TOUCHED.c.customer_id)
    await connection.execute(sa.delete(mrr_change).where(mrr_change.c.customer_id.in_(touched)))
    ledger = sa.union_all(
        _ledger_side(subscription_version.c.valid_from, 1),
        _ledger_side(subscription_version.c.valid_to, -1),
    )
    columns = [
        "customer_id",
        "subscription_id",
        "day",
        "delta",
        "currency",
        "plan_id",
        "plan_interval",
    ]
    await connection.execute(sa.insert(mrr_change).from_select(columns, ledger))
    await connection.execute(sa.delete(movement).where(movement.c.customer_id.in_(touched)))
    changes = sa.select(mrr_change).where(mrr_change.c.customer_id.in_(touched)).subquery()
    derived = movements_from_changes(changes)
    await connection.execute(
        sa.insert(movement).from_select(
            ["customer_id", "day", "kind", "before", "after", "amount"], derived
        )
    )
