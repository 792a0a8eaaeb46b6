"""The CLI skeleton as a user runs it: a real subprocess of the installed `aitrader` command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from aitrader import __version__
from aitrader.storage.engine import normalize_url

AITRADER = shutil.which("aitrader", path=str(Path(sys.executable).parent)) or "aitrader"


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("BINANCE_", "PAPER_", "STORAGE_", "DATABASE_"))}
    full_env.update(env or {})
    return subprocess.run([AITRADER, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=120)


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"aitrader {__version__}"


@pytest.mark.parametrize("command", [[], ["config"], ["db"], ["config", "check"], ["db", "migrate"]])
def test_every_command_has_help(command: list[str]) -> None:
    result = run(*command, "--help")
    assert result.returncode == 0
    assert "Usage" in result.stdout


def test_config_check_redacts_secrets(tmp_path: Path) -> None:
    result = run("config", "check", env={"BINANCE_SECRET_KEY": "very-secret-value"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "very-secret-value" not in result.stdout + result.stderr
    assert "BINANCE_SECRET_KEY" in result.stdout and "********" in result.stdout


def test_live_without_keys_fails_and_names_the_key(tmp_path: Path) -> None:
    result = run("config", "check", env={"PAPER_TRADING": "false"}, cwd=tmp_path)
    assert result.returncode == 1
    assert "BINANCE_API_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_env_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CHECK_INTERVAL=5\n")
    result = run("config", "check", cwd=tmp_path)
    assert result.returncode == 1
    assert "CHECK_INTERVAL" in result.stderr


def test_db_migrate_sqlite_twice(tmp_path: Path) -> None:
    env = {"SQLITE_PATH": str(tmp_path / "x.db")}
    first, second = run("db", "migrate", env=env), run("db", "migrate", env=env)
    assert first.returncode == 0 and "version 0 to 1" in first.stdout
    assert second.returncode == 0 and "nothing to do" in second.stdout


def _schema(url: str) -> dict[str, list[str]]:
    engine = create_engine(normalize_url(url))
    inspector = inspect(engine)
    schema = {
        table: sorted([c["name"] for c in inspector.get_columns(table)] + [i["name"] or "" for i in inspector.get_indexes(table)])
        for table in inspector.get_table_names()
    }
    with engine.connect() as connection:
        schema["versions"] = [str(v) for v in connection.execute(text("SELECT version FROM schema_version")).scalars()]
    engine.dispose()
    return schema


def test_db_migrate_postgres_twice_changes_nothing(postgres_url: str) -> None:
    database = "aitrader_migrate_cli"
    admin = create_engine(normalize_url(postgres_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {database}"))
        connection.execute(text(f"CREATE DATABASE {database}"))
    admin.dispose()
    url = postgres_url.rsplit("/", 1)[0] + f"/{database}"
    env = {"STORAGE_BACKEND": "postgres", "DATABASE_URL": url}

    first = run("db", "migrate", env=env)
    assert first.returncode == 0, first.stderr
    after_first = _schema(url)
    second = run("db", "migrate", env=env)
    assert second.returncode == 0 and "nothing to do" in second.stdout
    assert _schema(url) == after_first
    assert {"traders", "signals", "positions", "orders", "balances", "heartbeats"} <= set(after_first)
    assert after_first["versions"] == ["1"]


def test_db_migrate_unreachable_postgres_is_a_clear_error() -> None:
    result = run("db", "migrate", env={"STORAGE_BACKEND": "postgres", "DATABASE_URL": "postgresql://u:pw@127.0.0.1:1/x"})
    assert result.returncode == 1
    assert "cannot" in result.stderr and "Traceback" not in result.stderr
    assert "pw" not in result.stderr
