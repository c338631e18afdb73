"""The HTTP edge's security: API keys, persisted queries, limits and coded errors.

Per HTTP request, `SecureGraphQL` (the GraphQL view) reads the request with the checks of
schema/inputs.py, authenticates the Authorization header once (app/security/keys.py, with the
request's `Origin` for keyless access; failure is `UNAUTHENTICATED`, HTTP 401), then per
operation resolves the document from the persisted-query registry (app/security/persisted.py;
partner keys run only the registered `queries/` documents) and insists on an `operationName`
when the document names several operations. Per operation, `ScopeGuard` (a schema extension)
checks the key's scope against the operation kind (queries need `read`, mutations `write`;
`FORBIDDEN` otherwise) and takes introspection and "Did you mean" suggestions away from partner
keys. `RequireScope` (schema/permissions.py) guards single fields (admin-only ones).
Strawberry's limiters cap depth, aliases and tokens, `DocumentLimits` (schema/limits.py) the
size of a document with its fragments expanded and the digits of its integers (before the
limiters, which expand fragments, walk it), `InputLimits` the size of arguments, the
schema's batching config the operations per batch; every error that leaves the view carries
`extensions.code`. A response with an error caused by a database outage is HTTP 503
(schema/edge.py says why and what else the edge does for every route).

Code that runs the schema in-process (tests, `MetricsEngine` users) passes a plain `Context`,
which has no principal: it is trusted, as the database behind it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import json
import logging
import re
import uuid
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson
from cross_web import HTTPException
from graphql import (
    ASTValidationRule,
    GraphQLError,
    NoSchemaIntrospectionCustomRule,
    OperationDefinitionNode,
    ValidationContext,
    parse,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.requests import Request
from starlette.responses import Response
from strawberry.asgi import GraphQL
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
)
from strawberry.file_uploads.utils import replace_placeholders_with_files
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData, GraphQLRequestProtocol
from strawberry.schema.base import BaseSchema
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET

from app.config import Settings
from app.datacache import LRU, Version, VersionedMemo, result_key
from app.db import unpinged
from app.errors import UserError
from app.ingest.sources import SourceServices
from app.metrics.service import MetricsEngine
from app.reads import ReadRouter, Target
from app.security import keys as auth
from app.security.keys import (
    Authenticator,
    Origin,
    Principal,
    Unauthenticated,
    any_key_exists,
    is_loopback,
)
from app.security.persisted import Registry, load_documents, requested_hash
from schema import inputs
from schema.edge import RETRY_AFTER_SECONDS, http_error
from schema.errors import CONNECTION_LOST, coded
from schema.limits import DocumentLimits
from schema.permissions import SecureContext, _principal
from schema.root import build_schema
from schema.web import graphiql_page

log = logging.getLogger("tidemill.server")
SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")
REFUSAL_STATUS = {"UNAUTHENTICATED": 401, "FORBIDDEN": 403}
ALLOWED_METHODS = {"Allow": "GET, POST"}
# headers by which a proxy says for whom it forwards a request (RFC 7239, and the de facto ones)
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


class NoIntrospection(NoSchemaIntrospectionCustomRule):
    """graphql's rule against `__schema` and `__type`, reported as FORBIDDEN."""

    def report_error(self, error: GraphQLError) -> None:
        error.extensions = {"code": "FORBIDDEN"}
        super().report_error(error)


def _error(error: UserError) -> GraphQLError:
    return GraphQLError(str(error), original_error=error)


class ScopeGuard(SchemaExtension):
    """The caller's scopes against the operation kind; partner keys lose introspection."""

    def on_validate(self) -> Iterator[None]:
        try:
            self._check(_principal(self.execution_context.context))
        except UserError as error:
            self.execution_context.pre_execution_errors = [_error(error)]  # skips validation
        yield

    def _check(self, principal: Principal | None) -> None:
        if principal is None:
            return
        if principal.is_partner:
            rules = self.execution_context.validation_rules
            self.execution_context.validation_rules = (*rules, NoIntrospection)
        auth.require(principal, auth.operation_scope(self.execution_context.operation_type.value))

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        context = self.execution_context.context
        if result is None or not isinstance(context, SecureContext) or not context.principal:
            return
        if context.principal.is_partner:
            for error in result.errors or []:
                error.message = SUGGESTION.sub("", error.message)


def _tolerant(rule: type[ASTValidationRule]) -> type[ASTValidationRule]:
    """`rule`, except that a KeyError (Strawberry's depth rule meeting an unknown fragment,
    which graphql's KnownFragmentNames rule reports as the caller's error) is not a crash."""

    class Tolerant(rule):  # type: ignore[valid-type,misc]
        def __init__(self, context: ValidationContext) -> None:
            try:
                super().__init__(context)
            except KeyError:
                ASTValidationRule.__init__(self, context)

    return Tolerant


class DepthLimiter(QueryDepthLimiter):
    """Strawberry's QueryDepthLimiter (introspection fields are not counted), crash-free."""

    def __init__(self, max_depth: int) -> None:
        super().__init__(max_depth=max_depth)
        self.validation_rules = [_tolerant(rule) for rule in self.validation_rules]


class CachedValidation(SchemaExtension):
    """A document that passed validation once with the same rules (the limits, and the
    partner's rules that ScopeGuard added before) is not validated again: validating a
    dashboard's documents costs more than answering them from the result cache. Only passes
    are remembered; a refusal already made (ScopeGuard) is left alone."""

    def __init__(self, passed: LRU[bool]) -> None:
        super().__init__()
        self.passed = passed

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if context.pre_execution_errors is None and context.graphql_document is not None:
            rules = tuple(
                f"{rule.__module__}.{rule.__qualname__}" for rule in context.validation_rules
            )
            try:  # the argument limits (schema/inputs.py) read the variables too
                variables: str | None = json.dumps(context.variables, sort_keys=True)
            except (TypeError, ValueError):  # an upload: validated every time
                variables = None
            key = (context.query, rules, variables)
            if variables is not None and self.passed.get(key):
                context.pre_execution_errors = []
            else:
                errors = validate_document(
                    context.schema._schema, context.graphql_document, context.validation_rules
                )
                context.pre_execution_errors = errors
                if not errors and variables is not None:
                    self.passed.put(key, True)
        yield


def extensions(settings: Settings) -> list[Callable[[], SchemaExtension]]:
    """The per-request schema extensions of a server: the limits of `settings`, the guard,
    and the parse and validation of documents remembered (per server)."""
    passed: LRU[bool] = LRU(512)
    # the depth and alias rules, built once per server (not a class each per request)
    limits = [
        *DepthLimiter(max_depth=settings.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
    ]
    return [
        functools.partial(ParserCache, maxsize=512),
        functools.partial(AddValidationRules, limits),
        functools.partial(MaxTokensLimiter, max_token_count=settings.max_tokens),
        inputs.InputLimits,
        ScopeGuard,
        # before any rule expands the document's fragments
        functools.partial(DocumentLimits, settings.max_selections),
        functools.partial(CachedValidation, passed),
    ]


def refusal(error: UserError) -> ExecutionResult:
    """An operation refused before it ran, as a coded GraphQL error."""
    error_ = GraphQLError(str(error), extensions={"code": error.code})
    return ExecutionResult(data=None, errors=[error_])


def origin(request: Request) -> Origin:
    """How `request` reached this server (the ASGI scope's addresses, proxy headers)."""
    server, client = request.scope.get("server"), request.client
    forwarded = any(name in request.headers for name in FORWARDING_HEADERS)
    return Origin(server[0] if server else None, client.host if client else None, forwarded)


def operation_names(text: str | None, max_tokens: int) -> list[str | None]:
    """The names of the operations of a document (None: anonymous); none when it does not
    parse (the schema reports that)."""
    return [name for name, _ in _operations(text or "", max_tokens)]


@functools.lru_cache(maxsize=1024)
def _operations(text: str, max_tokens: int) -> tuple[tuple[str | None, str], ...]:
    """(name, kind) of each operation of a document; parsed once per process."""
    try:
        document = parse(text, max_tokens=max_tokens)
    except GraphQLError:
        return ()
    return tuple(
        (node.name.value if node.name else None, node.operation.value)
        for node in document.definitions
        if isinstance(node, OperationDefinitionNode)
    )


def reads_only(text: str | None, operation: str | None, max_tokens: int) -> bool:
    """Whether the operation a request runs is a query (not a mutation): it may then go to a
    replica and its result be cached."""
    found = _operations(text or "", max_tokens)
    kinds = [kind for name, kind in found if operation is None or name == operation]
    return bool(kinds) and all(kind == "query" for kind in kinds)


def _unnamed_choice(names: list[str | None], chosen: str | None) -> UserError | None:
    """Several named operations and no operationName: which one to run is not said."""
    if chosen is not None or len(names) < 2 or None in names:
        return None
    listed = ", ".join(str(name) for name in names)
    return UserError(
        f"the document has {len(names)} operations ({listed}); say which to run with operationName"
    )


def _codes(response: GraphQLHTTPResponse | list[GraphQLHTTPResponse]) -> set[str]:
    responses = response if isinstance(response, list) else [response]
    errors: list[Any] = [error for item in responses for error in item.get("errors") or []]
    return {str((error.get("extensions") or {}).get("code")) for error in errors}


def _refusal_status(result: Any) -> int | None:
    """401/403 when a single operation was refused as a whole for want of a key or a scope."""
    if not isinstance(result, ExecutionResult) or result.data is not None or not result.errors:
        return None
    codes = {str((error.extensions or {}).get("code")) for error in result.errors}
    return REFUSAL_STATUS.get(codes.pop()) if len(codes) == 1 else None


def encode_json(data: object) -> str | bytes:
    """A response as JSON, by orjson (in C: a 60-point series encodes several times faster).
    It writes the values json.dumps wrote (Strawberry's encoder), only non-ASCII as UTF-8
    rather than `\\u` escapes; what orjson refuses (an integer beyond 64 bits, a lone
    surrogate) json.dumps writes as before. The one difference: a float that is not finite
    (only a JSON attribute value converted from an enormous Decimal could be one) is `null`
    where json.dumps wrote `Infinity`, which is not JSON (and a value json.dumps refused, a
    date or a dataclass, which no coerced response holds, would be written)."""
    try:
        return orjson.dumps(data)
    except TypeError:
        return json.dumps(data, separators=(",", ":"))


class Encoded(dict[str, Any]):
    """A response (`{"data": ...}`) with its JSON, encoded once."""

    def __init__(self, response: GraphQLHTTPResponse, encoded: str | bytes) -> None:
        super().__init__(response)
        self.encoded = encoded


@dataclass
class StoredResult(ExecutionResult):
    """A result kept in the result cache, with its response encoded on first use: a hit is
    served as the stored JSON, not rebuilt and encoded again."""

    response: Encoded | None = None


class SecureGraphQL(GraphQL[SecureContext, None]):
    """The GraphQL view with keys, persisted queries and coded errors (see the module doc)."""

    def __init__(
        self,
        schema: BaseSchema,
        metrics: MetricsEngine,
        authenticator: Authenticator,
        registry: Registry,
        graphiql: bool = True,
        max_tokens: int = 1_000,
        reads: ReadRouter | None = None,
        result_cache_entries: int = 0,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if graphiql else None,
            multipart_uploads_enabled=True,  # importAttributes(file: Upload!)
        )
        self.metrics = metrics
        self.authenticator = authenticator
        self.registry = registry
        self.max_tokens = max_tokens
        self.sources: SourceServices | None = None  # set by the server (schema/asgi.py)
        self.reads = reads or ReadRouter(authenticator.engine)
        self.results: LRU[StoredResult] = LRU(result_cache_entries)
        # results being computed, by cache key: identical requests that arrive meanwhile wait
        # for that one computation instead of each running the same statements
        self.computing: dict[Hashable, asyncio.Future[StoredResult | None]] = {}
        self.memo = VersionedMemo()

    async def get_context(self, request: Any, response: Any) -> SecureContext:
        return SecureContext(metrics=self.metrics, sources=self.sources)

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL from the package's own assets (schema/web.py), never from a CDN."""
        return graphiql_page()

    def should_render_graphql_ide(self, request: Any) -> bool:
        """Not for a GET that carries a persisted-query hash, whatever its Accept header."""
        persisted = request.query_params.get("extensions") is not None
        return not persisted and super().should_render_graphql_ide(request)

    async def execute_operation(
        self,
        request: Request,
        request_adapter: Any,
        request_data: Any,
        context: SecureContext,
        root_value: Any,
        sub_response: Response,
    ) -> Any:
        try:
            version = await self.reads.primary.version.current()
            context.primary_version = version
            context.principal = await self.authenticator.authenticate(
                request.headers.get("authorization"), origin(request), version
            )
        except Unauthenticated as error:
            sub_response.headers["WWW-Authenticate"] = "Bearer"
            sub_response.status_code = 401
            refused = refusal(error)
            return [refused for _ in request_data] if isinstance(request_data, list) else refused
        result = await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )
        sub_response.status_code = _refusal_status(result)  # type: ignore[assignment]
        return result

    async def execute_single(
        self,
        request: Request,
        request_adapter: Any,
        sub_response: Response,
        context: SecureContext,
        root_value: Any,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        partner = context.principal is not None and context.principal.is_partner
        try:
            sha256 = requested_hash(request_data.extensions)
            resolved = await self.registry.resolve(request_data.query, sha256, partner)
        except UserError as error:
            return refusal(error)
        names = operation_names(resolved.text, self.max_tokens)
        unnamed = _unnamed_choice(names, request_data.operation_name)
        if unnamed is not None:
            return refusal(unnamed)
        run = replace(request_data, query=resolved.text)
        if reads_only(resolved.text, request_data.operation_name, self.max_tokens):
            result = await self._read(request, request_adapter, sub_response, context, run)
        else:
            result = await super().execute_single(
                request, request_adapter, sub_response, context, root_value, run
            )
        if resolved.register and resolved.sha256 and resolved.text and result.data is not None:
            await self.registry.store(resolved.sha256, resolved.text)
        return result

    async def _read(
        self,
        request: Request,
        request_adapter: Any,
        sub_response: Response,
        context: SecureContext,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """A query: on a read target (a replica when there are some), at the data version read
        there first; its result served from, or kept in, the result cache under (document,
        operation, variables, data version, ...) (app/datacache.py)."""
        target = self.reads.choose()
        version: Version | None
        if target is self.reads.primary and context.primary_version is not None:
            version = context.primary_version
        else:
            version = await target.version.current()
        key = None
        if version is not None:
            # who asks: what a document may show depends on the caller (admin-only fields, a
            # partner's rules, `viewer`), so an answer is only ever served to its own key
            principal = context.principal
            who = "trusted"
            if principal is not None:
                who = f"{principal.key_id}:{principal.name}:{','.join(sorted(principal.scopes))}"
            today = datetime.datetime.now(datetime.UTC).date().isoformat()
            key = result_key(
                target.name,
                version,
                request_data.query or "",
                request_data.operation_name,
                request_data.variables,
                who,
                today,
            )
        cached = self.results.get(key) if key is not None else None
        if cached is not None:
            return cached
        compute = functools.partial(
            self._compute, request, request_adapter, sub_response, context, target, version
        )
        if key is None or self.results.entries <= 0:
            return await compute(request_data, key)
        running = self.computing.get(key)
        if running is not None:  # the same answer is being computed: share it
            shared = await asyncio.shield(running)
            if shared is not None:
                return shared
            # it failed or was cancelled: compute this one's own
        done: asyncio.Future[StoredResult | None] = asyncio.get_running_loop().create_future()
        self.computing[key] = done
        result: ExecutionResult | None = None
        try:
            result = await compute(request_data, key)
            return result
        finally:
            if self.computing.get(key) is done:
                del self.computing[key]
            done.set_result(result if isinstance(result, StoredResult) else None)

    async def _compute(
        self,
        request: Request,
        request_adapter: Any,
        sub_response: Response,
        context: SecureContext,
        target: Target,
        version: Version | None,
        request_data: GraphQLRequestData,
        key: Hashable | None,
    ) -> ExecutionResult:
        """Run a query at `version` on `target`; a result without errors is kept under `key`."""
        # a query can run again: its connections are not pinged before use (a round trip each),
        # and it runs again, on connections checked first, if one turns out dead
        for checked in (False, True):
            service = self.metrics.reading(target.reader, version, self.memo)
            CONNECTION_LOST.set(False)
            with context.reading(service), contextlib.ExitStack() as stack:
                if not checked:
                    stack.enter_context(unpinged())
                result = await super().execute_single(
                    request, request_adapter, sub_response, context, None, request_data
                )
            if not CONNECTION_LOST.get():
                break
        if key is not None and not result.errors and result.data is not None:
            result = StoredResult(result.data, None, result.extensions)
            self.results.put(key, result)
        return result

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        """Every error leaves with a code; one that has none is shaped (internal: masked)."""
        if isinstance(result, StoredResult):
            if result.response is None:
                response = await super().process_result(request, result)
                result.response = Encoded(response, self.encode_json(response))
            return result.response  # type: ignore[return-value]
        if result.errors:
            request_id = uuid.uuid4().hex[:12]
            result.errors = [coded(error, request_id) for error in result.errors]
        return await super().process_result(request, result)

    def encode_json(self, data: object) -> str | bytes:
        if isinstance(data, Encoded):
            return data.encoded
        return encode_json(data)

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        """HTTP 503 with Retry-After when an operation failed for a database outage."""
        if "UNAVAILABLE" in _codes(response_data):
            sub_response.status_code = 503
            sub_response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return super().create_response(response_data, sub_response)

    def decode_json(self, data: str | bytes) -> object:
        return inputs.decode_json(data)

    def parse_json(self, data: str | bytes) -> Any:
        """JSON as schema/inputs.py accepts it; a body (bytes, where query parameters and form
        fields are text) must be a request or a batch of them."""
        value = self.decode_json(data)
        if isinstance(data, bytes):
            inputs.check_body(value)
        return value

    async def parse_http_body(self, request: Any) -> Any:
        try:
            parsed = await super().parse_http_body(request)
        except HTTPException as error:
            if error.reason != "Unsupported content type":  # (Strawberry's words)
                raise
            given = request.content_type or "none"
            raise HTTPException(400, inputs.unsupported_content_type(given)) from None
        inputs.check_text(parsed)
        return parsed

    async def parse_multipart(self, request: Any) -> dict[str, Any]:
        """A GraphQL multipart request (a file upload): `operations`, `map`, the files."""
        form = (await request.get_form_data()).form
        operations, files_map = form.get("operations", "{}"), form.get("map", "{}")
        if not isinstance(operations, str) or not isinstance(files_map, str):
            raise HTTPException(400, "The multipart fields operations and map must be text.")
        return _with_files(self.parse_json(operations.encode()), self.decode_json(files_map), form)

    def _validate_batch_request(
        self, request_data: list[GraphQLRequestData], protocol: GraphQLRequestProtocol
    ) -> None:
        batching = self.schema.config.batching_config
        if batching and len(request_data) > batching["max_operations"]:
            limit = batching["max_operations"]
            message = (
                f"Too many operations: at most {limit} operations per request "
                f"(this batch has {len(request_data)})."
            )
            raise HTTPException(400, message)
        super()._validate_batch_request(request_data, protocol)

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        """Protocol errors (bad JSON, wrong method, too many operations) as coded JSON too;
        anything unexpected is answered by the edge (schema/edge.py). Uploaded files are
        closed (their temporary files removed) however the request ends."""
        try:
            return await super().run(request, context, root_value)
        except HTTPException as error:
            headers = ALLOWED_METHODS if error.status_code == 405 else None
            return http_error(error.status_code, error.reason, headers)
        finally:
            if isinstance(request, Request):
                await request.close()


def _with_files(operations: Any, files_map: Any, files: Mapping[str, Any]) -> dict[str, Any]:
    """`operations` with each file put where `map` says (the GraphQL multipart request spec)."""
    valid_map = isinstance(files_map, dict) and all(
        isinstance(paths, list) and all(isinstance(path, str) for path in paths)
        for paths in files_map.values()
    )
    if not valid_map:
        raise HTTPException(400, "The multipart map must be an object of lists of paths.")
    try:
        return replace_placeholders_with_files(operations, files_map, files)
    except (KeyError, IndexError, TypeError, ValueError):
        message = "The multipart map names a file or a path that is not there."
        raise HTTPException(400, message) from None


def secure_view(
    settings: Settings,
    engine: AsyncEngine,
    metrics: MetricsEngine,
    reads: ReadRouter | None = None,
) -> SecureGraphQL:
    """The server's GraphQL view: its schema with the limits, keys and registered queries."""
    schema = build_schema(extensions(settings), settings.max_batch_operations)
    authenticator = Authenticator(engine, is_loopback(settings.host))
    registry = Registry(engine, load_documents())
    return SecureGraphQL(
        schema,
        metrics,
        authenticator,
        registry,
        settings.graphiql,
        settings.max_tokens,
        reads or ReadRouter(engine),
        settings.result_cache_entries,
    )


async def announce(view: SecureGraphQL, host: str) -> None:
    """Say at start-up how requests are let in; keyless access above all. A database that is
    not there yet is reported, not fatal (`/readyz` tells when it is)."""
    documents = {document.name for document in view.registry.documents.values()}
    log.info("%d persisted queries registered from queries/", len(documents))
    try:
        await _announce_access(view, host)
    except Exception as error:  # the server can start; requests are refused until it is back
        log.warning("could not check API keys at start-up: %s", error)


async def _announce_access(view: SecureGraphQL, host: str) -> None:
    if await view.authenticator.keyless_allowed():
        log.warning(
            "keyless access: no API key exists and the server binds to loopback (%s), so "
            "requests without a key are let in; `tidemill keys create` ends this",
            host,
        )
    elif not await any_key_exists(view.authenticator.engine):
        log.warning(
            "no API key exists and the server binds to %s: every request is refused until "
            "you create one with `tidemill keys create`",
            host,
        )
    else:
        log.info("API keys required (Authorization: Bearer tm_...)")
