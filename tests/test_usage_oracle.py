"""Usage metrics against a second, independent computation (METRICS.md 9, docs/metrics.md 9).

A random stream of events (five customers, ten weeks, every aggregation's corner: negative and
fractional numbers, missing and null properties, the number 1 and the text "1", equal
timestamps, repeated ids with other content, batches sent out of time order) is ingested,
and every value the API gives is held against `expected`: a plain Python reading of the
definitions over the events it kept (the first of each id), with `Decimal` arithmetic.

Each metric exists three ways: SIMPLE, INDEXED defined before the events (its rollup kept
as batches arrive, late ones included) and INDEXED defined after them (its rollup built at
creation); COMPOSITE metrics combine them (decimal sums, quotients, zero denominators). Values are read per customer over timeframes that start and end at midnight,
mid-day, exactly on an event, or not at all; series per day, week and month, in total and
per customer; and the ranking of customers.
"""

from __future__ import annotations

import datetime
import itertools
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from app.metrics.service import MetricsEngine
from app.tables import customer
from app.usage.ingest import ingest
from tests.conftest import execute

UTC = datetime.UTC
FIRST_DAY = datetime.date(2026, 9, 24)
DAYS = 70
WHO = ("c1", "c2", "c3", "c4", "c5")
MODELS: tuple[object, ...] = ("a", "b", "A", "c", 1, "1", None)

CREATE = """mutation($input: UsageMetricInput!) { createUsageMetric(input: $input) { id } }"""
VALUES = """query($id: ID!, $customer: ID!, $timeframe: TimeframeInput) {
    usageMetricValue(id: $id, customerId: $customer, timeframe: $timeframe) { value }
    customers(first: 10) { edges { node { externalId usage(metricId: $id, timeframe: $timeframe) } } }
}"""
SERIES = """query($id: ID!, $start: Date!, $end: Date!, $interval: Interval!,
        $spec: QuerySpecInput) {
    usageSeries(id: $id, start: $start, end: $end, interval: $interval, spec: $spec) {
        points { date endDate value } breakdown { key points { date endDate value } } } }"""
TOP = """query($id: ID!, $start: Date!, $end: Date!) {
    usageTop(id: $id, start: $start, end: $end, first: 10) { customerId value } }"""


@dataclass(frozen=True)
class Event:
    id: str
    customer: str
    name: str
    ts: datetime.datetime
    properties: dict[str, Any]

    def sent(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "customer": self.customer,
            "name": self.name,
            "timestamp": self.ts.isoformat(),
            "properties": self.properties,
        }


@dataclass(frozen=True)
class Definition:
    name: str
    aggregation: str
    property: str | None = None
    filters: tuple[tuple[str, str, tuple[str, ...]], ...] = ()

    def given(self, query_type: str, suffix: str) -> dict[str, Any]:
        return {
            "name": f"{self.name}_{suffix}",
            "eventName": "api_call",
            "aggregation": self.aggregation,
            "property": self.property,
            "queryType": query_type,
            "filters": [{"property": p, "op": op, "values": list(v)} for p, op, v in self.filters],
        }


DEFINITIONS = [
    Definition("calls", "COUNT"),
    Definition("with_tokens", "COUNT", "tokens"),
    Definition("tokens", "SUM", "tokens"),
    Definition("least", "MIN", "tokens"),
    Definition("most", "MAX", "tokens"),
    Definition("mean", "AVG", "tokens"),
    Definition("last", "LATEST", "tokens"),
    Definition("models", "UNIQUE_COUNT", "model"),
    Definition("tokens_ab", "SUM", "tokens", (("model", "IN", ("a", "b")),)),
    Definition("big_calls", "COUNT", None, (("tokens", "GT", ("100.5",)),)),
    Definition("most_not_a", "MAX", "tokens", (("model", "NEQ", ("a",)),)),
    Definition("mean_modelled", "AVG", "tokens", (("model", "IS_NOT_NULL", ()),)),
    Definition("last_not_b", "LATEST", "tokens", (("model", "NOT_IN", ("b", "1")),)),
    Definition("models_small", "UNIQUE_COUNT", "model", (("tokens", "LTE", ("1000",)),)),
    Definition("tokens_of_a", "SUM", "tokens", (("model", "CONTAINS", ("a",)),)),
    Definition("no_model", "COUNT", None, (("model", "IS_NULL", ()),)),
    Definition("min_at_least", "MIN", "tokens", (("tokens", "GTE", ("-10",)),)),
    Definition("max_below", "MAX", "tokens", (("tokens", "LT", ("0",)),)),
]


def midnight(day: datetime.date) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(), UTC)


def _moment(rng: random.Random, stamps: list[datetime.datetime]) -> datetime.datetime:
    if stamps and rng.random() < 0.15:
        return rng.choice(stamps)  # an equal timestamp: LATEST's tie on the event id
    day = datetime.datetime.combine(FIRST_DAY, datetime.time(), UTC)
    day += datetime.timedelta(days=rng.randrange(DAYS))
    if rng.random() < 0.2:
        return day  # exactly midnight
    return day + datetime.timedelta(seconds=rng.randrange(86_400))


def _properties(rng: random.Random) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    roll = rng.random()
    if roll < 0.6:
        properties["tokens"] = rng.randint(-40, 3_000)
    elif roll < 0.85:
        properties["tokens"] = rng.randint(-4_000, 300_000) / 100  # two decimals
    elif roll < 0.92:
        properties["tokens"] = None
    model = rng.choice(MODELS)
    if model is not None or rng.random() < 0.5:  # else: no model key at all
        properties["model"] = model
    return properties


def stream(seed: int) -> tuple[list[list[Event]], list[Event]]:
    """Batches in the order sent, and the events kept (the first of each id)."""
    rng = random.Random(seed)
    stamps: list[datetime.datetime] = []
    events: list[Event] = []
    for number in range(420):
        ts = _moment(rng, stamps)
        stamps.append(ts)
        name = "api_call" if rng.random() < 0.85 else "login"
        ident = f"{rng.choice('aAbB')}{number}"
        events.append(Event(ident, rng.choice(WHO), name, ts, _properties(rng)))
    last = midnight(FIRST_DAY + datetime.timedelta(days=DAYS - 1)) + datetime.timedelta(hours=20)
    for who in WHO:  # three events at once, last and midway: LATEST's tie on the event id
        for moment, number in ((last, 900), (_moment(rng, []), 950)):
            for prefix in "aBb":
                properties = {"tokens": rng.randint(1, 99), "model": rng.choice("ab")}
                events.append(Event(f"{prefix}{number}{who}", who, "api_call", moment, properties))
    for _ in range(30):  # a repeated id with other content: the first received is kept
        copy = rng.choice(events)
        other = _properties(rng)
        events.append(Event(copy.id, rng.choice(WHO), "api_call", _moment(rng, stamps), other))
    rng.shuffle(events)  # out of time order, late events in later batches
    batches = [events[i : i + 45] for i in range(0, len(events), 45)]
    kept: dict[str, Event] = {}
    for event in events:
        kept.setdefault(event.id, event)
    return batches, list(kept.values())


def _text(value: object) -> str | None:
    """`properties->>key`: JSON null and a missing key are NULL."""
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


def _number(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return Decimal(str(value))


def _holds(event: Event, item: tuple[str, str, tuple[str, ...]]) -> bool:
    name, op, values = item
    raw = event.properties.get(name)
    text = _text(raw)
    if op in ("GT", "GTE", "LT", "LTE"):
        number, bound = _number(raw), Decimal(values[0])
        if number is None:
            return False
        compare: dict[str, Callable[[Decimal, Decimal], bool]] = {
            "GT": lambda a, b: a > b,
            "GTE": lambda a, b: a >= b,
            "LT": lambda a, b: a < b,
            "LTE": lambda a, b: a <= b,
        }
        return compare[op](number, bound)
    match op:
        case "EQ":
            return text == values[0]
        case "NEQ":
            return text != values[0]
        case "IN":
            return text is not None and text in values
        case "NOT_IN":
            return text is None or text not in values
        case "CONTAINS":
            return text is not None and values[0].lower() in text.lower()
        case "IS_NULL":
            return text is None
        case "IS_NOT_NULL":
            return text is not None
    raise AssertionError(op)


def exact(
    metric: Definition,
    events: Sequence[Event],
    start: datetime.datetime | None,
    end: datetime.datetime | None,
) -> Decimal | None:
    """The metric over `events` with start <= ts < end, by the definitions alone."""
    chosen = [
        e
        for e in events
        if e.name == "api_call"
        and (start is None or e.ts >= start)
        and (end is None or e.ts < end)
        and all(_holds(e, item) for item in metric.filters)
    ]
    if metric.property is None:
        return Decimal(len(chosen))
    if metric.aggregation in ("COUNT", "UNIQUE_COUNT"):
        texts = [t for e in chosen if (t := _text(e.properties.get(metric.property))) is not None]
        return Decimal(len(texts) if metric.aggregation == "COUNT" else len(set(texts)))
    held = [(e, n) for e in chosen if (n := _number(e.properties.get(metric.property))) is not None]
    numbers = [n for _e, n in held]
    match metric.aggregation:
        case "SUM":
            return sum(numbers, Decimal(0))
        case "MIN":
            return min(numbers) if numbers else None
        case "MAX":
            return max(numbers) if numbers else None
        case "AVG":
            return sum(numbers, Decimal(0)) / len(numbers) if numbers else None
        case "LATEST":
            if not held:
                return None
            return max(held, key=lambda pair: (pair[0].ts, pair[0].id))[1]
    raise AssertionError(metric.aggregation)


Amount = Decimal | None


def _both(function: Callable[[Decimal, Decimal], Amount]) -> Callable[[Amount, Amount], Amount]:
    return lambda a, b: None if a is None or b is None else function(a, b)


ADD = _both(lambda a, b: a + b)
SUB = _both(lambda a, b: a - b)
MUL = _both(lambda a, b: a * b)
DIV = _both(lambda a, b: None if b == 0 else a / b)


@dataclass(frozen=True)
class Composite:
    """A COMPOSITE metric: its expression as the API takes it, and the same arithmetic here
    (a missing operand or a zero denominator: no value)."""

    name: str
    expression: str
    combine: Callable[[dict[str, Amount]], Amount]
    aggregation: str = "COMPOSITE"

    @property
    def divides(self) -> bool:
        return "/" in self.expression


COMPOSITES = [
    Composite(
        "both_sums", "tokens_simple + tokens_ab_kept",
        lambda v: ADD(v["tokens_simple"], v["tokens_ab_kept"]),
    ),
    Composite(
        "per_call", "tokens_built / calls_simple",
        lambda v: DIV(v["tokens_built"], v["calls_simple"]),
    ),
    Composite(
        "spread", "(most_kept - least_simple) * 2 + 0.1",
        lambda v: ADD(MUL(SUB(v["most_kept"], v["least_simple"]), Decimal(2)), Decimal("0.1")),
    ),
    Composite(
        "last_per_bare", "-last_built / no_model_kept",
        lambda v: DIV(None if v["last_built"] is None else -v["last_built"], v["no_model_kept"]),
    ),
]  # fmt: skip
Metric = Definition | Composite


def expected(
    metric: Metric,
    events: Sequence[Event],
    start: datetime.datetime | None,
    end: datetime.datetime | None,
) -> float | None:
    """The value the API serves (a float) of the metric over these events."""
    if isinstance(metric, Definition):
        value = exact(metric, events, start, end)
    else:
        operands = {
            f"{definition.name}_{suffix}": exact(definition, events, start, end)
            for definition in DEFINITIONS
            for suffix in ("simple", "kept", "built")
        }
        value = metric.combine(operands)
    return None if value is None else float(value)


def same(got: float | None, want: float | None, metric: Metric) -> bool:
    """Equal: the float nearest the exact value, averages and quotients included. A
    COMPOSITE's quotient of quotients may differ in its last place (each operand is served
    to 34 digits)."""
    if got is None or want is None:
        return got is want
    if isinstance(metric, Composite) and metric.divides:
        return got == pytest.approx(want, rel=1e-15, abs=0)
    return got == want


def timeframes(
    rng: random.Random, events: Sequence[Event]
) -> list[tuple[datetime.datetime | None, datetime.datetime | None]]:
    """All time, whole days, cut days, bounds exactly on an event, one side open."""

    def some_day() -> datetime.datetime:
        return midnight(FIRST_DAY + datetime.timedelta(days=rng.randrange(-2, DAYS + 2)))

    def cut() -> datetime.datetime:
        return some_day() + datetime.timedelta(seconds=rng.randrange(1, 86_400))

    found: list[tuple[datetime.datetime | None, datetime.datetime | None]] = [(None, None)]
    for make in (some_day, cut, lambda: rng.choice(events).ts):
        for _ in range(4):
            a, b = sorted((make(), make()))
            found.append((a, b))
    found += [(some_day(), None), (None, cut()), (midnight(FIRST_DAY), midnight(FIRST_DAY))]
    return found


def _bound(moment: datetime.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


async def _customers(metrics: MetricsEngine) -> dict[str, str]:
    query = sa.select(customer.c.external_id, customer.c.id)
    async with metrics.engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return {str(external): str(ident) for external, ident in rows}


async def _define(metrics: MetricsEngine, query_type: str, suffix: str) -> dict[str, Metric]:
    made: dict[str, Metric] = {}
    for definition in DEFINITIONS:
        data = await execute(metrics, CREATE, {"input": definition.given(query_type, suffix)})
        made[str(data["createUsageMetric"]["id"])] = definition
    return made


@pytest.fixture(params=[11, 29], ids=["seed11", "seed29"])
async def defined(request: pytest.FixtureRequest, metrics: MetricsEngine) -> Any:
    """The stream ingested in its batches, between the two rounds of definitions."""
    batches, kept = stream(request.param)
    made = await _define(metrics, "SIMPLE", "simple")
    made |= await _define(metrics, "INDEXED", "kept")
    accepted = duplicates = 0
    for batch in batches:
        result = await ingest(metrics.engine, [event.sent() for event in batch])
        assert result.rejected == []
        accepted, duplicates = accepted + result.accepted, duplicates + result.duplicates
    assert (accepted, duplicates) == (len(kept), sum(map(len, batches)) - len(kept))
    made |= await _define(metrics, "INDEXED", "built")
    for composite in COMPOSITES:
        given = {"name": composite.name, "queryType": "COMPOSITE"}
        given["expression"] = composite.expression
        data = await execute(metrics, CREATE, {"input": given})
        made[str(data["createUsageMetric"]["id"])] = composite
    return made, kept, random.Random(request.param)


async def test_every_value_of_every_customer_over_every_kind_of_timeframe(
    metrics: MetricsEngine, defined: Any
) -> None:
    """Each customer's value, read alone (usageMetricValue) and a page at a time (the
    customers' `usage`, one statement for the page)."""
    made, kept, rng = defined
    ids = await _customers(metrics)
    frames = timeframes(rng, kept)
    wrong = []
    for ident, metric in made.items():
        for number, (start, end) in enumerate(frames):
            alone = WHO[number % len(WHO)]
            frame = {"from": _bound(start), "to": _bound(end)}
            variables = {"id": ident, "customer": ids[alone], "timeframe": frame}
            data = await execute(metrics, VALUES, variables)
            got = {
                edge["node"]["externalId"]: edge["node"]["usage"]
                for edge in data["customers"]["edges"]
            }
            assert got.keys() == set(WHO)
            got["alone"] = data["usageMetricValue"]["value"]
            for who, value in got.items():
                mine = [e for e in kept if e.customer == (alone if who == "alone" else who)]
                want = expected(metric, mine, start, end)
                if not same(value, want, metric):
                    wrong.append((metric.name, ident, who, start, end, value, want))
    assert wrong == []


def _window(point: dict[str, Any]) -> tuple[datetime.datetime, datetime.datetime]:
    first = datetime.date.fromisoformat(point["date"])
    last = datetime.date.fromisoformat(point["endDate"])
    return midnight(first), midnight(last + datetime.timedelta(days=1))


def _tiles(points: Sequence[dict[str, Any]], start: datetime.date, end: datetime.date) -> bool:
    """The periods cover [start, end] exactly, in order, without overlap."""
    windows = [_window(point) for point in points]
    joined = all(a[1] == b[0] for a, b in itertools.pairwise(windows))
    whole = windows[0][0] == midnight(start) and windows[-1][1] == midnight(end) + (
        datetime.timedelta(days=1)
    )
    return joined and whole


SERIES_CASES = [  # (interval, start, end)
    ("DAY", datetime.date(2026, 10, 3), datetime.date(2026, 10, 16)),
    ("WEEK", datetime.date(2026, 9, 20), datetime.date(2026, 11, 11)),
    ("MONTH", datetime.date(2026, 9, 1), datetime.date(2026, 12, 31)),
    ("MONTH", datetime.date(2026, 10, 7), datetime.date(2026, 11, 20)),
    ("QUARTER", datetime.date(2026, 8, 15), datetime.date(2026, 12, 31)),
    ("YEAR", datetime.date(2025, 12, 1), datetime.date(2027, 1, 31)),
]


SPECS: list[tuple[list[str], list[dict[str, Any]]]] = [  # (dimensions, filters)
    ([], []),
    (["customer"], []),
    (["property.model"], []),
    (["customer"], [{"field": "property.model", "op": "NEQ", "values": ["a"]}]),
    (["property.model"], [{"field": "property.tokens", "op": "GTE", "values": ["1500.5"]}]),
]


def _spec_holds(event: Event, filters: Sequence[dict[str, Any]]) -> bool:
    """A spec's filters on event properties, as a metric's own (`_holds`)."""
    return all(
        _holds(event, (f["field"].removeprefix("property."), f["op"], tuple(f["values"])))
        for f in filters
    )


def _in_group(
    event: Event, dimensions: Sequence[str], key: Sequence[str], who: dict[str, str]
) -> bool:
    """The event belongs to the breakdown entry `key` (a missing property: "(none)")."""
    for dimension, value in zip(dimensions, key, strict=True):
        if dimension == "customer":
            if event.customer != who[value]:
                return False
        else:
            text = _text(event.properties.get(dimension.removeprefix("property.")))
            if (text if text is not None else "(none)") != value:
                return False
    return True


async def test_every_series_point_in_total_and_per_group(
    metrics: MetricsEngine, defined: Any
) -> None:
    """Days, weeks, months, quarters and years, whole and cut at both ends; in total, per
    customer and per property value, within a spec's property filter (as text, as a number)."""
    made, kept, _rng = defined
    by_id = {ident: who for who, ident in (await _customers(metrics)).items()}
    wrong = []
    cases = [(i, m, d) for i in made.items() for m in SERIES_CASES for d in SPECS]
    for (ident, metric), (interval, start, end), (dimensions, filters) in cases:
        variables = {
            "id": ident,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "interval": interval,
            "spec": {"dimensions": dimensions, "filters": filters},
        }
        series = (await execute(metrics, SERIES, variables))["usageSeries"]
        assert _tiles(series["points"], start, end)
        within = [e for e in kept if _spec_holds(e, filters)]
        for point in series["points"]:
            want = expected(metric, within, *_window(point))
            if not same(point["value"], want, metric):
                wrong.append((metric.name, ident, "total", filters, point, want))
        for entry in series["breakdown"]:
            mine = [e for e in within if _in_group(e, dimensions, entry["key"], by_id)]
            assert entry["points"] == [] or _tiles(entry["points"], start, end)
            for point in entry["points"]:
                want = expected(metric, mine, *_window(point))
                if not same(point["value"], want, metric):
                    wrong.append((metric.name, ident, entry["key"], filters, point, want))
        if dimensions == ["customer"]:  # a customer left out has nothing to show
            for who in set(WHO) - {by_id[entry["key"][0]] for entry in series["breakdown"]}:
                mine = [e for e in within if e.customer == who]
                for point in series["points"]:
                    assert expected(metric, mine, *_window(point)) in (0, None), (metric, who)
    assert wrong == []


async def test_the_ranking_of_customers(metrics: MetricsEngine, defined: Any) -> None:
    made, kept, _rng = defined
    by_id = {ident: who for who, ident in (await _customers(metrics)).items()}
    start, end = datetime.date(2026, 10, 1), datetime.date(2026, 11, 15)
    window = (midnight(start), midnight(end) + datetime.timedelta(days=1))
    for ident, metric in made.items():
        variables = {"id": ident, "start": start.isoformat(), "end": end.isoformat()}
        ranked = (await execute(metrics, TOP, variables))["usageTop"]
        for entry in ranked:
            mine = [e for e in kept if e.customer == by_id[entry["customerId"]]]
            assert same(entry["value"], expected(metric, mine, *window), metric), metric
        values = [entry["value"] for entry in ranked if entry["value"] is not None]
        assert values == sorted(values, reverse=True), metric
