"""Derive a customer's ledger and movements from its subscription history (idempotent).

Recomputing a customer from scratch always yields the same rows, so a backdated or corrected
import just recomputes the customers it touched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import ColumnElement, FromClause

from app.ingest.bulk import filled_in_bulk
from app.metrics import rollup, rollup_delta
from app.metrics.cube import Sources
from app.metrics.mrr import MRR_CUBE, NO_VALUE
from app.metrics.trials import keep_trials
from app.movements import CONTRIBUTING_STATUSES, alone_bits, movements_from_changes
from app.tables import (
    customer,
    movement,
    movement_scope,
    mrr_change,
    plan,
    subscription,
    subscription_item,
    subscription_version,
)

TOUCHED = sa.table("touched_customer", sa.column("customer_id", sa.BigInteger))
LEDGER_COLUMNS = [column.name for column in mrr_change.columns]
# the touched customers' rows of `mrr_change`, as the recompute derives them (a temp table)
TOUCHED_CHANGE = sa.table(
    "touched_change", *(sa.column(column.name, column.type) for column in mrr_change.columns)
)


def _plan_interval(
    interval: sa.ColumnElement[str], count: sa.ColumnElement[int]
) -> sa.ColumnElement[str]:
    """Billing frequency label: `month`, `year`, or e.g. `3 month` for every three months."""
    return sa.case((count == 1, interval), else_=sa.cast(count, sa.Text) + " " + interval)


# the periods of a first import's chunk (app.ingest.chunked): `new_version`, as
# app.ingest.subscriptions stages them, and `chunk_subscription`, the chunk's subscriptions (all
# created in the chunk's transaction, so no item of theirs is stored)
NEW_VERSION = sa.table(
    "new_version",
    *(
        sa.column(name, subscription_version.c[name].type)
        for name in (
            "subscription_id",
            "valid_from",
            "valid_to",
            "status",
            "plan_id",
            "mrr",
            "billing_interval",
            "interval_count",
            "currency",
            "pricing_model",
            "trial_start",
            "trial_end",
        )
    ),
)
CHUNK_SUBSCRIPTION = sa.table(
    "chunk_subscription", sa.column("id", sa.BigInteger), sa.column("customer_id", sa.BigInteger)
)


def _ledger_side(day_column: str, sign: int, *, new: bool = False) -> sa.Select[tuple[object, ...]]:
    """One ledger row per item of each contributing version (a version without items is its
    own single item) of the touched customers; `new`: of the periods of a first import's
    chunk (NEW_VERSION, CHUNK_SUBSCRIPTION: each subscription its own single item, the
    collection method unset, as the import stores them)."""
    if new:
        version, owner = NEW_VERSION, CHUNK_SUBSCRIPTION
        day = version.c[day_column]
        return (
            sa.select(
                owner.c.customer_id,
                version.c.subscription_id,
                day.label("day"),
                (version.c.mrr * sign).label("delta"),
                version.c.currency,
                version.c.plan_id,
                _plan_interval(version.c.billing_interval, version.c.interval_count).label(
                    "plan_interval"
                ),
                version.c.status,
                version.c.pricing_model,
                sa.cast(sa.null(), sa.Text).label("collection_method"),
            )
            .join(owner, owner.c.id == version.c.subscription_id)
            .where(
                version.c.status.in_(CONTRIBUTING_STATUSES),
                version.c.mrr > 0,
                day.is_not(None),
            )
        )
    version, item = subscription_version, subscription_item
    day = version.c[day_column]
    mrr = sa.func.coalesce(item.c.mrr, version.c.mrr)
    return (
        sa.select(
            subscription.c.customer_id,
            version.c.subscription_id,
            day.label("day"),
            (mrr * sign).label("delta"),
            version.c.currency,
            sa.func.coalesce(item.c.plan_id, version.c.plan_id).label("plan_id"),
            _plan_interval(
                sa.func.coalesce(item.c.billing_interval, version.c.billing_interval),
                sa.func.coalesce(item.c.interval_count, version.c.interval_count),
            ).label("plan_interval"),
            version.c.status,
            sa.func.coalesce(item.c.pricing_model, version.c.pricing_model).label("pricing_model"),
            version.c.collection_method,
        )
        .join(subscription, subscription.c.id == version.c.subscription_id)
        .outerjoin(
            item,
            sa.and_(
                item.c.subscription_id == version.c.subscription_id,
                item.c.valid_from == version.c.valid_from,
            ),
        )
        .where(
            subscription.c.customer_id.in_(sa.select(TOUCHED.c.customer_id)),
            version.c.status.in_(CONTRIBUTING_STATUSES),
            mrr > 0,
            day.is_not(None),
        )
    )


MOVEMENT_COLUMNS = ["kind", "before", "after", "amount", "prev_day", "next_day"]


def _with_alone(derived: FromClause, columns: list[str]) -> sa.Select[tuple[object, ...]]:
    """`columns` of the derived movements and their `alone` bits, from a calendar of the
    touched ledger's days (each period's bounds computed once per day, not per movement)."""
    # materialized: inlined, its bounds would be computed again for every joined movement
    days = rollup.calendar(TOUCHED_CHANGE).prefix_with("MATERIALIZED")

    def bounds(unit: str) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
        return days.c[f"k_{unit}"], days.c[f"b_{unit}"]

    bits = alone_bits(derived.c.prev_day, derived.c.next_day, bounds)
    return sa.select(*(derived.c[name] for name in columns), bits.label("alone")).join_from(
        derived, days, days.c.day == derived.c.day
    )


async def _recompute_scopes(connection: AsyncConnection, fresh: bool) -> None:
    """Per-value movements of each materialized dimension of the MRR cube (plan, interval)."""
    touched = sa.select(TOUCHED.c.customer_id)
    if not fresh:
        await connection.execute(
            sa.delete(movement_scope).where(movement_scope.c.customer_id.in_(touched))
        )
    ledger = TOUCHED_CHANGE
    sources = Sources(rows=ledger, plan=plan, customer=customer, end=sa.func.current_date())
    for dimension in (d for d in MRR_CUBE.dimensions if d.materialized):
        value = sa.func.coalesce(sa.cast(dimension.expression(sources), sa.Text), NO_VALUE)
        changes = (
            sa.select(
                ledger.c.customer_id,
                ledger.c.day,
                ledger.c.delta,
                ledger.c.currency,
                value.label("value"),
            )
            .outerjoin_from(ledger, plan, plan.c.id == ledger.c.plan_id)
            .subquery("changes")
        )
        derived = movements_from_changes(changes, ["value", "currency"]).subquery("derived")
        stored = ["value", "customer_id", "day", "currency", *MOVEMENT_COLUMNS]
        rows = _with_alone(derived, stored).add_columns(
            sa.literal(dimension.name).label("dimension")
        )
        columns = [*stored, "alone", "dimension"]
        await connection.execute(sa.insert(movement_scope).from_select(columns, rows))


async def create_touched_table(connection: AsyncConnection) -> None:
    await connection.execute(
        sa.text(
            "CREATE TEMP TABLE IF NOT EXISTS touched_customer (customer_id bigint PRIMARY KEY)"
            " ON COMMIT DROP"
        )
    )


DERIVED = ("mrr_change", "movement", "movement_scope")

# A customer's derived facts: the day of its first `new` movement, and its MRR on the day of
# the recompute with the days it holds on: [the day of the last movement so far, the day of
# the next one) (no movement yet: 0 until the first one).
_CUSTOMER_FACTS = """
UPDATE customer c SET customer_since = f.since, current_mrr = coalesce(f.after, 0),
       current_mrr_since = f.day, current_mrr_until = f.until
FROM (
    SELECT t.customer_id,
           (SELECT min(m.day) FROM movement m
            WHERE m.customer_id = t.customer_id AND m.kind = 'new') AS since,
           l.after, l.day,
           CASE WHEN l.day IS NULL
                THEN (SELECT min(m.day) FROM movement m WHERE m.customer_id = t.customer_id)
                ELSE l.next_day END AS until
    FROM touched_customer t LEFT JOIN LATERAL (
        SELECT m.after, m.day, m.next_day FROM movement m
        WHERE m.customer_id = t.customer_id AND m.day <= current_date
        ORDER BY m.day DESC LIMIT 1
    ) l ON true
) f
WHERE c.id = f.customer_id
  AND c.id BETWEEN (SELECT min(customer_id) FROM touched_customer)
               AND (SELECT max(customer_id) FROM touched_customer)
"""


def is_touched(customer_id: sa.ColumnElement[object]) -> sa.ColumnElement[bool]:
    """The condition on `customer_id`: a customer of the temp `touched_customer`."""
    return customer_id.in_(sa.select(TOUCHED.c.customer_id))


# Customers whose stored MRR period has ended (a movement dated after the last recompute came
# due): moved on to the period holding today. Cheap (an index on current_mrr_until), and
# readers stay exact without it (app/customers.py computes those customers the slow way).
_ROLL_FORWARD = """
INSERT INTO touched_customer
SELECT id FROM customer WHERE current_mrr_until <= current_date
ON CONFLICT DO NOTHING
"""


async def roll_forward(connection: AsyncConnection) -> None:
    """Bring every customer's stored current MRR to today (see _ROLL_FORWARD)."""
    await create_touched_table(connection)
    await connection.execute(sa.text("TRUNCATE touched_customer"))
    await connection.execute(sa.text(_ROLL_FORWARD))
    await connection.execute(sa.text(_CUSTOMER_FACTS))


async def recompute_touched(
    connection: AsyncConnection,
    *,
    fresh: bool = False,
    bulk: bool = True,
    defer_rollups: bool = False,
    currencies: bool = True,
    new: bool = False,
    upkeep: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> bool:
    """Rebuild `mrr_change`, `movement` and `movement_scope` for every customer in the temp
    `touched_customer`, keep the rollups (add the net of the touched customers' old and new
    contributions, app.metrics.rollup_delta, or rebuild them in full: a first import, a
    migrated database) and their stored facts (customer_since, current MRR). `fresh`: they
    have no derived rows yet (nothing to delete); `bulk`: empty tables may be filled without
    their indexes (app.ingest.bulk); `defer_rollups`: instead of a full rebuild, mark the
    rollups behind (readers scan) for the caller to rebuild them once later (a chunked
    import); `currencies`: record the ledger's currencies (`record_currencies`; else the
    caller does, later in the transaction); `new`: the touched customers are a first import's
    chunk, their ledger made from its periods (`_ledger_side`); `upkeep` (with
    `defer_rollups`): the rollups are kept here (their net change added, or their mark set),
    else only the net change is staged and the caller keeps them later in the transaction
    (`keep_rollups`, given what this returns: whether they need a full rebuild); `progress`
    follows a rebuild (app.metrics.rollup.rebuild)."""
    assert upkeep or defer_rollups, "a rebuild in place writes the rollups here"
    touched = await connection.scalar(sa.text("SELECT count(*) FROM touched_customer"))
    in_full = await rollup.needs_rebuild(connection, int(touched or 0))
    if not in_full:  # the customers whose country changed, moved as they are now
        await rollup_delta.stage_moved_customers(connection)
    if in_full and defer_rollups and upkeep:
        await rollup.request_rebuild(connection)
    elif not in_full and not fresh:  # their old contribution, from their movements as they are
        await rollup_delta.stage(connection, is_touched, -1)
    async with filled_in_bulk(connection, DERIVED, touched if bulk else 0):
        await _recompute_derived(connection, fresh, new)
    if in_full and not defer_rollups:
        await rollup.rebuild(connection, progress)
    elif not in_full:
        await rollup_delta.stage(connection, is_touched, 1)
        if upkeep:
            await rollup_delta.apply(connection)
    await connection.execute(sa.text(_CUSTOMER_FACTS))
    if currencies:
        await record_currencies(connection)
    return in_full


async def keep_rollups(connection: AsyncConnection, rebuild: bool) -> None:
    """The rollups' part of a recompute run without `upkeep`: marked behind when it needed a
    full `rebuild`, else its staged net change added."""
    if rebuild:
        await rollup.request_rebuild(connection)
    else:
        await rollup_delta.apply(connection)


async def record_currencies(connection: AsyncConnection) -> None:
    """The ledger's currencies and the first day of each, from the touched customers' ledger
    (the temp `touched_change` of the recompute, in the same transaction). It locks the
    currencies' rows until the transaction ends."""
    await connection.execute(
        sa.text(
            "INSERT INTO ledger_currency (currency, first_day) "
            "SELECT currency, min(day) FROM touched_change GROUP BY currency "
            "ORDER BY currency "  # concurrent recomputes lock the rows in the same order
            "ON CONFLICT (currency) DO UPDATE "
            "SET first_day = least(ledger_currency.first_day, EXCLUDED.first_day)"
        )
    )


async def _recompute_derived(connection: AsyncConnection, fresh: bool, new: bool) -> None:
    """The touched customers' ledger is derived once into the temp `touched_change`; their
    `mrr_change`, movements and scoped movements are all made from it (no statement reads the
    big `mrr_change` back for them). `new`: from the periods of a first import's chunk
    (`_ledger_side`), not read back from the growing `subscription_version`."""
    touched = sa.select(TOUCHED.c.customer_id)
    if not fresh:
        await connection.execute(sa.delete(mrr_change).where(mrr_change.c.customer_id.in_(touched)))
    ledger = sa.union_all(
        _ledger_side("valid_from", 1, new=new), _ledger_side("valid_to", -1, new=new)
    )
    await connection.execute(sa.text("DROP TABLE IF EXISTS touched_change"))
    await connection.execute(
        sa.text("CREATE TEMP TABLE touched_change (LIKE mrr_change) ON COMMIT DROP")
    )
    await connection.execute(sa.insert(TOUCHED_CHANGE).from_select(LEDGER_COLUMNS, ledger))
    await connection.execute(sa.text("ANALYZE touched_change"))
    await connection.execute(
        sa.insert(mrr_change).from_select(LEDGER_COLUMNS, sa.select(TOUCHED_CHANGE))
    )
    if not fresh:
        await connection.execute(sa.delete(movement).where(movement.c.customer_id.in_(touched)))
    derived = movements_from_changes(TOUCHED_CHANGE, ["currency"]).subquery("derived")
    columns = ["customer_id", "currency", "day", *MOVEMENT_COLUMNS]
    rows = _with_alone(derived, columns)
    # The planner cannot estimate the derived movements (a window over a grouping: 30 where a
    # chunk of 16,700 customers has 206,000), so it sorted them by day to merge them with the
    # calendar. Hashed, a first import's movement statements took 15.6 s against 18.2 s at
    # 100k customers and 164 s against 178 s at 1M (server time, one import each).
    async with rollup.hashed_grouping(connection):
        await connection.execute(sa.insert(movement).from_select([*columns, "alone"], rows))
        await _recompute_scopes(connection, fresh)
    await keep_trials(
        connection, is_touched, fresh, (NEW_VERSION, CHUNK_SUBSCRIPTION) if new else None
    )
