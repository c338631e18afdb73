"""Limits on the shape of a document, checked before it is validated.

- **Expanded size**: Strawberry's depth and alias rules (and execution) walk each operation with
  its fragment spreads replaced by the fragments, so a fragment spread twice in a fragment spread
  twice... is work that doubles per fragment: 22 such fragments (under a kilobyte) are millions
  of selections and block the server for seconds, a few more for ever. The expanded size of a
  document is counted here in one pass (each fragment's size counted once), and a document of
  more than `MAX_SELECTIONS` selections (fields, fragment spreads and inline fragments, in every
  operation) is refused before any rule walks it. A fragment cycle is refused with graphql's
  own errors, as validation would report it (expanding a cycle never ends).
- **Integer literals**: an integer written with more than `MAX_INTEGER_DIGITS` digits is refused;
  no argument takes one (Int is 32-bit, Cents 64-bit) and Python will not read one of more
  than 4,300 digits (graphql's Int would fail with an internal error).

A problem is a `BAD_USER_INPUT` error that names the limit and what is accepted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from graphql import (
    DocumentNode,
    FieldNode,
    FloatValueNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    NoFragmentCyclesRule,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    validate,
    visit,
)
from graphql.language import Visitor
from strawberry.extensions import SchemaExtension

from app.errors import UserError

# The largest registered document (queries/) expands to 61 selections, one of every field of the
# schema to under 500, and 30 aliased series (the alias limit), each with every field through
# fragments, to under 3,000; a document of 5,000 is validated in milliseconds.
MAX_SELECTIONS = 5_000
MAX_INTEGER_DIGITS = 100
LONG_DIGITS = re.compile(f"[0-9]{{{MAX_INTEGER_DIGITS + 1}}}")


class Cycle(Exception):
    """A fragment spreads itself, directly or through others."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _Sizes:
    """The expanded size of selection sets, each fragment's counted once."""

    def __init__(self, fragments: Mapping[str, FragmentDefinitionNode]) -> None:
        self.fragments = fragments
        self.sizes: dict[str, int] = {}
        self.expanding: set[str] = set()

    def of(self, selection_set: SelectionSetNode | None) -> int:
        if selection_set is None:
            return 0
        return sum(1 + self._inner(selection) for selection in selection_set.selections)

    def _inner(self, selection: SelectionNode) -> int:
        if isinstance(selection, FieldNode | InlineFragmentNode):
            return self.of(selection.selection_set)
        if isinstance(selection, FragmentSpreadNode):
            return self._fragment(selection.name.value)
        return 0

    def _fragment(self, name: str) -> int:
        if name in self.sizes:
            return self.sizes[name]
        fragment = self.fragments.get(name)
        if fragment is None:  # unknown: graphql's KnownFragmentNames reports it
            return 0
        if name in self.expanding:
            raise Cycle(name)
        self.expanding.add(name)
        self.sizes[name] = self.of(fragment.selection_set)
        self.expanding.discard(name)
        return self.sizes[name]


def expanded_size(document: DocumentNode) -> int:
    """The selections of every operation of `document`, its fragment spreads expanded; in time
    linear in the document. Raises Cycle when a fragment spreads itself."""
    fragments = {
        node.name.value: node
        for node in document.definitions
        if isinstance(node, FragmentDefinitionNode)
    }
    sizes = _Sizes(fragments)
    return sum(
        sizes.of(node.selection_set)
        for node in document.definitions
        if isinstance(node, OperationDefinitionNode)
    )


def too_large(size: int, limit: int) -> UserError:
    return UserError(
        f"The document selects {size:,} fields and fragments once its fragments are expanded; "
        f"at most {limit:,} are accepted: spread fragments less often, or split the query."
    )


class _Integers(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[IntValueNode | FloatValueNode] = []

    def enter_int_value(self, node: IntValueNode, *_: object) -> None:
        self.found.append(node)

    def enter_float_value(self, node: FloatValueNode, *_: object) -> None:
        self.found.append(node)  # (an error about one would quote all its digits)


def long_integers(
    document: DocumentNode,
) -> Iterator[tuple[IntValueNode | FloatValueNode, int]]:
    """Each number literal of `document` (an integer, or a float an argument would refuse
    quoting it whole) of more than MAX_INTEGER_DIGITS digits, with its digits; the document is
    walked only when its text holds that many digits in a row."""
    if document.loc is not None and not LONG_DIGITS.search(document.loc.source.body):
        return
    integers = _Integers()
    visit(document, integers)
    for node in integers.found:
        digits = sum(char.isdigit() for char in node.value)
        if digits > MAX_INTEGER_DIGITS:
            yield node, digits


def too_long(digits: int, limit: int, kind: str = "an integer") -> UserError:
    return UserError(
        f"The document holds {kind} of {digits:,} digits; numbers of at most {limit} "
        "digits are accepted (no argument takes one beyond 64 bits)."
    )


def _kind(node: IntValueNode | FloatValueNode) -> str:
    return "an integer" if isinstance(node, IntValueNode) else "a number"


def _coded(error: UserError, node: IntValueNode | FloatValueNode | None = None) -> GraphQLError:
    return GraphQLError(str(error), node, extensions={"code": error.code})


def _cycle_errors(schema: GraphQLSchema, document: DocumentNode, name: str) -> list[GraphQLError]:
    """graphql's words for a fragment cycle (ours, should it find none)."""
    errors = validate(schema, document, [NoFragmentCyclesRule])
    return errors or [_coded(UserError(f"Cannot spread fragment '{name}' within itself."))]


def document_errors(
    schema: GraphQLSchema, document: DocumentNode, max_selections: int = MAX_SELECTIONS
) -> list[GraphQLError]:
    """What makes `document` too large, or unfit, to be validated (nothing: an empty list)."""
    errors = [
        _coded(too_long(digits, MAX_INTEGER_DIGITS, _kind(node)), node)
        for node, digits in long_integers(document)
    ]
    try:
        size = expanded_size(document)
    except Cycle as cycle:
        return errors + _cycle_errors(schema, document, cycle.name)
    if size > max_selections:
        errors.append(_coded(too_large(size, max_selections)))
    return errors


class DocumentLimits(SchemaExtension):
    """The limits of this module, checked before the validation rules run; a document within
    them is validated as usual (an operation already refused, by ScopeGuard, is left alone)."""

    def __init__(self, max_selections: int = MAX_SELECTIONS) -> None:
        super().__init__()
        self.max_selections = max_selections

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if context.pre_execution_errors is None and document is not None:
            schema = context.schema._schema
            errors = document_errors(schema, document, self.max_selections)
            if errors:  # (none: validation runs)
                context.pre_execution_errors = errors
        yield
