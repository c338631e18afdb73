"""`POST /webhooks/{source_id}`: verify a source's signed delivery, store it, answer 200.

Processing is the worker's (app.ingest.worker). Nothing is stored unless the delivery is
authentic and well-formed: an unknown source is 404 (its id is ASCII digits), a bad or stale
signature or a malformed body 400 (so is a body the inbox could not store: a NUL character,
an unpaired surrogate, NaN, JSON nested too deep, an id too long). A duplicate is 200 and
changes nothing. The database out is 503 (from the edge), so the sender retries: a delivery
is acknowledged only once it is stored."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.errors import NotFound
from app.ingest import inbox
from app.ingest.secrets import Vault
from app.ingest.sources import secrets_of
from app.ingest.translator import TRANSLATION_ERRORS, Translator
from schema.edge import http_error

SECRETS_TTL_SECONDS = 5.0  # a source's secrets are read again after this long (rotation)


class _Secrets:
    """Each source's kind and webhook secrets, cached briefly: the intake path then costs one
    INSERT, not a read and a decryption as well."""

    def __init__(
        self, engine: AsyncEngine, vault: Callable[[], Vault], clock: Callable[[], float]
    ) -> None:
        self.engine, self.vault, self.clock = engine, vault, clock
        self.cache: dict[int, tuple[float, str, list[str]]] = {}

    async def get(self, ident: int) -> tuple[str, list[str]]:
        cached = self.cache.get(ident)
        if cached and self.clock() - cached[0] < SECRETS_TTL_SECONDS:
            return cached[1], cached[2]
        kind, secrets = await secrets_of(self.engine, self.vault(), ident)
        webhook = [s.strip() for s in secrets.get("webhook_secret", "").split(",") if s.strip()]
        self.cache[ident] = (self.clock(), kind, webhook)
        return kind, webhook


def _source_id(request: Request) -> int | None:
    text = request.path_params["source_id"]
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


def webhook_route(
    engine: AsyncEngine,
    vault: Callable[[], Vault],
    translators: Mapping[str, Translator],
    clock: Callable[[], float] = time.time,
) -> Route:
    secrets = _Secrets(engine, vault, clock)
    intake = inbox.Intake(engine)

    async def receive(request: Request) -> Response:
        ident = _source_id(request)
        try:
            kind, webhook_secrets = await secrets.get(ident if ident is not None else -1)
        except NotFound:
            return http_error(404, f"no source with id {request.path_params['source_id']}")
        translator = translators[kind]
        body = await request.body()
        problem = translator.verify(request.headers, body, webhook_secrets, clock())
        if problem is not None:
            return http_error(400, f"signature refused: {problem}")
        try:
            event = translator.read_event(inbox.read_json(body))
        except TRANSLATION_ERRORS as error:  # a ValueError names the problem
            reason = error if isinstance(error, ValueError) else f"unreadable ({error!r})"
            return http_error(400, f"malformed event: {reason}; a JSON {kind} event is accepted")
        stored = await intake.store(ident or 0, event)
        return JSONResponse({"received": True, "duplicate": not stored})

    return Route("/webhooks/{source_id}", receive, methods=["POST"])
