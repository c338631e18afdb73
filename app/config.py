"""Settings: environment first, then `.tidemill.toml` (cwd) or `~/.tidemill.toml`, then defaults."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

import platformdirs

from app.errors import UserError
from app.money import ISO_CURRENCIES

CONFIG_FILES = (Path(".tidemill.toml"), Path.home() / ".tidemill.toml")
# The persisted GraphQL documents (the CLI's, the dashboard's, partners' trusted queries).
QUERIES_DIR = Path(__file__).resolve().parents[1] / "queries"


@dataclass(frozen=True)
class Settings:
    """Everything Tidemill reads from its environment.

    `database_url` empty means: start the embedded PostgreSQL in `data_dir`. The `max_*` fields
    cap what one HTTP request may ask of the server (schema/security.py).
    """

    database_url: str = ""
    data_dir: Path = field(default_factory=lambda: Path(platformdirs.user_data_dir("tidemill")))
    base_currency: str = "USD"
    host: str = "127.0.0.1"
    port: int = 8000
    url: str = "http://127.0.0.1:8000/graphql"
    api_key: str = ""
    statement_timeout_ms: int = 30_000
    graphiql: bool = True
    max_query_depth: int = 10
    max_aliases: int = 30
    max_tokens: int = 1_000
    max_selections: int = 5_000  # fields and fragments of a document, its fragments expanded
    max_batch_operations: int = 10
    max_body_bytes: int = (
        4 << 20
    )  # a request body (JSON; ingestEvents: 10,000 events) or query string
    max_upload_bytes: int = 50 << 20  # a multipart body (importAttributes uploads)
    max_events_bytes: int = 32 << 20  # a POST /events body (10,000 usage events)
    pool_timeout_ms: int = 5_000  # wait for a free database connection, then 503
    # Fernet keys for source secrets, comma-separated, the first encrypting (rotation); empty
    # means the key generated into `data_dir` (app/ingest/secrets.py). Never in a repr.
    secret_key: str = field(default="", repr=False)
    worker: bool = True  # `serve` also applies inbox events (else run `tidemill worker`)
    rollups: bool = True  # off: every series scans movements (docs/architecture.md)
    import_chunk_rows: int = 250_000  # a larger subscription import goes in chunks this size
    import_processes: int = 2  # processes reading a large CSV file to stage it (1: this one)
    read_database_urls: str = ""  # streaming replicas for read-only GraphQL, comma-separated
    result_cache_entries: int = 2_000  # query results kept per server process (0: none)
    workers: int = 0  # server processes of `tidemill serve` (0: one per core)


ENV_KEYS = {
    "TIDEMILL_DATABASE_URL": "database_url",
    "TIDEMILL_DATA_DIR": "data_dir",
    "TIDEMILL_BASE_CURRENCY": "base_currency",
    "TIDEMILL_HOST": "host",
    "TIDEMILL_PORT": "port",
    "TIDEMILL_URL": "url",
    "TIDEMILL_API_KEY": "api_key",
    "TIDEMILL_STATEMENT_TIMEOUT_MS": "statement_timeout_ms",
    "TIDEMILL_GRAPHIQL": "graphiql",
    "TIDEMILL_MAX_QUERY_DEPTH": "max_query_depth",
    "TIDEMILL_MAX_ALIASES": "max_aliases",
    "TIDEMILL_MAX_TOKENS": "max_tokens",
    "TIDEMILL_MAX_SELECTIONS": "max_selections",
    "TIDEMILL_MAX_BATCH_OPERATIONS": "max_batch_operations",
    "TIDEMILL_MAX_BODY_BYTES": "max_body_bytes",
    "TIDEMILL_MAX_UPLOAD_BYTES": "max_upload_bytes",
    "TIDEMILL_MAX_EVENTS_BYTES": "max_events_bytes",
    "TIDEMILL_POOL_TIMEOUT_MS": "pool_timeout_ms",
    "TIDEMILL_SECRET_KEY": "secret_key",
    "TIDEMILL_WORKER": "worker",
    "TIDEMILL_ROLLUPS": "rollups",
    "TIDEMILL_IMPORT_CHUNK_ROWS": "import_chunk_rows",
    "TIDEMILL_IMPORT_PROCESSES": "import_processes",
    "TIDEMILL_READ_DATABASE_URLS": "read_database_urls",
    "TIDEMILL_RESULT_CACHE_ENTRIES": "result_cache_entries",
    "TIDEMILL_WORKERS": "workers",
}
INTEGER_FIELDS = frozenset(
    name for name, spec in Settings.__dataclass_fields__.items() if spec.type in ("int", int)
)
BOOLEANS = {"1": True, "true": True, "yes": True, "on": True}
BOOLEANS |= {"0": False, "false": False, "no": False, "off": False}
# the integers' accepted ranges (inclusive); any other is a count or a size, 0 or more
INTEGER_RANGES = {
    "port": (1, 65_535),
    "import_chunk_rows": (1, None),
    "import_processes": (1, 64),
}


class SettingsError(UserError):
    """A setting that cannot be used; the message names where it was set and what is
    accepted."""


def _boolean(origin: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in BOOLEANS:
        raise SettingsError(
            f"{origin}: {value!r} is not a boolean (true/false, yes/no, on/off, 1/0)"
        )
    return BOOLEANS[text]


def _integer(name: str, origin: str, value: Any) -> int:
    low, high = INTEGER_RANGES.get(name, (0, None))
    accepted = (
        f"a whole number of {low:,} or more"
        if high is None
        else f"a whole number from {low:,} to {high:,}"
    )
    try:
        number = int(str(value).strip().replace("_", ""), 10)
    except ValueError:
        raise SettingsError(f"{origin}: {value!r} is not {accepted}") from None
    if number < low or (high is not None and number > high):
        raise SettingsError(f"{origin}: {number:,} is not {accepted}")
    return number


def http_url(text: str) -> SplitResult | None:
    """The parts of an http:// or https:// URL with a host; None for anything else."""
    parts = urlsplit(text)
    return parts if parts.scheme in ("http", "https") and parts.hostname else None


def _server_url(origin: str, value: Any) -> str:
    """The client commands' GraphQL endpoint: an http(s) URL with a host; a server's address
    alone (no path) means its /graphql."""
    text = str(value).strip()
    parts = http_url(text)
    if parts is None:
        raise SettingsError(
            f"{origin}: {value!r} is not an http:// or https:// URL of a Tidemill server "
            "(e.g. http://127.0.0.1:8000/graphql)"
        )
    if parts.path in ("", "/"):
        return urlunsplit(parts._replace(path="/graphql"))
    return text


def _coerce(name: str, origin: str, value: Any) -> Any:
    if name == "url":
        return _server_url(origin, value)
    if name == "data_dir":
        return Path(str(value)).expanduser()
    if name in INTEGER_FIELDS:
        return _integer(name, origin, value)
    if name in ("graphiql", "worker", "rollups"):
        return _boolean(origin, value)
    if name == "base_currency":
        code = str(value).strip().upper()
        if code not in ISO_CURRENCIES:
            raise SettingsError(
                f"{origin}: {value!r} is not an ISO 4217 currency code (USD, EUR, GBP, ...)"
            )
        return code
    return str(value)


def _file_values() -> tuple[Path | None, dict[str, Any]]:
    """The first config file found and its known settings."""
    for path in CONFIG_FILES:
        if path.is_file():
            try:
                with path.open("rb") as handle:
                    data = tomllib.load(handle)
            except tomllib.TOMLDecodeError as error:
                raise SettingsError(f"{path}: not valid TOML ({error})") from None
            known = Settings.__dataclass_fields__
            return path, {key: value for key, value in data.items() if key in known}
    return None, {}


def load_settings(**overrides: Any) -> Settings:
    """Settings from (in order of precedence) overrides, environment, config file, defaults.
    A value that cannot be used is a SettingsError naming where it was set."""
    path, found = _file_values()
    values = {name: (value, f"{path}: {name}") for name, value in found.items()}
    for env_key, name in ENV_KEYS.items():
        if os.environ.get(env_key):
            values[name] = (os.environ[env_key], env_key)
    values.update(
        {
            name: (value, "--" + name.replace("_", "-"))
            for name, value in overrides.items()
            if value is not None
        }
    )
    coerced = {name: _coerce(name, origin, value) for name, (value, origin) in values.items()}
    return replace(Settings(), **coerced)


def environment(settings: Settings, *names: str) -> dict[str, str]:
    """The values of `names` in `settings` as environment variables, for a process (or an app
    factory) that loads its settings again."""
    keys = {name: env_key for env_key, name in ENV_KEYS.items()}
    return {keys[name]: str(getattr(settings, name)) for name in names}
