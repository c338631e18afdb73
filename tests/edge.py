"""Helpers for the tests of the HTTP edge (auth, persisted queries, limits): the real app, or the
real view over the real schema plus a few test-only fields (a mutation, an admin-only field, a
slow statement, a crash), served in-process through httpx."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import httpx
import sqlalchemy as sa
import strawberry
import uvicorn
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette import types
from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.schema.config import BatchingConfig, StrawberryConfig
from typer.testing import CliRunner

from app.cli import cli as tidemill
from app.config import Settings, load_settings
from app.db import create_engine
from app.metrics.service import MetricsEngine
from app.security import keys as auth
from app.security.keys import Authenticator, Scope, is_loopback
from app.security.persisted import Document, Registry, load_documents
from schema import edge, security
from schema.asgi import create_app
from schema.errors import ErrorCodes
from schema.execution import PlainExecutor
from schema.fields import mutation
from schema.permissions import RequireScope
from schema.root import Query, TidemillSchema
from schema.scalars import SCALARS
from schema.security import SecureGraphQL

BASE = "http://127.0.0.1"  # a loopback address, as a local client reaches the server

# Every kind of string input of the schema: name -> (operation, type of $v, the selection,
# with {v} where the value goes)
INPUTS = {
    "search": ("query", "String", "customers(search: {v}) {{ totalCount }}"),
    "filter value": (
        "query",
        "String!",
        'snapshot(at: "2024-01-01", spec: {{filters: [{{field: "plan", values: [{v}]}}]}}) '
        "{{ mrr }}",
    ),
    "filter field": (
        "query",
        "String!",
        'series(start: "2024-01-01", end: "2024-02-01", spec: {{filters: [{{field: {v}}}]}}) '
        "{{ end }}",
    ),
    "segment definition": (
        "query",
        "String!",
        'validateSegment(definition: {{field: "plan", op: EQ, values: [{v}]}}) {{ valid }}',
    ),
    "segment name": (
        "mutation",
        "String!",
        'createSegment(name: {v}, definition: {{field: "plan", op: EQ, values: ["a"]}}) {{ id }}',
    ),
    "attribute label": (
        "mutation",
        "String!",
        "createAttribute(key: {v}, label: {v}, type: STRING) {{ key }}",
    ),
    "attribute value": (
        "mutation",
        "String!",
        'setCustomerAttributes(customerId: "1", values: [{{key: "tier", value: {v}}}]) {{ id }}',
    ),
    "attribute key": ("query", "String!", "attributeValues(key: {v})"),
    "customer id": ("query", "ID!", "customer(id: {v}) {{ name }}"),
    "segment id": ("query", "ID!", "segment(id: {v}) {{ name }}"),
    "compared segment": (
        "query",
        "ID!",
        'snapshot(at: "2024-01-01", spec: {{compareSegments: [{v}]}}) {{ mrr }}',
    ),
}


def with_variable(name: str) -> str:
    """The document of `INPUTS[name]` taking the value as the variable $v."""
    operation, kind, selection = INPUTS[name]
    return f"{operation}($v: {kind}) {{ {selection.format(v='$v')} }}"


def with_literal(name: str, literal: str) -> str:
    """The document of `INPUTS[name]` with the value written in it (a GraphQL literal)."""
    operation, _, selection = INPUTS[name]
    return f"{operation} {{ {selection.format(v=literal)} }}"


@strawberry.type
class ExtendedQuery(Query):
    @strawberry.field
    async def sleep(self, info: strawberry.Info, seconds: float) -> bool:
        engine = info.context.metrics.engine
        async with engine.connect() as connection:
            await connection.execute(sa.text("SELECT pg_sleep(:s)"), {"s": seconds})
        return True

    @strawberry.field
    def crash(self) -> bool:
        raise RuntimeError("secret internals")


@strawberry.type
class Mutation:
    @mutation(description="A write, as segment and attribute mutations will be.")
    def touch(self) -> bool:
        return True

    @mutation(permission_classes=[RequireScope(Scope.ADMIN)])
    def rotate_source(self) -> bool:
        return True


def settings(database_url: str, **overrides: Any) -> Settings:
    # no inbox worker unless a test asks for one: it would take pooled connections the pool
    # tests count
    values: dict[str, Any] = {"database_url": database_url, "host": "127.0.0.1", "api_key": ""}
    values = values | {"worker": False} | overrides
    return load_settings(**values)


def extended_schema(config: Settings) -> TidemillSchema:
    batching: BatchingConfig = {"max_operations": config.max_batch_operations}
    return TidemillSchema(
        query=ExtendedQuery,
        mutation=Mutation,
        extensions=[*security.extensions(config), ErrorCodes],
        execution_context_class=PlainExecutor,
        config=StrawberryConfig(scalar_map=SCALARS, batching_config=batching),
    )


def extended_app(config: Settings, documents: Mapping[str, Document] | None = None) -> Starlette:
    """The secure view over the extended schema, with the engine of the real server."""
    engine = create_engine(config)
    registry = Registry(engine, load_documents() if documents is None else documents)
    authenticator = Authenticator(engine, is_loopback(config.host))
    schema = extended_schema(config)
    metrics = MetricsEngine(engine)
    view = SecureGraphQL(
        schema, metrics, authenticator, registry, config.graphiql, config.max_tokens
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await engine.dispose()

    return Starlette(
        routes=[Route("/graphql", view, methods=["GET", "POST"])],
        lifespan=lifespan,
        middleware=edge.middleware(config),
        exception_handlers=edge.EXCEPTION_HANDLERS,
    )


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of `app`, with its lifespan (start-up log, engine disposal) run."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url=BASE) as client,
    ):
        yield client


def real_app(database_url: str, **overrides: Any) -> Starlette:
    return create_app(settings(database_url, **overrides))


async def new_key(engine: AsyncEngine, *scopes: str, name: str = "") -> str:
    parsed = auth.parse_scopes(scopes)
    _, key = await auth.create_key(engine, name or "-".join(scopes), parsed)
    return key


def bearer(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def persisted(sha256: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256}}


def codes(body: Any) -> list[str]:
    return [error["extensions"]["code"] for error in body.get("errors") or []]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def running(app: types.ASGIApp) -> Iterator[str]:
    """`app` served by uvicorn on a free loopback port, for clients that need a socket."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class Recorder:
    """ASGI middleware that keeps the body of every HTTP request (what clients really send)."""

    def __init__(self, app: types.ASGIApp) -> None:
        self.app = app
        self.bodies: list[bytes] = []

    async def __call__(self, scope: types.Scope, receive: types.Receive, send: types.Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def recording() -> types.Message:
            message = await receive()
            chunks.append(message.get("body", b""))
            return message

        await self.app(scope, recording, send)
        self.bodies.append(b"".join(chunks))


def _cli(server: str, key: str, *args: str) -> Any:
    env = {"TIDEMILL_URL": f"{server}/graphql", "TIDEMILL_API_KEY": key, "COLUMNS": "200"}
    return CliRunner().invoke(tidemill, list(args), env=env)


async def cli(server: str, key: str, *args: str) -> Any:
    """A `tidemill` client command against `server`, sending `key` (none when empty)."""
    return await asyncio.to_thread(_cli, server, key, *args)


class Relay:
    """A TCP relay in front of the test PostgreSQL that a test cuts and restores: while cut,
    the database is gone for the app (open connections reset, new ones refused), and it comes
    back on the same port. The real server is never touched."""

    def __init__(self, database_url: str) -> None:
        self.target = make_url(database_url)
        self.port = 0
        self.server: asyncio.Server | None = None
        self.streams: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        """`database_url` through the relay."""
        relayed = self.target.set(host="127.0.0.1", port=self.port)
        return relayed.difference_update_query(["host"]).render_as_string(hide_password=False)

    async def _open_target(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        socket_dir = self.target.query.get("host")
        if isinstance(socket_dir, str) and socket_dir.startswith("/"):  # the embedded server
            return await asyncio.open_unix_connection(f"{socket_dir}/.s.PGSQL.5432")
        return await asyncio.open_connection(self.target.host, self.target.port or 5432)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target_reader, target_writer = await self._open_target()
        self.streams |= {writer, target_writer}
        await asyncio.gather(self._pipe(reader, target_writer), self._pipe(target_reader, writer))

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._connected, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def __aenter__(self) -> Relay:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.cut()

    async def cut(self) -> None:
        if self.server is None:
            return
        self.server.close()
        for writer in self.streams:
            writer.transport.abort()
        self.streams.clear()
        await self.server.wait_closed()
        self.server = None
