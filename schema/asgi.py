"""The one wiring point: settings -> engine -> service -> GraphQL app with health routes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app import migrate
from app.config import Settings, load_settings
from app.db import create_engine, ping
from app.ingest import worker
from app.ingest.secrets import vault
from app.ingest.sources import SourceServices
from app.metrics.service import MetricsEngine
from app.reads import read_router
from app.usage import definitions
from connectors.registry import TRANSLATORS
from connectors.stripe.backfill import backfill_source
from schema import edge, web
from schema.events import events_route
from schema.security import announce, secure_view
from schema.webhooks import webhook_route

log = logging.getLogger("tidemill.server")


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    engine = create_engine(settings)
    metrics = MetricsEngine(engine, settings.base_currency, rollups=settings.rollups)
    reads = read_router(settings, engine)
    graphql = secure_view(settings, engine, metrics, reads)
    keys = functools.cache(lambda: vault(settings))
    sources = SourceServices(engine, keys, backfill_source)
    graphql.sources = sources

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
        stop = asyncio.Event()
        applying = None
        if settings.worker:
            applying = asyncio.create_task(worker.run(engine, TRANSLATORS, stop, keys=keys))
        building = asyncio.create_task(definitions.keep_built(engine))
        yield
        building.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await building
        stop.set()
        if applying is not None:
            await applying
        await reads.dispose()
        await sources.close()
        await engine.dispose()

    routes = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        webhook_route(engine, keys, TRANSLATORS),
        events_route(engine, graphql.authenticator),
        *web.routes(),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=edge.middleware(settings),
        exception_handlers=edge.EXCEPTION_HANDLERS,
    )
