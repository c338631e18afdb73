"""The advisory locks of usage metric definitions and of their rollups' builds.

DEFINITIONS_LOCK: definitions change one at a time, and never while events are being stored:
a change holds it exclusive to the end of its transaction, each event store shared, and
checks the definitions under it (app/usage/ingest.py).

BUILD_LOCK: the session building a rollup holds (BUILD_LOCK, its build token) to the end of
the build (app/usage/builds.py), so a build whose session is gone is known by its lock being
free. The two-key form: its keys never meet the one-key locks' (PostgreSQL's two spaces).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

DEFINITIONS_LOCK = 0x75736D64  # "usmd"
BUILD_LOCK = 0x75736D62  # "usmb"
INT4 = 2**31


async def lock_definitions(connection: AsyncConnection, shared: bool = False) -> None:
    """Hold the definitions' lock to the end of the transaction: exclusive to change them,
    shared to store events by them (module doc)."""
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    await connection.execute(sa.text(f"SELECT {function}(:key)"), {"key": DEFINITIONS_LOCK})


def _build_key(token: int) -> dict[str, int]:
    return {"space": BUILD_LOCK, "key": token % INT4}


async def hold_build(connection: AsyncConnection, token: int) -> bool:
    """Take the session lock of build `token` if it is free (module doc); whether taken."""
    statement = sa.text("SELECT pg_try_advisory_lock(:space, :key)")
    return bool(await connection.scalar(statement, _build_key(token)))
