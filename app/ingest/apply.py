"""Store a customer's canonical rows from a live source (any translator's `CustomerBundle`):
upsert the customer, its plans and subscriptions, replace their versions and items, and mark
the customer touched for the recompute. Runs inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from app.attributes import definitions, parse_value, upsert_values
from app.ingest.canonical import (
    CustomerBundle,
    ItemRecord,
    PlanRecord,
    SubscriptionRecord,
    VersionRecord,
)
from app.ingest.recordset import insert_rows, recordset
from app.limits import count_problem, day_problem, mrr_problem
from app.metrics import rollup_delta
from app.metrics.rollup import CHUNK_CUSTOMERS, among, kept, plan_holders
from app.tables import (
    attribute,
    customer,
    plan,
    subscription,
    subscription_item,
    subscription_version,
)


def _item_problem(item: ItemRecord) -> str | None:
    return (
        count_problem("quantity", item.quantity)
        or count_problem("interval_count", item.interval_count, least=1)
        or mrr_problem(item.mrr)
    )


def _version_problem(version: VersionRecord) -> str | None:
    problem = (
        day_problem("start date", version.valid_from)
        or day_problem("end date", version.valid_to)
        or day_problem("trial start", version.trial_start)
        or day_problem("trial end", version.trial_end)
    )
    for position, item in enumerate(version.items, 1):
        if problem is not None:
            break
        problem = _item_problem(item)
        problem = problem and f"item {position} ({item.plan}): {problem}"
    return problem or mrr_problem(version.mrr)


def _subscription_problem(record: SubscriptionRecord) -> str | None:
    for version in record.versions:
        problem = _version_problem(version)
        if problem is not None:
            return f"subscription {record.external_id} from {version.valid_from}: {problem}"
    return None


def bundle_problem(bundle: CustomerBundle) -> str | None:
    """Why a customer's rows cannot be stored: the bounds an import holds its rows to
    (app.limits, as app.ingest.rows checks them), whatever the source. A value out of them
    would fail the statement that stores it (a 32-bit quantity, a 64-bit MRR), or make totals
    inexact."""
    return next(
        (p for p in map(_subscription_problem, bundle.subscriptions) if p is not None), None
    )


def source_key(kind: str, source_id: int) -> str:
    """`customer.source` (and plan's, subscription's) of a connected source's rows."""
    return f"{kind}:{source_id}"


async def _keyed_ids(
    connection: AsyncConnection,
    table: sa.Table,
    source: str,
    rows: dict[str, dict[str, Any]],
    constraint: str,
) -> dict[str, int]:
    """The ids of `rows` (external id -> their columns) in `table` (customer or subscription,
    unique on source and external id): the stored rows locked (in id order) and updated
    where a column differs, the others inserted. Only those inserts draw an id: an upsert of
    every row draws one per row, conflict or not, so each sync of a million customers would
    move the ids on by a million. ON CONFLICT is left for an insert racing with another
    worker's."""
    if not rows:
        return {}
    names = list(next(iter(rows.values())))
    stored = await connection.execute(
        sa.select(table.c.external_id, table.c.id, *(table.c[name] for name in names))
        .where(table.c.source == source, table.c.external_id.in_(sorted(rows)))
        .order_by(table.c.id)
        .with_for_update()
    )
    ids: dict[str, int] = {}
    changed = []
    for row in stored:
        external, values = str(row.external_id), rows[str(row.external_id)]
        ids[external] = int(row.id)
        if tuple(row)[2:] != tuple(values[name] for name in names):
            changed.append({"id": int(row.id), **values})
    if changed:
        found = recordset(table, ["id", *names], changed).subquery("changed")
        await connection.execute(
            sa.update(table)
            .where(table.c.id == found.c.id)
            .values({name: found.c[name] for name in names})
        )
    missing = [
        {"source": source, "external_id": external, **values}
        for external, values in rows.items()
        if external not in ids
    ]
    if missing:
        statement = insert_rows(table, missing)
        statement = statement.on_conflict_do_update(
            constraint=constraint, set_={name: statement.excluded[name] for name in names}
        )
        found_ids = await connection.execute(statement.returning(table.c.external_id, table.c.id))
        ids |= {str(external): int(ident) for external, ident in found_ids}
    return ids


async def _customer_ids(
    connection: AsyncConnection, source: str, bundles: Sequence[CustomerBundle]
) -> dict[str, int]:
    rows = {
        b.customer.external_id: {
            "name": b.customer.name,
            "email": b.customer.email,
            "country": b.customer.country,
        }
        for b in bundles
    }
    return await _keyed_ids(connection, customer, source, rows, "customer_source_external_id_key")


async def _plan_ids(
    connection: AsyncConnection, source: str, bundles: Sequence[CustomerBundle]
) -> dict[str, int]:
    """The plans' ids; only new or changed plans are written (in id order), so concurrent
    workers, whose customers share plans, do not wait for each other on unchanged rows."""
    plans = {p.external_id: p for b in bundles for p in b.plans}
    if not plans:
        return {}
    stored = await connection.execute(
        sa.select(plan.c.external_id, plan.c.id, plan.c.name, plan.c.product).where(
            plan.c.source == source, plan.c.external_id.in_(sorted(plans))
        )
    )
    ids, known = {}, {}
    for external, ident, name, product in stored:
        ids[str(external)], known[str(external)] = int(ident), (name, product)
    rows = [
        {"source": source, "external_id": p.external_id, "name": p.name, "product": p.product}
        for key, p in sorted(plans.items())
        if known.get(key) != (p.name, p.product)
    ]
    if rows:
        moved = await _products_moving(connection, source, plans, known)
        holders = await plan_holders(connection, moved) if moved else []
        await _stage_products(connection, holders, -1)
        statement = insert_rows(plan, rows)
        statement = statement.on_conflict_do_update(
            constraint="plan_source_external_id_key",
            set_={"name": statement.excluded.name, "product": statement.excluded.product},
        )
        found = await connection.execute(statement.returning(plan.c.external_id, plan.c.id))
        ids |= {str(external): int(ident) for external, ident in found}
        if holders:
            await _stage_products(connection, holders, 1)
            await rollup_delta.apply(connection)
    return ids


async def _stage_products(connection: AsyncConnection, holders: list[int], sign: int) -> None:
    """Stage the `product` contribution of `holders`, CHUNK_CUSTOMERS at a time (a statement
    each, bounded as a rebuild's are: a product most customers have is renamed within the
    statement timeout)."""
    for start in range(0, len(holders), CHUNK_CUSTOMERS):
        part = among(holders[start : start + CHUNK_CUSTOMERS])
        await rollup_delta.stage_dimension(connection, "product", part, sign)


async def _products_moving(
    connection: AsyncConnection,
    source: str,
    plans: dict[str, PlanRecord],
    known: dict[str, tuple[Any, Any]],
) -> list[int]:
    """The stored plans whose product this batch changes, when `product` is rolled up: locked
    (in the upsert's order) and read again, so that of two batches changing it the second sees
    the first's product. Their customers' `product` rollup rows then move from the old product
    to the new one (subtracted before the plans are written, added after, in this
    transaction); the recompute that follows sees the rollups as the new products make them."""
    changing = sorted(
        key for key, p in plans.items() if key in known and known[key][1] != p.product
    )
    if not changing or "product" not in await kept(connection):
        return []
    locked = await connection.execute(
        sa.select(plan.c.external_id, plan.c.id, plan.c.product)
        .where(plan.c.source == source, plan.c.external_id.in_(changing))
        .order_by(plan.c.external_id)
        .with_for_update()
    )
    return [
        int(ident) for external, ident, product in locked if product != plans[str(external)].product
    ]


async def _attributes(
    connection: AsyncConnection, values: Sequence[tuple[int, dict[str, str]]]
) -> None:
    """Metadata keys become string attributes (source `stripe`) unless defined otherwise; a
    value that does not parse as its attribute's type is left out."""
    keys = sorted({key for _, found in values for key in found})
    if not keys:
        return
    await connection.execute(
        insert(attribute)
        .values([{"key": k, "label": k, "type": "string", "source": "stripe"} for k in keys])
        .on_conflict_do_nothing()
    )
    known = await definitions(connection)
    typed = []
    for customer_id, found in values:
        for key, text in found.items():
            try:
                kind = known[key].type
                typed.append((customer_id, key, kind, parse_value(kind, text)))
            except ValueError:
                continue
    await upsert_values(connection, typed)


def _lead(version: VersionRecord) -> ItemRecord | None:
    """The item a version's own plan columns describe: its first licensed one."""
    licensed = [item for item in version.items if item.usage_type == "licensed"]
    candidates = licensed or list(version.items)
    return candidates[0] if candidates else None


def _version_row(ident: int, version: VersionRecord, plans: dict[str, int]) -> dict[str, Any]:
    lead = _lead(version)
    return {
        "subscription_id": ident,
        "valid_from": version.valid_from,
        "valid_to": version.valid_to,
        "status": version.status,
        "plan_id": plans.get(lead.plan) if lead and lead.plan else None,
        "quantity": lead.quantity if lead else 0,
        "amount": lead.amount if lead else 0,
        "billing_interval": lead.billing_interval if lead else "month",
        "interval_count": lead.interval_count if lead else 1,
        "currency": version.currency,
        "mrr": version.mrr,
        "trial_start": version.trial_start,
        "trial_end": version.trial_end,
        "pricing_model": lead.pricing_model if lead else "flat",
        "collection_method": version.collection_method,
    }


def _item_rows(ident: int, version: VersionRecord, plans: dict[str, int]) -> list[dict[str, Any]]:
    return [
        {
            "subscription_id": ident,
            "valid_from": version.valid_from,
            "position": position,
            "plan_id": plans.get(item.plan) if item.plan else None,
            "quantity": item.quantity,
            "mrr": item.mrr,
            "billing_interval": item.billing_interval,
            "interval_count": item.interval_count,
            "pricing_model": item.pricing_model,
            "usage_type": item.usage_type,
        }
        for position, item in enumerate(version.items)
    ]


async def _subscription_ids(
    connection: AsyncConnection, source: str, owners: Sequence[tuple[str, int]]
) -> dict[str, int]:
    rows = {external: {"customer_id": owner} for external, owner in owners}
    constraint = "subscription_source_external_id_key"
    return await _keyed_ids(connection, subscription, source, rows, constraint)


async def store_bundles(
    connection: AsyncConnection, source: str, bundles: Sequence[CustomerBundle]
) -> None:
    """Store customers' rows (a handful of statements for any number of customers); their
    ids are added to `touched_customer`."""
    if not bundles:
        return
    await kept(connection)  # before customers are written (rollup_delta.stage_moved_customers)
    customers = await _customer_ids(connection, source, bundles)
    plans = await _plan_ids(connection, source, bundles)
    await _attributes(
        connection, [(customers[b.customer.external_id], b.customer.attributes) for b in bundles]
    )
    owners = [
        (s.external_id, customers[b.customer.external_id]) for b in bundles for s in b.subscriptions
    ]
    idents = await _subscription_ids(connection, source, owners)
    if idents:
        for table in (subscription_item, subscription_version):
            await connection.execute(
                sa.delete(table).where(table.c.subscription_id.in_(list(idents.values())))
            )
    versions, items = [], []
    for bundle in bundles:
        for record in bundle.subscriptions:
            ident = idents[record.external_id]
            for version in record.versions:
                versions.append(_version_row(ident, version, plans))
                items.extend(_item_rows(ident, version, plans))
    if versions:
        await connection.execute(insert_rows(subscription_version, versions))
    if items:
        await connection.execute(insert_rows(subscription_item, items))
    await connection.execute(
        sa.text(
            "INSERT INTO touched_customer SELECT unnest(CAST(:ids AS bigint[])) "
            "ON CONFLICT DO NOTHING"
        ),
        {"ids": sorted(customers.values())},
    )
