"""The schema's executor (schema/execution.py) against graphql-core's own: every registered
document on the demo company, and broken values on a small schema of plain types, give the
same `data` and the same errors (messages, paths, locations, extensions) both ways.

The demo lives in a database of its own (tests/demo_data.py), made by this module: no other
test's data or order shows here. The broken-value schema has synchronous resolvers only, so an
error never leaves a sibling coroutine unawaited.

The view's JSON (orjson, schema/security.py) is checked against json.dumps at the end."""

from __future__ import annotations

import datetime
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from enum import Enum
from typing import Any, ClassVar, cast

import pytest
import strawberry
from graphql import GraphQLObjectType, OperationDefinitionNode, parse
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.metrics.service import MetricsEngine
from app.security.persisted import Document, load_documents
from resolvers.context import Context
from schema.execution import PlainExecutor, attribute
from schema.root import build_schema
from schema.security import encode_json
from tests.conftest import session_engine
from tests.demo_data import PINNED, demo_database

# both forms of each: as written, and as Apollo's client sends it (with __typename)
DOCUMENTS = sorted(load_documents().values(), key=lambda d: (d.name, d.sha256))
START, END = datetime.date(2023, 1, 1), PINNED - datetime.timedelta(days=1)


class Recording(PlainExecutor):
    """The executor, noting which object types it completed in one loop."""

    looped: ClassVar[set[str]] = set()

    def plan(self, parent_type: Any, grouped: Any) -> Any:
        fields = super().plan(parent_type, grouped)
        if fields is not None:
            Recording.looped.add(parent_type.name)
        return fields


def schemas() -> tuple[strawberry.Schema, strawberry.Schema]:
    """The server's schema with the loop (recording), and the same with graphql-core's own."""
    fast, reference = build_schema(), build_schema()
    fast.execution_context_class = Recording
    reference.execution_context_class = StrawberryGraphQLCoreExecutionContext
    return fast, reference


async def both(
    pair: Sequence[strawberry.Schema],
    query: str,
    variables: dict[str, Any] | None = None,
    context: Any = None,
) -> tuple[Any, ...]:
    """(data, formatted errors) of each schema of `pair`; they must be equal."""
    answers = []
    for schema in pair:
        result = await schema.execute(query, variable_values=variables, context_value=context)
        answers.append((result.data, [error.formatted for error in result.errors or []]))
    assert answers[0] == answers[1]
    return answers[0]


# --- every registered document on the demo company ---------------------------------------------


@pytest.fixture(scope="module")
def demo(database: str) -> Iterator[str]:
    with demo_database(database) as url:
        yield url


@pytest.fixture(scope="module")
async def demo_metrics(demo: str) -> AsyncIterator[MetricsEngine]:
    engine = session_engine(demo)
    yield MetricsEngine(engine)
    await engine.dispose()


def declared(document: Document) -> set[str]:
    [operation] = [
        node
        for node in parse(document.text).definitions
        if isinstance(node, OperationDefinitionNode)
    ]
    return {variable.variable.name.value for variable in operation.variable_definitions or ()}


async def ids(pair: Sequence[strawberry.Schema], context: Context) -> dict[str, str]:
    query = "{ usageMetrics { id } customers(first: 1, sort: MRR) { edges { node { id } } } }"
    data, errors = await both(pair, query, context=context)
    assert not errors
    metrics = [metric["id"] for metric in data["usageMetrics"]]
    assert len(metrics) >= 2, "the demo defines usage metrics"
    customer = data["customers"]["edges"][0]["node"]["id"]
    return {"metric": metrics[0], "other": metrics[1], "customer": customer}


def variables(document: Document, found: dict[str, str]) -> dict[str, Any]:
    """Values for the variables `document` declares (what the dashboard and the CLI send)."""
    usage = "Usage" in (document.name or "") and document.name != "DashboardCustomerUsage"
    values: dict[str, Any] = {
        "start": START.isoformat(),
        "end": END.isoformat(),
        "at": END.isoformat(),
        "id": found["metric"] if usage else found["customer"],
        "customerId": found["customer"],
        "timeframe": {"from": "2026-01-01T00:00:00Z", "to": "2026-11-01T00:00:00Z"},
        "m0": found["metric"],
        "use0": True,
        "m1": found["other"],
        "use1": True,
        "logo": True,
        "top": 3,
    }
    if "Breakdown" in (document.name or ""):
        values["spec"] = {"dimensions": ["plan"]}
    return {name: value for name, value in values.items() if name in declared(document)}


async def test_every_registered_document_answers_the_same_both_ways(
    demo_metrics: MetricsEngine,
) -> None:
    Recording.looped.clear()
    pair = schemas()
    found = await ids(pair, Context(metrics=demo_metrics, request_id="same"))
    for document in DOCUMENTS:
        context = Context(metrics=demo_metrics, request_id="same")
        data, errors = await both(pair, document.text, variables(document, found), context)
        assert not errors, (document.name, errors)
        assert data, document.name
    # the loop did the work it is for: points, cells, steps, funnels
    assert {"Point", "CohortCell", "WaterfallStep", "TrialFunnel"} <= Recording.looped


# --- which fields are plain --------------------------------------------------------------------


def test_declared_fields_are_plain_and_resolvers_are_not() -> None:
    types = build_schema()._schema.type_map
    point, series, customer = (
        cast(GraphQLObjectType, types[name]) for name in ("Point", "Series", "Customer")
    )
    assert all(attribute(point, name) is not None for name in point.fields)
    assert attribute(point, "endDate") == "end_date"
    assert attribute(series, "currency") == "currency"
    assert attribute(series, "points") is None
    assert attribute(customer, "mrr") is None


# --- broken values -----------------------------------------------------------------------------


@strawberry.enum
class Shade(Enum):
    LIGHT = "light"
    DARK = "dark"


@strawberry.type
class Leaf:
    name: str
    count: int | None = None
    shade: Shade | None = None
    tags: list[str] | None = None
    day: datetime.date | None = None
    ratio: float | None = None
    flag: bool | None = None


class Unreadable:
    """A source whose `name` raises when read (a plain field over a property)."""

    count = None
    shade = None
    tags = None
    day = None
    ratio = None
    flag = None

    @property
    def name(self) -> str:
        raise ValueError("cannot read the name")


@strawberry.type
class Branch:
    leaf: Leaf
    leaves: list[Leaf]
    maybe: Leaf | None = None

    @strawberry.field
    def broken(self) -> Leaf | None:
        raise RuntimeError("a nested resolver failed")

    @strawberry.field
    def unreadable(self) -> Leaf | None:
        return Unreadable()  # type: ignore[return-value]


def fine(name: str = "a") -> Leaf:
    day = datetime.date(2024, 2, 29)
    return Leaf(
        name=name, count=1, shade=Shade.DARK, tags=["x", "é"], day=day, ratio=0.5, flag=True
    )


def branches(leaf: Leaf) -> list[Branch]:
    return [Branch(leaf=fine(), leaves=[fine("b"), leaf]), Branch(leaf=leaf, leaves=[], maybe=leaf)]


@strawberry.type
class Garden:
    @strawberry.field
    def healthy(self) -> list[Branch]:
        return branches(fine("c"))

    @strawberry.field
    def null_name(self) -> list[Branch]:
        return branches(Leaf(name=None))  # type: ignore[arg-type]

    @strawberry.field
    def bad_shade(self) -> list[Branch]:
        return branches(Leaf(name="d", shade="PURPLE"))  # type: ignore[arg-type]

    @strawberry.field
    def bad_count(self) -> list[Branch]:
        return branches(Leaf(name="e", count=2**40))

    @strawberry.field
    def text_tags(self) -> list[Branch]:
        return branches(Leaf(name="f", tags="not a list"))  # type: ignore[arg-type]

    @strawberry.field
    def generated_tags(self) -> list[Branch]:
        return branches(Leaf(name="g", tags=(tag for tag in ["p", "q"])))  # type: ignore[arg-type]

    @strawberry.field
    def null_leaves(self) -> list[Branch]:
        return [Branch(leaf=fine(), leaves=None)]  # type: ignore[arg-type]

    @strawberry.field
    def none_in_leaves(self) -> list[Branch]:
        return [Branch(leaf=fine(), leaves=[fine(), None])]  # type: ignore[list-item]

    # leaves that graphql-core's scalars refuse, and some they accept in another type
    @strawberry.field
    def infinite_ratio(self) -> list[Branch]:
        return branches(Leaf(name="h", ratio=float("inf")))

    @strawberry.field
    def nan_ratio(self) -> list[Branch]:
        return branches(Leaf(name="i", ratio=float("nan")))

    @strawberry.field
    def fractional_count(self) -> list[Branch]:
        return branches(Leaf(name="j", count=1.5))  # type: ignore[arg-type]

    @strawberry.field
    def lowest_count(self) -> list[Branch]:
        return branches(Leaf(name="k", count=-(2**31)))

    @strawberry.field
    def below_lowest_count(self) -> list[Branch]:
        return branches(Leaf(name="l", count=-(2**31) - 1))

    @strawberry.field
    def whole_float_count(self) -> list[Branch]:
        return branches(Leaf(name="m", count=2.0))  # type: ignore[arg-type]

    @strawberry.field
    def true_count(self) -> list[Branch]:
        return branches(Leaf(name="n", count=True))

    @strawberry.field
    def int_ratio_and_flag(self) -> list[Branch]:
        return branches(Leaf(name="o", ratio=3, flag=1))  # type: ignore[arg-type]

    @strawberry.field
    def number_name(self) -> list[Branch]:
        return branches(Leaf(name=12))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def garden() -> tuple[strawberry.Schema, strawberry.Schema]:
    fast = strawberry.Schema(query=Garden, execution_context_class=Recording)
    return fast, strawberry.Schema(query=Garden)


EVERYTHING = """
fragment Named on Leaf { name __typename }
query Everything($yes: Boolean!, $no: Boolean!) {
  %s {
    __typename
    leaf { ...Named count shade tags day ratio flag also: name }
    leaves { ... on Leaf { name shade } count @include(if: $yes) day @skip(if: $yes) }
    maybe { ...Named tags @include(if: $no) }
    twice: leaf { name }
  }
}
"""
ROOTS = [
    "healthy",
    "nullName",
    "badShade",
    "badCount",
    "textTags",
    "generatedTags",
    "nullLeaves",
    "noneInLeaves",
    "infiniteRatio",
    "nanRatio",
    "fractionalCount",
    "lowestCount",
    "belowLowestCount",
    "wholeFloatCount",
    "trueCount",
    "intRatioAndFlag",
    "numberName",
]
WITHOUT_ERRORS = {
    "healthy",
    "generatedTags",
    "lowestCount",
    "wholeFloatCount",
    "trueCount",
    "intRatioAndFlag",
    "numberName",
}


@pytest.mark.parametrize("root", ROOTS)
@pytest.mark.parametrize("flags", [(True, False), (False, True)])
async def test_broken_values_answer_the_same_both_ways(
    garden: tuple[strawberry.Schema, strawberry.Schema], root: str, flags: tuple[bool, bool]
) -> None:
    variables = {"yes": flags[0], "no": flags[1]}
    _, errors = await both(garden, EVERYTHING % root, variables)
    assert (errors == []) == (root in WITHOUT_ERRORS), errors


async def test_errors_of_nested_resolvers_answer_the_same_both_ways(
    garden: tuple[strawberry.Schema, strawberry.Schema],
) -> None:
    query = "{ healthy { leaf { name } broken { name } unreadable { name count } } }"
    data, errors = await both(garden, query)
    assert [error["path"] for error in errors] == [
        ["healthy", 0, "broken"],
        ["healthy", 0, "unreadable", "name"],
        ["healthy", 1, "broken"],
        ["healthy", 1, "unreadable", "name"],
    ]
    assert data["healthy"][0]["leaf"] == {"name": "a"}


async def test_a_healthy_selection_is_completed_by_the_loop(
    garden: tuple[strawberry.Schema, strawberry.Schema],
) -> None:
    Recording.looped.discard("Branch")
    data, _ = await both(garden, EVERYTHING % "healthy", {"yes": True, "no": False})
    assert "Branch" in Recording.looped
    assert data["healthy"][0]["leaves"][1] == {"name": "c", "shade": "DARK", "count": 1}


# --- the response's JSON -----------------------------------------------------------------------

ODD = {
    "data": {
        "name": 'Zoë 東京 \u2028 "quoted" \\ \n',
        "ratio": [0.1, 1e-05, 1e16, 1.5e300, -0.0, 123456789.123, 2.5e-320],
        "cents": [2**53 + 1, -(2**63), 2**64 - 1],
        "nested": [{"a": None, "b": True}, []],
    },
    "errors": [{"message": "x", "path": ["a", 0], "extensions": {"code": "INTERNAL"}}],
}


@pytest.mark.parametrize(
    "response",
    [ODD, [ODD, {"data": None}], {"data": {"huge": 2**70}}, {"data": {"lone": "\ud800"}}],
)
def test_responses_encode_to_what_json_dumps_wrote(response: Any) -> None:
    written = json.dumps(response, separators=(",", ":"))
    assert json.loads(encode_json(response)) == json.loads(written)
