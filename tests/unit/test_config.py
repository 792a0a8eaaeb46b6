from __future__ import annotations

import stat
from pathlib import Path

import pytest

from aitrader.config import ConfigError, LogLevel, StorageBackend, load_settings, local_api_key


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PAPER_TRADING", "USER_ID", "API_KEY", "FLY_APP_NAME", "STORAGE_BACKEND", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_are_paper_sqlite_with_local_identity(_isolated_home: Path) -> None:
    settings = load_settings(_env_file=None)
    assert settings.paper_trading is True
    assert settings.storage_backend is StorageBackend.SQLITE
    assert settings.user_id
    assert len(settings.api_key.get_secret_value()) >= 32
    assert settings.sqlite_path == _isolated_home / "data.db"


def test_api_key_is_generated_once_with_private_permissions(_isolated_home: Path) -> None:
    first = local_api_key()
    assert local_api_key() == first
    mode = stat.S_IMODE((_isolated_home / "api_key").stat().st_mode)
    assert mode == 0o600


def test_live_trading_without_keys_names_the_missing_variables() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, paper_trading=False)
    text = "\n".join(caught.value.problems)
    assert "BINANCE_API_KEY" in text and "BINANCE_SECRET_KEY" in text
    assert "example" in text


def test_each_bad_variable_gets_its_own_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHECK_INTERVAL", "30")
    monkeypatch.setenv("LOG_LEVEL", "loud")
    monkeypatch.setenv("BINANCE_STREAM_URL", "http://nope")
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    problems = caught.value.problems
    assert len(problems) == 3
    assert any(p.startswith("CHECK_INTERVAL:") and "CHECK_INTERVAL=60" in p for p in problems)
    assert any(p.startswith("LOG_LEVEL:") for p in problems)
    assert any(p.startswith("BINANCE_STREAM_URL:") and "ws://" in p for p in problems)


def test_cloud_requires_user_and_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLY_APP_NAME", "my-engine")
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None)
    names = {p.split(":")[0] for p in caught.value.problems}
    assert names == {"USER_ID", "API_KEY"}


def test_backend_specific_requirements() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_settings(_env_file=None, storage_backend="postgres")
    with pytest.raises(ConfigError, match="SUPABASE_URL"):
        load_settings(_env_file=None, storage_backend="supabase")


def test_secrets_are_redacted_and_never_in_repr() -> None:
    settings = load_settings(
        _env_file=None, binance_api_key="k" * 20, binance_secret_key="s3cr3t-value", database_url="postgresql://u:pw@h/db"
    )
    shown = settings.redacted()
    assert shown["BINANCE_SECRET_KEY"] == "********"
    assert shown["DATABASE_URL"] == "********"
    assert "s3cr3t-value" not in repr(settings) and "s3cr3t-value" not in str(shown)
    assert "pw@" not in str(shown)


def test_values_are_normalised() -> None:
    settings = load_settings(_env_file=None, log_level="debug", storage_backend="SQLITE", binance_api_url="http://x/")
    assert settings.log_level is LogLevel.DEBUG
    assert settings.binance_api_url == "http://x"


def test_settings_are_frozen() -> None:
    settings = load_settings(_env_file=None)
    with pytest.raises(Exception, match="frozen"):
        settings.max_symbols = 5  # type: ignore[misc]
