"""A usage event as sent (`{id, customer, name, timestamp, properties, product}`), checked.

Each event is checked on its own: a bad one is rejected with its reason and does not stop the
others. Timestamps are ISO 8601 (UTC when they carry no offset) from 2000-01-01 up to a day
ahead of the server's clock, which also bounds the monthly partitions an ingest can create.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass
from typing import Any

MAX_TEXT = 200
MAX_PROPERTIES_BYTES = 16_384
FIRST_TIMESTAMP = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
AHEAD = datetime.timedelta(days=1)
SURROGATE = re.compile("[\ud800-\udfff]")
ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
SHAPE = "an event is a JSON object {id, customer, name, timestamp, properties, product}"


@dataclass(frozen=True)
class Event:
    id: str
    customer: str
    name: str
    ts: datetime.datetime
    properties: dict[str, Any]
    properties_json: str
    product: str | None = None


@dataclass(frozen=True)
class Rejected:
    index: int  # position in the batch (or line of the file)
    id: str | None
    reason: str


class Invalid(ValueError):
    """Why an event is rejected."""


@dataclass(frozen=True)
class Unreadable:
    """A line of a file that holds no event at all (not UTF-8, not JSON...)."""

    reason: str


def _text_problem(text: str) -> str | None:
    if text.isascii() and "\x00" not in text:
        return None
    if "\x00" in text:
        return "holds a NUL character (U+0000)"
    if SURROGATE.search(text):
        return "holds a lone UTF-16 surrogate"
    return None


def _text(raw: dict[str, Any], key: str, numbers: bool = False) -> str:
    value = raw.get(key)
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if value is None:
        raise Invalid(f"{key} is missing ({SHAPE})")
    if not isinstance(value, str):
        kinds = "a string or an integer" if numbers else "a string"
        raise Invalid(f"{key} must be {kinds}, not {type(value).__name__}")
    if not value.strip():
        raise Invalid(f"{key} is empty")
    if len(value) > MAX_TEXT:
        raise Invalid(f"{key} is longer than {MAX_TEXT} characters")
    if problem := _text_problem(value):
        raise Invalid(f"{key} {problem}")
    return value


def parse_timestamp(value: object, now: datetime.datetime) -> datetime.datetime:
    if not isinstance(value, str):
        raise Invalid("timestamp must be an ISO 8601 date-time string, e.g. 2026-11-30T12:00:00Z")
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(
            f"timestamp {value[:40]!r} is not an ISO 8601 date-time (e.g. 2026-11-30T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    if not FIRST_TIMESTAMP <= moment <= now + AHEAD:
        raise Invalid(
            f"timestamp {value} is outside the accepted range: from {FIRST_TIMESTAMP.date()} "
            "to one day after the server's clock"
        )
    return moment


def _properties(raw: dict[str, Any]) -> tuple[dict[str, Any], str]:
    value = raw.get("properties")
    if value is None:
        return {}, "{}"
    if not isinstance(value, dict):
        raise Invalid(f"properties must be a JSON object, not {type(value).__name__}")
    try:
        text = ENCODER.encode(value)
    except ValueError:
        raise Invalid("properties hold a number out of range (NaN or infinite)") from None
    if problem := _text_problem(text):
        raise Invalid(f"properties {problem}")
    if len(text) > MAX_PROPERTIES_BYTES:
        raise Invalid(f"properties are larger than {MAX_PROPERTIES_BYTES:,} characters of JSON")
    return value, text


def parse_event(raw: object, now: datetime.datetime) -> Event:
    """The event in `raw`; `Invalid` says what is wrong with it."""
    if isinstance(raw, Unreadable):
        raise Invalid(raw.reason)
    if not isinstance(raw, dict):
        raise Invalid(SHAPE)
    ident = _text(raw, "id", numbers=True)
    customer = _text(raw, "customer", numbers=True)
    name = _text(raw, "name")
    ts = parse_timestamp(raw.get("timestamp"), now)
    properties, text = _properties(raw)
    product = _text(raw, "product") if raw.get("product") is not None else None
    return Event(ident, customer, name, ts, properties, text, product)


def raw_id(raw: object) -> str | None:
    """The id of a (possibly invalid) event, to name it in a rejection."""
    ident = raw.get("id") if isinstance(raw, dict) else None
    return str(ident)[:MAX_TEXT] if isinstance(ident, str | int) else None


def month_of(moment: datetime.datetime) -> datetime.date:
    return moment.astimezone(datetime.UTC).date().replace(day=1)
