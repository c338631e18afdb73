"""`POST /events`: a batch of usage events over HTTP, with a `write` key."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from app.tables import usage_event
from app.usage.locks import lock_definitions
from tests.edge import bearer, codes, new_key, real_app, serving


def events(count: int, prefix: str = "e") -> list[dict[str, object]]:
    return [
        {
            "id": f"{prefix}{i}",
            "customer": f"cust{i % 3}",
            "name": "api_call",
            "timestamp": "2026-10-01T12:00:00Z",
            "properties": {"tokens": i},
        }
        for i in range(count)
    ]


async def test_a_batch_is_stored_with_its_bad_events_listed(
    database_url: str, engine: AsyncEngine
) -> None:
    key = await new_key(engine, "write")
    batch = [*events(3), {"id": "bad", "customer": "cust0", "name": "api_call"}]
    nul = events(2, prefix="nul")
    nul[0]["properties"] = {"\x00": 1}  # sent as the JSON escape \u0000, which jsonb refuses
    async with serving(real_app(database_url)) as client:
        first = await client.post("/events", json=batch, headers=bearer(key))
        again = await client.post("/events?source=events", json=batch, headers=bearer(key))
        with_nul = await client.post("/events", json=nul, headers=bearer(key))
    assert (with_nul.status_code, with_nul.json()["accepted"]) == (200, 1)
    assert with_nul.json()["errors"] == [
        {
            "index": 0,
            "id": "nul0",
            "reason": "properties hold a NUL character (U+0000) in a key or a text",
        }
    ]
    assert first.status_code == 200
    assert first.json() == {
        "accepted": 3,
        "duplicates": 0,
        "rejected": 1,
        "errors": [
            {
                "index": 3,
                "id": "bad",
                "reason": "timestamp must be an ISO 8601 date-time string, e.g. "
                "2026-11-30T12:00:00Z",
            }
        ],
    }
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 3)


async def test_the_whole_request_is_refused_with_a_coded_error(
    database_url: str, engine: AsyncEngine
) -> None:
    writer, reader = await new_key(engine, "write"), await new_key(engine, "read")
    async with serving(real_app(database_url)) as client:
        malformed = await client.post("/events", content=b'[{"id": "x",', headers=bearer(writer))
        an_object = await client.post("/events", json={"id": "x"}, headers=bearer(writer))
        too_many = await client.post("/events", json=events(10_001), headers=bearer(writer))
        just_enough = await client.post("/events", json=events(10_000), headers=bearer(writer))
        keyless = await client.post("/events", json=events(1))
        read_only = await client.post("/events", json=events(1), headers=bearer(reader))
    assert malformed.status_code == 400
    assert codes(malformed.json()) == ["BAD_USER_INPUT"]
    assert "the body is not JSON" in malformed.json()["errors"][0]["message"]
    accepted = "send a JSON array of at most 10,000 events, each an object"
    assert accepted in malformed.json()["errors"][0]["message"]  # what is, as for an object
    assert an_object.status_code == 400
    assert "the body is not a JSON array" in an_object.json()["errors"][0]["message"]
    assert accepted in an_object.json()["errors"][0]["message"]
    assert too_many.status_code == 413
    assert codes(too_many.json()) == ["PAYLOAD_TOO_LARGE"]
    assert too_many.json()["errors"][0]["message"] == (
        "at most 10,000 events per request; this one has 10,001: split it into several requests"
    )
    assert just_enough.status_code == 200
    assert just_enough.json()["accepted"] == 10_000
    assert keyless.status_code == 401
    assert read_only.status_code == 403
    assert codes(read_only.json()) == ["FORBIDDEN"]


async def test_ingest_events_mutation(database_url: str, engine: AsyncEngine) -> None:
    key = await new_key(engine, "write")
    mutation = """mutation($events: [UsageEventInput!]!) { ingestEvents(events: $events) {
        accepted duplicates rejected errors { index id reason } } }"""
    batch = [*events(2), {**events(1, "x")[0], "timestamp": "soon"}]
    async with serving(real_app(database_url)) as client:
        response = await client.post(
            "/graphql",
            content=json.dumps({"query": mutation, "variables": {"events": batch}}),
            headers={**bearer(key), "Content-Type": "application/json"},
        )
    found = response.json()["data"]["ingestEvents"]
    assert (found["accepted"], found["duplicates"], found["rejected"]) == (2, 0, 1)
    assert found["errors"][0]["index"] == 2
    assert "'soon' is not an ISO 8601 date-time" in found["errors"][0]["reason"]


async def test_the_mutation_takes_as_many_events_as_post_events(
    database_url: str, engine: AsyncEngine
) -> None:
    key = await new_key(engine, "write")
    mutation = """mutation($events: [UsageEventInput!]!) { ingestEvents(events: $events) {
        accepted duplicates rejected } }"""
    headers = {**bearer(key), "Content-Type": "application/json"}

    def body(batch: list[dict[str, object]]) -> bytes:
        return json.dumps({"query": mutation, "variables": {"events": batch}}).encode()

    async with serving(real_app(database_url)) as client:
        just_enough = await client.post("/graphql", content=body(events(10_000)), headers=headers)
        too_many = await client.post("/graphql", content=body(events(10_001, "t")), headers=headers)
    assert just_enough.json() == {
        "data": {"ingestEvents": {"accepted": 10_000, "duplicates": 0, "rejected": 0}}
    }
    assert codes(too_many.json()) == ["BAD_USER_INPUT"]
    assert too_many.json()["errors"][0]["message"] == (
        "argument events has 10,001 items; at most 10,000"
    )
    assert "data" not in too_many.json() or too_many.json()["data"] is None


async def test_a_batch_held_back_past_the_statement_timeout_is_a_503_to_retry(
    database_url: str, engine: AsyncEngine
) -> None:
    """A usage metric being defined holds stores back (app/usage/definitions.py) for as long
    as its rollup takes to build: a batch that waits past the statement timeout was a 500;
    it is a 503 to retry, nothing of it stored, and stored once sent again."""
    key = await new_key(engine, "write")
    async with serving(real_app(database_url, statement_timeout_ms=300)) as client:
        async with engine.begin() as connection:  # a definition change in progress
            await lock_definitions(connection)
            held = await client.post("/events", json=events(3), headers=bearer(key))
        again = await client.post("/events", json=events(3), headers=bearer(key))
    assert held.status_code == 503
    assert held.headers["Retry-After"] == "5"
    assert codes(held.json()) == ["TIMEOUT"]
    assert "was rolled back: send it again shortly" in held.json()["errors"][0]["message"]
    assert (again.status_code, again.json()["accepted"]) == (200, 3)


OFFSETS = (
    "accepted offsets are less than 16 hours from UTC, -15:59 to +15:59 "
    "(e.g. 2026-11-30T12:00:00Z or 2026-11-30T12:00:00+01:00)"
)
OUTSIDE = "is outside the accepted range: from 2000-01-01 to one day after the server's clock"
BAD_TIMESTAMPS = [
    ("2026-11-30T12:00:00+16:00", f"has the UTC offset +16:00; {OFFSETS}"),
    ("2026-11-30T12:00:00-16:00", f"has the UTC offset -16:00; {OFFSETS}"),
    ("2026-11-30T12:00:00+23:59", f"has the UTC offset +23:59; {OFFSETS}"),
    ("2026-11-30T12:00:00.5-23:59", f"has the UTC offset -23:59; {OFFSETS}"),
    ("2026-11-30T12:00:00+20:00:01", f"has the UTC offset +20:00:01; {OFFSETS}"),
    ("0001-01-01T00:00:00+01:00", OUTSIDE),
    ("9999-12-31T23:59:59-01:00", OUTSIDE),
]


async def stored_ids(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as connection:
        found = await connection.scalars(sa.select(usage_event.c.event_id).order_by("event_id"))
        return list(found)


def with_bad_timestamp(timestamp: str) -> list[dict[str, object]]:
    """A good event, one with `timestamp`, and a good one at an offset PostgreSQL reads."""
    good, bad, late = events(3)
    return [good, {**bad, "timestamp": timestamp}, {**late, "timestamp": "2026-11-30T12:00+15:59"}]


@pytest.mark.parametrize(("timestamp", "reason"), BAD_TIMESTAMPS)
async def test_a_timestamp_postgresql_or_python_cannot_hold_is_rejected_alone(
    database_url: str, engine: AsyncEngine, timestamp: str, reason: str
) -> None:
    """An offset of 16 hours or more (PostgreSQL refuses it) or a moment beyond Python's
    years once made UTC was a 500, losing the whole batch: the event is rejected with its
    reason, the others are stored."""
    key = await new_key(engine, "write")
    async with serving(real_app(database_url)) as client:
        sent = await client.post("/events", json=with_bad_timestamp(timestamp), headers=bearer(key))
    assert sent.status_code == 200
    assert sent.json() == {
        "accepted": 2,
        "duplicates": 0,
        "rejected": 1,
        "errors": [{"index": 1, "id": "e1", "reason": f"timestamp {timestamp} {reason}"}],
    }
    assert await stored_ids(engine) == ["e0", "e2"]


@pytest.mark.parametrize(("timestamp", "reason"), BAD_TIMESTAMPS)
async def test_the_mutation_rejects_such_a_timestamp_alone_too(
    database_url: str, engine: AsyncEngine, timestamp: str, reason: str
) -> None:
    key = await new_key(engine, "write")
    mutation = """mutation($events: [UsageEventInput!]!) { ingestEvents(events: $events) {
        accepted rejected errors { index id reason } } }"""
    variables = {"events": with_bad_timestamp(timestamp)}
    async with serving(real_app(database_url)) as client:
        sent = await client.post(
            "/graphql", json={"query": mutation, "variables": variables}, headers=bearer(key)
        )
    assert sent.json() == {
        "data": {
            "ingestEvents": {
                "accepted": 2,
                "rejected": 1,
                "errors": [{"index": 1, "id": "e1", "reason": f"timestamp {timestamp} {reason}"}],
            }
        }
    }
    assert await stored_ids(engine) == ["e0", "e2"]


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("source=%00", "source holds a control character (U+0000 at character 1)"),
        ("source=ev%00ents", "source holds a control character (U+0000 at character 3)"),
        ("source=a%09b", "source holds a control character (U+0009 at character 2)"),
        ("source=a%0A", "source holds a control character (U+000A at character 2)"),
        ("source=%7F", "source holds a control character (U+007F at character 1)"),
        ("source=a%C2%85", "source holds a control character (U+0085 at character 2)"),
        ("source=" + "s" * 101, "source must be 1-100 characters"),
        ("source=%20", "source must be 1-100 characters"),
    ],
)
async def test_a_source_that_cannot_name_one_is_a_400_naming_it(
    database_url: str, engine: AsyncEngine, query: str, problem: str
) -> None:
    key = await new_key(engine, "write")
    async with serving(real_app(database_url)) as client:
        refused = await client.post(f"/events?{query}", json=events(2), headers=bearer(key))
        empty = await client.post(f"/events?{query}", json=[], headers=bearer(key))
    for response in (refused, empty):
        assert response.status_code == 400
        assert codes(response.json()) == ["BAD_USER_INPUT"]
        [error] = response.json()["errors"]
        assert error["message"].startswith(problem)
        assert "(default 'events')" in error["message"]
    assert await stored_ids(engine) == []


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"id": "e\x00"}, "id holds a NUL character (U+0000)"),
        ({"customer": "\x00"}, "customer holds a NUL character (U+0000)"),
        ({"name": "api\x00call"}, "name holds a NUL character (U+0000)"),
        ({"product": "pro\x00"}, "product holds a NUL character (U+0000)"),
        ({"properties": {"mo\x00del": "a"}}, "properties hold a NUL character (U+0000) in a key"),
        ({"properties": {"model": "\x00"}}, "properties hold a NUL character (U+0000) in a key"),
        ({"properties": {"a": [{"b": "\x00"}]}}, "properties hold a NUL character (U+0000) in"),
    ],
)
async def test_a_nul_in_any_text_of_an_event_rejects_that_event(
    database_url: str, engine: AsyncEngine, change: dict[str, object], reason: str
) -> None:
    """PostgreSQL's text and jsonb cannot hold U+0000: each text an event stores is checked."""
    key = await new_key(engine, "write")
    good, bad = events(2)
    async with serving(real_app(database_url)) as client:
        sent = await client.post("/events", json=[good, {**bad, **change}], headers=bearer(key))
    assert sent.status_code == 200
    assert (sent.json()["accepted"], sent.json()["rejected"]) == (1, 1)
    [error] = sent.json()["errors"]
    assert (error["index"], error["reason"][: len(reason)]) == (1, reason)
    assert await stored_ids(engine) == ["e0"]
