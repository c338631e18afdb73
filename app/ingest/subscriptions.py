"""Load canonical subscription periods: stage, validate, upsert what changed, recompute.

Everything happens in one transaction: a file that fails any check leaves the database as it
was, and re-running an interrupted import simply does it again (imports are idempotent).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import astuple, dataclass, fields
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.errors import ImportFailed
from app.ingest.recompute import create_touched_table, recompute_touched
from app.ingest.rows import PeriodRow
from app.tables import import_run

BATCH = 5_000
MAX_REPORTED = 20
STAGE_COLUMNS = [field.name for field in fields(PeriodRow)]

Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class ImportResult:
    rows: int
    changed_subscriptions: int
    changed_customers: int


def _noop(_stage: str, _count: int) -> None:
    return None


_STAGE_DDL = """
CREATE TEMP TABLE stage_period (
    line integer, subscription_id text, customer_id text, valid_from date, valid_to date,
    status text, plan text, quantity integer, amount numeric, billing_interval text,
    interval_count integer, currency text, mrr bigint, customer_name text, email text,
    country text
) ON COMMIT DROP
"""

_CHECKS = {
    "overlaps an earlier period of subscription {2} (line {0})": """
        SELECT a.line, b.line, b.subscription_id FROM stage_period a
        JOIN stage_period b ON a.subscription_id = b.subscription_id AND a.line < b.line
         AND daterange(a.valid_from, a.valid_to) && daterange(b.valid_from, b.valid_to)
        ORDER BY b.line LIMIT 20""",
    "subscription {2} already belongs to another customer in this file (line {0})": """
        SELECT first.line, later.line, later.subscription_id FROM stage_period later
        JOIN LATERAL (SELECT line, customer_id FROM stage_period s
                      WHERE s.subscription_id = later.subscription_id ORDER BY line LIMIT 1)
             first ON first.customer_id <> later.customer_id
        ORDER BY later.line LIMIT 20""",
    "subscription {2} already has another currency in this file (line {0})": """
        SELECT first.line, later.line, later.subscription_id FROM stage_period later
        JOIN LATERAL (SELECT line, currency FROM stage_period s
                      WHERE s.subscription_id = later.subscription_id ORDER BY line LIMIT 1)
             first ON first.currency <> later.currency
        ORDER BY later.line LIMIT 20""",
}

_APPLY = [
    """
    INSERT INTO customer (source, external_id, name, email, country)
    SELECT :source, customer_id,
           (array_agg(customer_name ORDER BY line DESC)
                FILTER (WHERE customer_name IS NOT NULL))[1],
           (array_agg(email ORDER BY line DESC) FILTER (WHERE email IS NOT NULL))[1],
           (array_agg(country ORDER BY line DESC) FILTER (WHERE country IS NOT NULL))[1]
    FROM stage_period GROUP BY customer_id
    ON CONFLICT (source, external_id) DO UPDATE SET
        name = COALESCE(EXCLUDED.name, customer.name),
        email = COALESCE(EXCLUDED.email, customer.email),
        country = COALESCE(EXCLUDED.country, customer.country)
    WHERE (customer.name, customer.email, customer.country) IS DISTINCT FROM
          (COALESCE(EXCLUDED.name, customer.name), COALESCE(EXCLUDED.email, customer.email),
           COALESCE(EXCLUDED.country, customer.country))
    """,
    """
    INSERT INTO plan (source, external_id, name)
    SELECT DISTINCT :source, plan, plan FROM stage_period WHERE plan IS NOT NULL
    ON CONFLICT (source, external_id) DO NOTHING
    """,
    """
    CREATE TEMP TABLE staged_subscription ON COMMIT DROP AS
    SELECT DISTINCT st.subscription_id AS external_id, c.id AS customer_id
    FROM stage_period st JOIN customer c ON c.source = :source AND c.external_id = st.customer_id
    """,
    # a subscription that moved to another customer touches its old customer too
    """
    INSERT INTO touched_customer
    SELECT s.customer_id FROM subscription s
    JOIN staged_subscription st ON s.source = :source AND s.external_id = st.external_id
    WHERE s.customer_id <> st.customer_id
    UNION SELECT st.customer_id FROM subscription s
    JOIN staged_subscription st ON s.source = :source AND s.external_id = st.external_id
    WHERE s.customer_id <> st.customer_id
    ON CONFLICT DO NOTHING
    """,
    """
    INSERT INTO subscription (source, external_id, customer_id)
    SELECT :source, external_id, customer_id FROM staged_subscription
    ON CONFLICT (source, external_id) DO UPDATE SET customer_id = EXCLUDED.customer_id
    WHERE subscription.customer_id <> EXCLUDED.customer_id
    """,
    """
    CREATE TEMP TABLE new_version ON COMMIT DROP AS
    SELECT s.id AS subscription_id, st.valid_from, st.valid_to, st.status, p.id AS plan_id,
           st.quantity, st.amount, st.billing_interval, st.interval_count, st.currency, st.mrr
    FROM stage_period st
    JOIN subscription s ON s.source = :source AND s.external_id = st.subscription_id
    LEFT JOIN plan p ON p.source = :source AND p.external_id = st.plan
    """,
    """
    CREATE TEMP TABLE old_version ON COMMIT DROP AS
    SELECT subscription_id, valid_from, valid_to, status, plan_id, quantity, amount,
           billing_interval, interval_count, currency, mrr
    FROM subscription_version
    WHERE subscription_id IN (SELECT subscription_id FROM new_version)
    """,
    """
    CREATE TEMP TABLE changed_subscription ON COMMIT DROP AS
    SELECT DISTINCT subscription_id FROM (
        (SELECT * FROM new_version EXCEPT SELECT * FROM old_version)
        UNION ALL
        (SELECT * FROM old_version EXCEPT SELECT * FROM new_version)
    ) AS difference
    """,
    """
    INSERT INTO touched_customer
    SELECT DISTINCT s.customer_id FROM changed_subscription c
    JOIN subscription s ON s.id = c.subscription_id
    ON CONFLICT DO NOTHING
    """,
    """
    DELETE FROM subscription_version
    WHERE subscription_id IN (SELECT subscription_id FROM changed_subscription)
    """,
    """
    INSERT INTO subscription_version (subscription_id, valid_from, valid_to, status, plan_id,
        quantity, amount, billing_interval, interval_count, currency, mrr)
    SELECT * FROM new_version
    WHERE subscription_id IN (SELECT subscription_id FROM changed_subscription)
    """,
]


async def _stage(
    connection: AsyncConnection,
    rows: Iterable[PeriodRow | tuple[int, str]],
    filename: str,
    progress: Progress,
) -> int:
    """COPY good rows into the stage table in batches; collect bad lines and fail with them."""
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    problems: list[tuple[int, str]] = []
    batch: list[tuple[object, ...]] = []
    count = 0
    for row in rows:
        count += 1
        if isinstance(row, tuple):
            problems.append(row)
            if len(problems) >= MAX_REPORTED:
                break
            continue
        batch.append(astuple(row))
        if len(batch) >= BATCH:
            await driver.copy_records_to_table("stage_period", records=batch, columns=STAGE_COLUMNS)
            progress("read", len(batch))
            batch = []
    if problems:
        raise ImportFailed(filename, problems)
    if batch:
        await driver.copy_records_to_table("stage_period", records=batch, columns=STAGE_COLUMNS)
        progress("read", len(batch))
    return count


async def _check(connection: AsyncConnection, filename: str) -> None:
    problems: list[tuple[int, str]] = []
    for message, query in _CHECKS.items():
        for first, line, subscription_id in await connection.execute(sa.text(query)):
            problems.append((line, message.format(first, line, subscription_id)))
    if problems:
        raise ImportFailed(filename, sorted(problems)[:MAX_REPORTED])


async def _apply(connection: AsyncConnection, source: str) -> tuple[int, int]:
    await create_touched_table(connection)
    for statement in _APPLY:
        await connection.execute(sa.text(statement), {"source": source})
    await recompute_touched(connection)
    changed = await connection.scalar(sa.text("SELECT count(*) FROM changed_subscription"))
    touched = await connection.scalar(sa.text("SELECT count(*) FROM touched_customer"))
    return int(changed or 0), int(touched or 0)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


async def load_periods(
    engine: AsyncEngine,
    rows: Iterable[PeriodRow | tuple[int, str]],
    *,
    filename: str,
    sha256: str,
    source: str = "csv",
    progress: Progress = _noop,
) -> ImportResult:
    """Import a stream of periods (or bad lines) in one transaction."""
    async with engine.begin() as connection:
        await connection.execute(sa.text(_STAGE_DDL))
        count = await _stage(connection, rows, filename, progress)
        await _check(connection, filename)
        progress("apply", 0)
        changed, touched = await _apply(connection, source)
        await connection.execute(
            sa.insert(import_run).values(
                kind="subscriptions",
                filename=filename,
                sha256=sha256,
                row_count=count,
                changed_customers=touched,
            )
        )
    return ImportResult(rows=count, changed_subscriptions=changed, changed_customers=touched)
