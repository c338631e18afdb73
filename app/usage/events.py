"""A usage event as sent (`{id, customer, name, timestamp, properties, product}`), checked.

Each event is checked on its own: a bad one is rejected with its reason and does not stop the
others. Timestamps are ISO 8601 (UTC when they carry no offset) from 2000-01-01 up to a day
ahead of the server's clock, which also bounds the monthly partitions an ingest can create,
with a UTC offset of less than 16 hours (-15:59 to +15:59: PostgreSQL's bound; the zones in
use run from -12:00 to +14:00). Each is made UTC and checked here: the database is never
given one it would refuse.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

MAX_TEXT = 200
MAX_PROPERTIES_BYTES = 16_384
FIRST_TIMESTAMP = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
AHEAD = datetime.timedelta(days=1)
OFFSET_LIMIT = datetime.timedelta(hours=16)  # an offset is less than this from UTC
SURROGATE = re.compile("[\ud800-\udfff]")
ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
# a JSON integer orjson would read as a float (beyond 64 bits) has 19 digits or more: a text
# holding such a run of digits goes to `json` (digits mapped to one, then one search: fast)
DIGITS = bytes.maketrans(b"0123456789", b"0000000000")
LONG_RUN = b"0" * 19
TOO_DEEP = "nested too deeply (deeper than Python's recursion limit, about 1,000 levels)"
SHAPE = "an event is a JSON object {id, customer, name, timestamp, properties, product}"
# a timestamp PostgreSQL reads as Python does (once Python has accepted it): given to COPY as
# it came, instead of written again (`isoformat` costs more than the rest of a COPY line)
PLAIN_TIMESTAMP = re.compile(
    r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)", re.ASCII
)


class Event(NamedTuple):  # a tuple: made several times faster than a frozen dataclass
    id: str
    customer: str
    name: str
    ts: datetime.datetime  # in UTC
    properties: dict[str, Any]
    properties_json: str
    product: str | None = None
    ts_text: str = ""  # `ts` as COPY reads it (`parse_timestamp`); empty: `ts.isoformat()`


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


def loads(text: bytes | str) -> Any:
    """JSON as the standard decoder reads it (NaN and Infinity refused), with orjson's speed
    where both agree: a text orjson refuses, or with an integer it would read as a float,
    goes to `json`, which raises ValueError with its usual message or reads it exactly.
    Bytes are UTF-8 (RFC 8259; a byte order mark is skipped), else UnicodeDecodeError:
    `json` would guess UTF-16 or UTF-32 from NUL bytes, so a line of binary junk was
    reported as not UTF-8 rather than not JSON."""
    raw = text.encode() if isinstance(text, str) else text
    if raw.translate(DIGITS).find(LONG_RUN) < 0:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    if isinstance(text, bytes):
        text = text.decode("utf-8-sig")
    return json.loads(text, parse_constant=_reject_constant)


def _reject_constant(constant: str) -> object:
    raise ValueError(f"{constant} is not JSON")


def _plain(text: str) -> bool:
    """ASCII without NUL, not blank, not too long: fine as it is."""
    return (
        0 < len(text) <= MAX_TEXT and text.isascii() and "\x00" not in text and not text.isspace()
    )


def _text(raw: dict[str, Any], key: str, numbers: bool = False) -> str:
    value = raw.get(key)
    if isinstance(value, str) and _plain(value):
        return value  # the usual case, checked at once
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
    """The moment of an ISO 8601 timestamp, in UTC (UTC also when it has no offset)."""
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
    elif moment.tzinfo is not datetime.UTC:
        moment = _in_utc(value, moment)
    if not FIRST_TIMESTAMP <= moment <= now + AHEAD:
        raise _outside_range(value)
    return moment


def _in_utc(value: str, moment: datetime.datetime) -> datetime.datetime:
    offset = moment.utcoffset() or datetime.timedelta()
    if abs(offset) >= OFFSET_LIMIT:
        raise Invalid(
            f"timestamp {value} has the UTC offset {_offset_text(offset)}; accepted offsets "
            "are less than 16 hours from UTC, -15:59 to +15:59 (e.g. 2026-11-30T12:00:00Z or "
            "2026-11-30T12:00:00+01:00)"
        )
    try:
        return moment.astimezone(datetime.UTC)
    except OverflowError:  # before year 1 or after 9999 in UTC
        raise _outside_range(value) from None


def _offset_text(offset: datetime.timedelta) -> str:
    """An offset as ISO 8601 writes it (+16:00), seconds included when it has some."""
    sign, size = ("-", -offset) if offset < datetime.timedelta() else ("+", offset)
    hours, rest = divmod(int(size.total_seconds()), 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{sign}{hours:02}:{minutes:02}" + (f":{seconds:02}" if seconds else "")


def _outside_range(value: str) -> Invalid:
    return Invalid(
        f"timestamp {value} is outside the accepted range: from {FIRST_TIMESTAMP.date()} "
        "to one day after the server's clock"
    )


def _finite(value: object) -> bool:
    """No NaN or infinity anywhere in a JSON value (orjson would write null for them)."""
    if isinstance(value, float):
        return value - value == 0.0
    if isinstance(value, dict):
        return all(_finite(item) for item in value.values())
    if isinstance(value, list):
        return all(_finite(item) for item in value)
    return True


def _encode(value: dict[str, Any]) -> str:
    """Compact JSON text, as ENCODER writes it (ValueError on NaN or infinity)."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:  # an integer beyond 64 bits, a lone surrogate...: the standard encoder
        return ENCODER.encode(value)
    if "null" in text and not _finite(value):  # orjson writes NaN and infinity as null
        raise ValueError("NaN or infinity")
    return text


def _holds_nul(value: object) -> bool:
    """A NUL character in a key or a string anywhere in a JSON value."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in key or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


def _nul_problem(value: dict[str, Any], text: str) -> str | None:
    """A NUL in a key or a string of the properties, which JSON text writes as the escape
    `\\u0000` (and PostgreSQL's jsonb refuses). The text is looked at first: without that
    escape in it there is none (with it, it may be a backslash written before "u0000")."""
    if "\\u0000" in text and _holds_nul(value):
        return "hold a NUL character (U+0000) in a key or a text"
    return None


def _properties(raw: dict[str, Any]) -> tuple[dict[str, Any], str]:
    value = raw.get("properties")
    if value is None:
        return {}, "{}"
    if not isinstance(value, dict):
        raise Invalid(f"properties must be a JSON object, not {type(value).__name__}")
    try:
        text = _encode(value)
        problem = _text_problem(text) or _nul_problem(value, text)
    except ValueError:
        raise Invalid("properties hold a number out of range (NaN or infinite)") from None
    except RecursionError:  # orjson reads up to 1,024 levels; writing them takes more frames
        raise Invalid(f"properties are {TOO_DEEP}") from None
    if problem:
        raise Invalid(f"properties {problem}")
    if len(text) > MAX_PROPERTIES_BYTES:
        raise Invalid(f"properties are larger than {MAX_PROPERTIES_BYTES:,} characters of JSON")
    return value, text


def _plain_texts(raw: dict[str, Any]) -> tuple[str, str, str] | None:
    """id, customer and name when all three are plain strings (`_plain`), checked at once."""
    ident, customer, name = raw.get("id"), raw.get("customer"), raw.get("name")
    if not (type(ident) is str and type(customer) is str and type(name) is str):
        return None
    joined = ident + customer + name
    if (
        0 < len(ident) <= MAX_TEXT
        and 0 < len(customer) <= MAX_TEXT
        and 0 < len(name) <= MAX_TEXT
        and joined.isascii()
        and "\x00" not in joined
        and not (ident.isspace() or customer.isspace() or name.isspace())
    ):
        return ident, customer, name
    return None


def parse_event(raw: object, now: datetime.datetime) -> Event:
    """The event in `raw`; `Invalid` says what is wrong with it."""
    if isinstance(raw, Unreadable):
        raise Invalid(raw.reason)
    if not isinstance(raw, dict):
        raise Invalid(SHAPE)
    ident, customer, name = _plain_texts(raw) or (
        _text(raw, "id", numbers=True),
        _text(raw, "customer", numbers=True),
        _text(raw, "name"),
    )
    stamp = raw.get("timestamp")
    ts = parse_timestamp(stamp, now)
    properties, text = _properties(raw)
    product = _text(raw, "product") if raw.get("product") is not None else None
    plain = stamp if isinstance(stamp, str) and PLAIN_TIMESTAMP.fullmatch(stamp) else ""
    return Event(ident, customer, name, ts, properties, text, product, plain)


def raw_id(raw: object) -> str | None:
    """The id of a (possibly invalid) event, to name it in a rejection."""
    ident = raw.get("id") if isinstance(raw, dict) else None
    return str(ident)[:MAX_TEXT] if isinstance(ident, str | int) else None


def months_of(events: Iterable[Event]) -> frozenset[datetime.date]:
    """The (UTC) months of events, whose `ts` is in UTC."""
    pairs = {(event.ts.year, event.ts.month) for event in events}
    return frozenset(datetime.date(year, month, 1) for year, month in pairs)


def _copy_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def copy_line(event: Event) -> str:
    """The event as a line of COPY's text format: id, customer, name, ts, properties, product
    (`\\N`: none); a field holding a backslash, tab or line break is escaped."""
    fields = [event.id, event.customer, event.name, event.properties_json, event.product or ""]
    line = "\t".join(fields)
    if line.count("\t") != 4 or "\\" in line or "\n" in line or "\r" in line:
        fields = [_copy_text(field) for field in fields]
    product = "\\N" if event.product is None else fields[4]
    ts = event.ts_text or event.ts.isoformat()
    return f"{fields[0]}\t{fields[1]}\t{fields[2]}\t{ts}\t{fields[3]}\t{product}\n"
