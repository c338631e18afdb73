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
