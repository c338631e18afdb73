"""Settings precedence: overrides, environment, `.tidemill.toml`, defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from app import config


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for key in config.ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(config, "CONFIG_FILES", (tmp_path / ".tidemill.toml",))
    return tmp_path


def test_defaults_use_the_embedded_database() -> None:
    settings = config.load_settings()
    assert settings.database_url == ""
    assert (settings.base_currency, settings.port) == ("USD", 8000)


def test_file_then_environment_then_overrides(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (isolated / ".tidemill.toml").write_text(
        'database_url = "postgresql://file/db"\nport = 9000\nbase_currency = "eur"\n'
    )
    assert config.load_settings().database_url == "postgresql://file/db"
    assert config.load_settings().base_currency == "EUR"
    monkeypatch.setenv("TIDEMILL_DATABASE_URL", "postgresql://env/db")
    assert config.load_settings().database_url == "postgresql://env/db"
    assert config.load_settings(port=9100).port == 9100
    assert config.load_settings().port == 9000


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("TIDEMILL_WORKERS", "abc", "TIDEMILL_WORKERS: 'abc' is not a whole number of 0 or more"),
        ("TIDEMILL_WORKERS", "-2", "TIDEMILL_WORKERS: -2 is not a whole number of 0 or more"),
        ("TIDEMILL_PORT", "70000", "TIDEMILL_PORT: 70,000 is not a whole number from 1 to 65,535"),
        (
            "TIDEMILL_IMPORT_CHUNK_ROWS",
            "0",
            "TIDEMILL_IMPORT_CHUNK_ROWS: 0 is not a whole number of 1 or more",
        ),
        (
            "TIDEMILL_IMPORT_PROCESSES",
            "0",
            "TIDEMILL_IMPORT_PROCESSES: 0 is not a whole number from 1 to 64",
        ),
        (
            "TIDEMILL_GRAPHIQL",
            "maybe",
            "TIDEMILL_GRAPHIQL: 'maybe' is not a boolean (true/false, yes/no, on/off, 1/0)",
        ),
        (
            "TIDEMILL_URL",
            "localhost:8000",
            "TIDEMILL_URL: 'localhost:8000' is not an http:// or https:// URL of a Tidemill "
            "server (e.g. http://127.0.0.1:8000/graphql)",
        ),
        (
            "TIDEMILL_BASE_CURRENCY",
            "XYZ",
            "TIDEMILL_BASE_CURRENCY: 'XYZ' is not an ISO 4217 currency code (USD, EUR, GBP, ...)",
        ),
    ],
)
def test_a_bad_setting_names_where_it_was_set_and_what_is_accepted(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(config.SettingsError) as raised:
        config.load_settings()
    assert str(raised.value) == message


def test_a_bad_config_file_is_named(isolated: Path) -> None:
    (isolated / ".tidemill.toml").write_text("port = 8000\nworkers = 'many'\n")
    with pytest.raises(config.SettingsError) as raised:
        config.load_settings()
    path = isolated / ".tidemill.toml"
    assert str(raised.value) == f"{path}: workers: 'many' is not a whole number of 0 or more"
    path.write_text("database_url = \n")
    with pytest.raises(config.SettingsError) as raised:
        config.load_settings()
    assert str(raised.value).startswith(f"{path}: not valid TOML (Invalid value")


@pytest.mark.parametrize(
    ("given", "endpoint"),
    [
        ("http://tidemill.internal:8000", "http://tidemill.internal:8000/graphql"),
        ("https://metrics.example.com/", "https://metrics.example.com/graphql"),
        ("http://127.0.0.1:8000/graphql", "http://127.0.0.1:8000/graphql"),
        ("https://example.com/tidemill/graphql", "https://example.com/tidemill/graphql"),
    ],
)
def test_a_server_address_alone_means_its_graphql_endpoint(
    monkeypatch: pytest.MonkeyPatch, given: str, endpoint: str
) -> None:
    monkeypatch.setenv("TIDEMILL_URL", given)
    assert config.load_settings().url == endpoint
