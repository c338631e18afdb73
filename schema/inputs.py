"""What a GraphQL request may carry, checked before anything of it runs.

- **JSON** (the body, GET `variables` and `extensions`, a multipart `operations`): UTF-8,
  standard JSON (no NaN), nested at most `MAX_JSON_DEPTH` levels; a body is an object (one
  operation) or a list of objects (a batch). Otherwise HTTP 400, `BAD_USER_INPUT`.
- **Text**: no string of a request may hold NUL (U+0000) or a lone UTF-16 surrogate (`"\\ud800"`
  in JSON): PostgreSQL's text cannot store either and neither is ever meaningful input. Checked
  here once, on the decoded request (query, operationName, variables, extensions: HTTP 400),
  and in string literals of the document, where `\\u0000` is a legal escape (`InputLimits`).
- **Size of arguments** (`InputLimits`, a validation rule): every string argument or input
  field is at most `TEXT_LIMITS[name]` characters (else `DEFAULT_TEXT_LIMIT`), every list at
  most `LIST_LIMITS[name]` items (else `MAX_LIST_ITEMS`: usage events come as many as
  `POST /events` takes), input objects nested at most `MAX_INPUT_DEPTH` levels; a problem
  is a `BAD_USER_INPUT` error naming the argument and the limit, before any resolver runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from cross_web import HTTPException
from graphql import (
    ArgumentNode,
    ASTValidationRule,
    GraphQLError,
    OperationDefinitionNode,
    ValidationContext,
    value_from_ast_untyped,
)
from strawberry.extensions import SchemaExtension
from strawberry.http import GraphQLRequestData

from app.usage.ingest import MAX_BATCH

MAX_JSON_DEPTH = 64
MAX_INPUT_DEPTH = 32
MAX_LIST_ITEMS = 1_000
DEFAULT_TEXT_LIMIT = 1_000
# Characters, by the name of the argument or input field (a list's items: the list's name).
TEXT_LIMITS = {
    "search": 200,
    "name": 200,
    "label": 200,
    "field": 200,
    "dimensions": 200,
    "key": 100,
    "source": 100,
    "description": 2_000,
}
# Items, by the name of the list argument or input field.
LIST_LIMITS = {"events": MAX_BATCH}
SURROGATE = re.compile("[\ud800-\udfff]")  # JSON decoding pairs the valid ones
JSON_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}


def text_problem(text: str) -> str | None:
    """What makes `text` unfit to be stored or compared as text, if anything."""
    if "\x00" in text:
        return "contains a NUL character (U+0000), which text cannot hold"
    if SURROGATE.search(text):
        return "contains a lone UTF-16 surrogate (such as \\ud800), which is not a character"
    return None


# --- JSON ----------------------------------------------------------------------------------------


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _too_deep(value: object, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if not isinstance(item, dict | list):
            continue
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children)
    return False


def decode_json(data: str | bytes) -> object:
    """JSON text as Python values; HTTP 400 when it is not UTF-8, not standard JSON (NaN,
    numbers of more than 4,300 digits) or nested more than MAX_JSON_DEPTH levels."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as error:
        raise HTTPException(400, f"The request body is not UTF-8 ({error.reason}).") from None
    too_deep = HTTPException(400, f"The JSON is nested more than {MAX_JSON_DEPTH} levels deep.")
    try:
        value = json.loads(text, parse_constant=_not_json)
    except RecursionError:
        raise too_deep from None
    except ValueError as error:
        if "integer string conversion" in str(error):  # Python's words name its own setting
            reason = "it holds an integer of more than 4,300 digits"
            raise HTTPException(400, f"Unable to parse the request as JSON: {reason}.") from None
        raise HTTPException(400, f"Unable to parse the request as JSON: {error}.") from None
    if _too_deep(value, MAX_JSON_DEPTH):
        raise too_deep
    return value


def unsupported_content_type(given: str) -> str:
    return (
        f"Unsupported content type {given!r}: send a GraphQL request as application/json, "
        "a file upload as multipart/form-data, or a query as GET /graphql?query=..."
    )


def _kind(value: object) -> str:
    return "null" if value is None else JSON_TYPES.get(type(value), "a number")


FIELDS = {"query": str, "operationName": str, "variables": dict, "extensions": dict}


def _field_problems(request: dict[str, Any], prefix: str) -> Iterator[str]:
    for name, kind in FIELDS.items():
        value = request.get(name)
        if value is not None and not isinstance(value, kind):
            expected = JSON_TYPES[kind]
            yield f"{prefix}{name} must be {expected} or null, not {_kind(value)}"


def check_body(value: object) -> None:
    """A request is an object (one operation) or a non-empty list of objects (a batch), with
    `query` and `operationName` strings, `variables` and `extensions` objects (or null)."""
    expected = "a JSON object (one GraphQL request) or a list of them (a batch)"
    requests = value if isinstance(value, list) else [value]
    kinds = [_kind(item) for item in requests if not isinstance(item, dict)]
    if kinds:
        problem = f"; the list holds {kinds[0]}" if isinstance(value, list) else f", not {kinds[0]}"
        raise HTTPException(400, f"The request must be {expected}{problem}.")
    if not requests:
        raise HTTPException(400, "The batch is empty: send at least one operation.")
    for index, request in enumerate(requests):
        prefix = f"[{index}]." if isinstance(value, list) else ""
        for problem in _field_problems(request, prefix):
            raise HTTPException(400, f"The request's {problem}.")


# --- text anywhere in a request --------------------------------------------------------------


def _text_problems(value: object, path: str) -> Iterator[str]:
    if isinstance(value, str):
        problem = text_problem(value)
        if problem:
            yield f"{path} {problem}"
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _text_problems(key, f"{path} (a key)")
            yield from _text_problems(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _text_problems(item, f"{path}[{index}]")


def check_text(request: GraphQLRequestData | list[GraphQLRequestData]) -> None:
    """HTTP 400 naming the first string of a decoded request that text cannot hold."""
    requests = request if isinstance(request, list) else [request]
    for index, data in enumerate(requests):
        prefix = f"[{index}]." if isinstance(request, list) else ""
        parts = {
            "query": data.query,
            "operationName": data.operation_name,
            "variables": data.variables,
            "extensions": data.extensions,
        }
        for name, value in parts.items():
            for problem in _text_problems(value, prefix + name):
                raise HTTPException(400, f"The request's {problem}.")


# --- arguments ---------------------------------------------------------------------------------


def _argument_problems(value: object, path: str, name: str, depth: int = 1) -> Iterator[str]:
    """What is wrong with an argument's value (variables substituted), by leaf name."""
    if depth > MAX_INPUT_DEPTH:
        yield f"argument {path} is nested more than {MAX_INPUT_DEPTH} levels deep"
    elif isinstance(value, str):
        limit = TEXT_LIMITS.get(name, DEFAULT_TEXT_LIMIT)
        problem = text_problem(value)
        if problem:
            yield f"argument {path} {problem}"
        elif len(value) > limit:
            yield f"argument {path} has {len(value):,} characters; at most {limit:,}"
    elif isinstance(value, list):
        most = LIST_LIMITS.get(name, MAX_LIST_ITEMS)
        if len(value) > most:
            yield f"argument {path} has {len(value):,} items; at most {most:,}"
            return
        for index, item in enumerate(value):
            yield from _argument_problems(item, f"{path}[{index}]", name, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _argument_problems(item, f"{path}.{key}", str(key), depth + 1)


def _variables(context: ValidationContext, given: Mapping[str, Any]) -> dict[str, Any]:
    """The request's variables, with the defaults the document declares for missing ones."""
    defaults = {
        definition.variable.name.value: value_from_ast_untyped(definition.default_value)
        for operation in context.document.definitions
        if isinstance(operation, OperationDefinitionNode)
        for definition in operation.variable_definitions or ()
        if definition.default_value is not None
    }
    return defaults | dict(given)


# the variables of the operation being validated (set by InputLimits around its validation)
_VARIABLES: ContextVar[Mapping[str, Any] | None] = ContextVar("tidemill_variables", default=None)


class ArgumentLimits(ASTValidationRule):
    """The arguments' values of the operation being validated against the limits (one class
    for every request: the variables come from InputLimits, not from a class built per
    request)."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.variables = _variables(context, _VARIABLES.get() or {})

    def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
        name = node.name.value
        value = value_from_ast_untyped(node.value, self.variables)
        problems = list(_argument_problems(value, name, name))
        if problems:
            extensions = {"code": "BAD_USER_INPUT", "problems": problems}
            self.report_error(GraphQLError("; ".join(problems), node, extensions=extensions))


class InputLimits(SchemaExtension):
    """Adds the argument limits (module doc) to the validation of every operation."""

    def on_validate(self) -> Iterator[None]:
        rules = self.execution_context.validation_rules
        self.execution_context.validation_rules = (*rules, ArgumentLimits)
        token = _VARIABLES.set(self.execution_context.variables)
        try:
            yield
        finally:
            _VARIABLES.reset(token)
