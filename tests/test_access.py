"""`viewer`: what the caller may do, as the dashboard's key panel shows it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import QUERIES_DIR
from app.metrics.service import MetricsEngine
from app.security.access import ALLOWS
from app.security.keys import Scope
from app.security.persisted import read_documents
from tests.conftest import execute
from tests.edge import bearer, new_key, persisted, real_app, serving

VIEWER = "{ viewer { name scopes keyless allows } }"
META, _ = read_documents(QUERIES_DIR / "DashboardMeta.graphql")


async def viewer_over_http(database_url: str, key: str | None) -> Any:
    async with serving(real_app(database_url)) as client:
        response = await client.post(
            "/graphql", json={"extensions": persisted(META.sha256)}, headers=bearer(key)
        )
    assert response.status_code == 200, response.text
    return response.json()["data"]["viewer"]


async def test_the_in_process_caller_may_do_everything(metrics: MetricsEngine) -> None:
    viewer = (await execute(metrics, VIEWER))["viewer"]
    assert viewer["scopes"] == ["read", "write", "admin"]
    assert viewer["keyless"] is True
    assert viewer["allows"] == [ALLOWS[Scope.READ], ALLOWS[Scope.WRITE], ALLOWS[Scope.ADMIN]]


async def test_keyless_loopback_access(engine: AsyncEngine, database_url: str) -> None:
    viewer = await viewer_over_http(database_url, None)
    assert (viewer["name"], viewer["keyless"]) == ("keyless loopback access", True)
    assert viewer["scopes"] == ["read", "write", "admin"]


async def test_a_partner_key_reads_only_the_persisted_queries(
    engine: AsyncEngine, database_url: str
) -> None:
    key = await new_key(engine, "partner", name="reporting")
    viewer = await viewer_over_http(database_url, key)
    assert viewer == {
        "name": "reporting",
        "scopes": ["read", "partner"],
        "keyless": False,
        "allows": [ALLOWS[Scope.PARTNER]],
    }


async def test_a_write_key(engine: AsyncEngine, database_url: str) -> None:
    key = await new_key(engine, "write", name="ops")
    viewer = await viewer_over_http(database_url, key)
    assert (viewer["scopes"], viewer["keyless"]) == (["read", "write"], False)
    assert viewer["allows"] == [ALLOWS[Scope.READ], ALLOWS[Scope.WRITE]]
