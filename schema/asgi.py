"""The one wiring point: settings -> engine -> service -> GraphQL app with health routes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app import migrate
from app.config import Settings, load_settings
from app.db import create_engine, ping
from app.metrics.service import MetricsEngine
from app.reads import read_router
from schema import edge, web
from schema.security import announce, secure_view

log = logging.getLogger("tidemill.server")


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    engine = create_engine(settings)
    metrics = MetricsEngine(engine, settings.base_currency)
    reads = read_router(settings, engine)
    graphql = secure_view(settings, engine, metrics, reads)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        try:
            async with engine.connect() as connection:
                await ping(connection)
            current = await migrate.is_current(engine)
        except Exception as error:  # the point of the probe: report, don't raise
            log.warning("readiness check failed: %s", error)
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, 503)
        if not current:
            return JSONResponse({"status": "unavailable", "migrations": "pending"}, 503)
        return JSONResponse({"status": "ready"})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await announce(graphql, settings.host)
        yield
        await reads.dispose()
        await engine.dispose()

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        *web.routes(),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=edge.middleware(settings),
        exception_handlers=edge.EXCEPTION_HANDLERS,
    )
