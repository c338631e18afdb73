"""Plain objects completed in one loop: the schema's executor (issue 13).

graphql-core completes every field through the same machinery: a resolve info, the resolver,
an awaitable check, the non-null, list and leaf branches, a Path per field and list item. A
5-year monthly series with every Point field is ~1,800 such fields, most of its time over
HTTP. Nearly all of them are *plain*: a Strawberry field declared without a resolver reads an
attribute of the source and nothing else.

`PlainExecutor.execute_fields` builds the result of an object whose selected fields are all
plain in one tight loop: `getattr`, then the leaf type's `coerce_output_value` (what
graphql-core calls), lists and nested plain objects recursively. A field is plain when
- Strawberry installed its basic-field resolver for it (`_get_basic_result`, marked
  `_is_default`: a field with no resolver, no extensions, so no permission classes, and no
  exception handlers) and its `default_resolver` is `getattr` (StrawberryConfig's default);
- it takes no arguments and its nodes carry no directive but @skip/@include (which collecting
  the fields has already applied), no @defer usage and no fragment variables;
- its type is a leaf, a list, or an object type without `is_type_of` (abstract types go
  through graphql-core), and so on down its own selection; `__typename` is the type's name.
A selection's plan (or None: not plain) is built once per request, per (object type, grouped
field set): graphql-core memoizes the grouped field sets of a request, so a list's items share
one. Middleware (a schema extension with a `resolve` hook) turns the loop off.

Anything unusual in the values abandons the loop: None for a non-null field, an awaitable, an
exception as a value, a value its scalar or enum refuses, a list that is not a list or tuple
(a generator read once could not be read again). The object is then completed by graphql-core
itself, from the start. Reading plain attributes has no effect, so that pass sees the same
values and reports errors with graphql-core's own paths, messages and null propagation.
tests/test_execution.py compares both executors on every registered document and on broken
values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLBoolean,
    GraphQLFloat,
    GraphQLInt,
    GraphQLLeafType,
    GraphQLList,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLString,
    Undefined,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.pyutils import Path
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.field import StrawberryField

Complete = Callable[[Any], Any]
# (response name, attribute read, completion); attribute None: the value is the source itself
Fields = tuple[tuple[str, str | None, Complete], ...]
Awaitable = Callable[[Any], bool]

FILTERS = frozenset({"skip", "include"})
INT_RANGE = range(-(2**31), 2**31)  # GraphQL's Int: 32-bit signed
SYNC = frozenset({int, float, str, bool})  # never awaitable nor an exception: no check


class Abandon(Exception):
    """A value the loop leaves to graphql-core."""


def _present(value: Any, non_null: bool, is_awaitable: Awaitable) -> bool:
    """Whether `value` is to be completed (False: it is null); Abandon when it is something
    graphql-core must see (null for a non-null field, an awaitable, an exception)."""
    if value is None or value is Undefined:
        if non_null:
            raise Abandon
        return False
    if type(value) not in SYNC and (is_awaitable(value) or isinstance(value, Exception)):
        raise Abandon
    return True


def _coercion(type_: GraphQLLeafType) -> Complete:
    """The leaf type's output coercion, with the values it returns as they are taken first:
    an int in Int's range, a finite float, a str, a bool (anything else goes to graphql-core's
    own, which accepts or refuses it as always)."""
    coerce = type_.coerce_output_value
    if type_ is GraphQLInt:
        return lambda value: value if type(value) is int and value in INT_RANGE else coerce(value)
    if type_ is GraphQLFloat:

        def finite(value: Any) -> Any:  # value - value is 0.0 for a finite float only
            return value if type(value) is float and value - value == 0.0 else coerce(value)

        return finite
    if type_ is GraphQLString:
        return lambda value: value if type(value) is str else coerce(value)
    if type_ is GraphQLBoolean:
        return lambda value: value if type(value) is bool else coerce(value)
    return coerce


def _leaf(type_: GraphQLLeafType, non_null: bool, is_awaitable: Awaitable) -> Complete:
    coerce = _coercion(type_)

    def complete(value: Any) -> Any:
        if not _present(value, non_null, is_awaitable):
            return None
        coerced = coerce(value)
        if coerced is None or coerced is Undefined:
            raise Abandon
        return coerced

    # The values served as they are, checked in one call (most leaves of a response).
    if type_ is GraphQLFloat:

        def plain_float(value: Any) -> Any:
            return value if type(value) is float and value - value == 0.0 else complete(value)

        return plain_float
    if type_ is GraphQLInt:
        return lambda value: value if type(value) is int and value in INT_RANGE else complete(value)
    if type_ is GraphQLString:
        return lambda value: value if type(value) is str else complete(value)
    if type_ is GraphQLBoolean:
        return lambda value: value if type(value) is bool else complete(value)
    if getattr(type_, "serialize", None) is int:  # a scalar serialized by int() (Cents)
        return lambda value: value if type(value) is int else complete(value)
    return complete


def _list(item: Complete, non_null: bool, is_awaitable: Awaitable) -> Complete:
    def complete(value: Any) -> Any:
        if not _present(value, non_null, is_awaitable):
            return None
        if type(value) not in (list, tuple):
            raise Abandon
        return [item(element) for element in value]

    return complete


def _object(fields: Fields, non_null: bool, is_awaitable: Awaitable) -> Complete:
    def complete(value: Any) -> Any:
        if not _present(value, non_null, is_awaitable):
            return None
        return completed(fields, value)

    return complete


def completed(fields: Fields, source: Any) -> dict[str, Any]:
    return {
        name: complete(source if attribute is None else getattr(source, attribute))
        for name, attribute, complete in fields
    }


def _typename(name: str) -> Complete:
    return lambda _: name


def attribute(parent_type: GraphQLObjectType, name: str) -> str | None:
    """The attribute a plain field of `parent_type` reads; None if the field is not plain."""
    field = parent_type.fields.get(name)
    if field is None or field.args:
        return None
    definition = field.extensions.get("strawberry-definition")
    resolve = field.resolve
    basic = (
        getattr(resolve, "_is_default", False)
        and getattr(resolve, "__name__", None) == "_get_basic_result"
    )
    if not basic or not isinstance(definition, StrawberryField):
        return None
    if not definition.is_basic_field or definition.default_resolver is not getattr:
        return None
    return definition.python_name


def _simple(details: FieldDetailsList) -> bool:
    """No directive but @skip/@include, no @defer, no fragment variables."""
    return all(
        detail.defer_usage is None
        and detail.fragment_variable_values is None
        and all(directive.name.value in FILTERS for directive in detail.node.directives or ())
        for detail in details
    )


class PlainExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, completing plain objects in one loop (see the module doc)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._plans: dict[tuple[GraphQLObjectType, int], tuple[GroupedFieldSet, Fields | None]]
        self._plans = {}
        middleware = self.middleware_manager
        self._plain = middleware is None or not middleware.middlewares

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        if self._plain and position_context is None:
            fields = self.plan(parent_type, grouped_field_set)
            if fields is not None:
                with contextlib.suppress(Exception):  # graphql-core completes it, errors and all
                    return completed(fields, source_value)
        return super().execute_fields(
            parent_type, source_value, path, grouped_field_set, position_context
        )

    def complete_list_value(
        self,
        return_type: GraphQLList[GraphQLOutputType],
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        """A list of plain items (a series' points) in one loop too, not item by item."""
        if (
            self._plain
            and position_context is None
            and type(result) in (list, tuple)
            and _simple(field_details_list)
        ):
            item = self._completion(return_type.of_type, field_details_list)
            if item is not None:
                with contextlib.suppress(Exception):  # graphql-core completes it, as above
                    return [item(element) for element in result]
        return super().complete_list_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def plan(self, parent_type: GraphQLObjectType, grouped: GroupedFieldSet) -> Fields | None:
        """The loop's plan of a selection of `parent_type`, None if a field is not plain."""
        key = (parent_type, id(grouped))  # the set kept alive with it: its id stays its own
        if key not in self._plans:
            self._plans[key] = (grouped, self._fields(parent_type, grouped))
        return self._plans[key][1]

    def _fields(self, parent_type: GraphQLObjectType, grouped: GroupedFieldSet) -> Fields | None:
        fields: list[tuple[str, str | None, Complete]] = []
        for response_name, details in grouped.items():
            if not _simple(details):
                return None
            name = details[0].node.name.value
            if name == "__typename":
                fields.append((response_name, None, _typename(parent_type.name)))
                continue
            read = attribute(parent_type, name)
            if read is None:
                return None
            complete = self._completion(parent_type.fields[name].type, details)
            if complete is None:
                return None
            fields.append((response_name, read, complete))
        return tuple(fields)

    def _completion(self, type_: GraphQLOutputType, details: FieldDetailsList) -> Complete | None:
        """How the loop completes a value of `type_`; None where graphql-core must."""
        non_null = is_non_null_type(type_)
        named: GraphQLOutputType = type_.of_type if is_non_null_type(type_) else type_
        if is_leaf_type(named):
            return _leaf(named, non_null, self.is_awaitable)
        if is_list_type(named):
            item = self._completion(named.of_type, details)
            return None if item is None else _list(item, non_null, self.is_awaitable)
        if is_object_type(named) and named.is_type_of is None:
            grouped, defers, _ = self.collect_subfields(named, details)
            fields = None if defers else self.plan(named, grouped)
            return None if fields is None else _object(fields, non_null, self.is_awaitable)
        return None
