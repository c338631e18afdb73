"""`POST /events`: a JSON array of at most 10,000 usage events, with a `write` key.

The answer is HTTP 200 with `{accepted, duplicates, rejected, errors: [{index, id, reason}]}`
whenever the body is a JSON array of at most MAX_BATCH items: each event is checked on its own
(app/usage/ingest.py). The request as a whole is refused, as coded errors, when the key is
missing or lacks `write` (401, 403), the body is not JSON or not an array (400), or the array
is longer than MAX_BATCH (413). `?source=NAME` names the source the event ids belong to
(default `events`; 1-100 characters, none a control character: else 400). The body may be up
to `max_events_bytes` (schema/edge.py).
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.errors import UserError
from app.security import keys as auth
from app.security.keys import Authenticator, Forbidden, Scope, Unauthenticated
from app.usage.events import loads
from app.usage.ingest import (
    DEFAULT_SOURCE,
    MAX_BATCH,
    IngestResult,
    fewer_collections,
    ingest,
    source_name,
)
from schema.edge import error_response, http_error
from schema.security import origin

PATH = "/events"
ACCEPTED = (
    f"send a JSON array of at most {MAX_BATCH:,} events, each an object "
    '{"id", "customer", "name", "timestamp", "properties"} (application/json)'
)


def result_body(result: IngestResult) -> dict[str, object]:
    return {
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "rejected": len(result.rejected),
        "errors": [
            {"index": item.index, "id": item.id, "reason": item.reason} for item in result.rejected
        ],
    }


def decode(body: bytes) -> object:
    """Standard UTF-8 JSON (no NaN; read by orjson, app/usage/events.py `loads`); nesting is
    bounded by the decoder's recursion limit and, per event, by the size of its properties."""
    try:
        return loads(body)
    except RecursionError:
        raise UserError(f"the body is not JSON: it is nested too deeply; {ACCEPTED}") from None
    except ValueError as error:
        raise UserError(f"the body is not JSON ({error}); {ACCEPTED}") from None


async def _events(request: Request) -> list[object]:
    text = await request.body()
    with fewer_collections():  # no await inside
        body = decode(text)
    if not isinstance(body, list):
        raise UserError(f"the body is not a JSON array; {ACCEPTED}")
    if len(body) > MAX_BATCH:
        raise OverflowError(
            f"at most {MAX_BATCH:,} events per request; this one has {len(body):,}: "
            "split it into several requests"
        )
    return body


def events_route(engine: AsyncEngine, authenticator: Authenticator) -> Route:
    async def post_events(request: Request) -> Response:
        try:
            principal = await authenticator.authenticate(
                request.headers.get("authorization"), origin(request)
            )
            auth.require(principal, Scope.WRITE)
            source = source_name(request.query_params.get("source", DEFAULT_SOURCE))
            events = await _events(request)
        except Unauthenticated as error:
            return error_response(str(error), error.code, 401, {"WWW-Authenticate": "Bearer"})
        except Forbidden as error:
            return error_response(str(error), error.code, 403)
        except OverflowError as error:
            return http_error(413, str(error))
        except UserError as error:
            return http_error(400, str(error))
        return JSONResponse(result_body(await ingest(engine, events, source)))

    return Route(PATH, post_events, methods=["POST"])
