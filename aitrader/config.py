"""Configuration: one validated, frozen settings object read from the environment and `.env`.

`load_settings()` is the entry point. It applies the local conveniences (USER_ID from the OS
user, an API key generated once and kept in ``~/.aitrader/``) and turns every validation
problem into a `ConfigError` whose lines name the variable, say what is wrong and give an
example of a good value.
"""

from __future__ import annotations

import getpass
import os
import re
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: An example of a good value for every variable, shown next to each error.
EXAMPLES: dict[str, str] = {
    "USER_ID": "alice",
    "API_KEY": "a 32+ character random string (openssl rand -hex 32)",
    "BINANCE_API_KEY": "your Binance API key (Binance > API Management)",
    "BINANCE_SECRET_KEY": "the secret shown once next to that key",
    "BINANCE_API_URL": "https://api.binance.com",
    "BINANCE_STREAM_URL": "wss://stream.binance.com:9443",
    "SUPABASE_URL": "https://abcd1234.supabase.co",
    "SUPABASE_KEY": "your project's service-role or anon key",
    "DATABASE_URL": "postgresql://user:password@localhost:5432/aitrader",
    "STORAGE_BACKEND": "sqlite",
    "SQLITE_PATH": "~/.aitrader/data.db",
    "PAPER_TRADING": "true",
    "LOG_LEVEL": "INFO",
    "LOG_FORMAT": "console",
    "MAX_SYMBOLS": "100",
    "CHECK_INTERVAL": "60",
    "ENABLE_AI_ANALYSIS": "false",
    "ENABLE_AUTO_TRADING": "false",
    "ENABLE_POSITION_MONITORING": "true",
    "MAX_ACTIVE_TRADERS": "50",
    "MAX_OPEN_POSITIONS": "10",
    "PAPER_STARTING_BALANCE": "10000",
    "PAPER_SLIPPAGE_BPS": "5",
    "API_PORT": "8080",
    "LLM_BASE_URL": "https://generativelanguage.googleapis.com/v1beta/openai",
    "LLM_MODEL": "gemini-2.0-flash",
    "LLM_API_KEY": "your provider's API key",
    "AI_CONFIDENCE_THRESHOLD": "70",
    "LLM_RATE_LIMIT_PER_MIN": "60",
    "LLM_TIMEOUT_S": "20",
}

SECRET_FIELDS = ("api_key", "binance_api_key", "binance_secret_key", "supabase_key", "llm_api_key")
_USER_ID = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class StorageBackend(StrEnum):
    SQLITE = "sqlite"
    POSTGRES = "postgres"
    SUPABASE = "supabase"


class LogFormat(StrEnum):
    CONSOLE = "console"
    JSON = "json"


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` holds one readable line per bad variable."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid configuration:\n" + "\n".join(f"  {p}" for p in problems))


def aitrader_home() -> Path:
    """The per-user state folder (``~/.aitrader`` unless AITRADER_HOME says otherwise)."""
    return Path(os.environ.get("AITRADER_HOME") or Path.home() / ".aitrader").expanduser()


class Settings(BaseSettings):
    """Every setting aitrader reads; immutable once loaded."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", case_sensitive=False, extra="ignore", frozen=True
    )

    user_id: str = ""
    api_key: SecretStr = SecretStr("")
    binance_api_key: SecretStr | None = None
    binance_secret_key: SecretStr | None = None
    binance_api_url: str = "https://api.binance.com"
    binance_stream_url: str = "wss://stream.binance.com:9443"
    supabase_url: str | None = None
    supabase_key: SecretStr | None = None
    database_url: SecretStr | None = None
    storage_backend: StorageBackend = StorageBackend.SQLITE
    sqlite_path: Path = Field(default_factory=lambda: aitrader_home() / "data.db")
    paper_trading: bool = True
    log_level: LogLevel = LogLevel.INFO
    log_format: LogFormat = LogFormat.CONSOLE
    max_symbols: int = Field(default=100, ge=1, le=2000)
    check_interval: int = Field(default=60, ge=60, description="seconds between checks (>= 60)")
    enable_ai_analysis: bool = False
    enable_auto_trading: bool = False
    enable_position_monitoring: bool = True
    max_active_traders: int = Field(default=50, ge=1, le=1000)
    max_open_positions: int = Field(default=10, ge=1, le=1000)
    paper_starting_balance: float = Field(default=10_000, gt=0)
    paper_slippage_bps: float = Field(default=5, ge=0, le=500)
    api_port: int = Field(default=8080, ge=1, le=65535)
    fly_app_name: str | None = None
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: SecretStr | None = None
    ai_confidence_threshold: int = Field(default=70, ge=0, le=100)
    llm_rate_limit_per_min: int = Field(default=60, ge=1, le=100_000)
    llm_timeout_s: float = Field(default=20, gt=0, le=300)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("storage_backend", "log_format", mode="before")
    @classmethod
    def _lower_choice(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("sqlite_path", mode="after")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("binance_api_url", "supabase_url", "llm_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value

    @field_validator("binance_stream_url")
    @classmethod
    def _ws_url(cls, value: str) -> str:
        if not value.startswith(("ws://", "wss://")):
            raise ValueError("must start with ws:// or wss://")
        return value.rstrip("/")

    @field_validator("user_id")
    @classmethod
    def _user_id(cls, value: str) -> str:
        if value and not _USER_ID.match(value):
            raise ValueError("may hold only letters, digits and _ . @ - (at most 64)")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> Settings:
        problems: list[tuple[str, str]] = []
        if not self.paper_trading:
            for name in ("binance_api_key", "binance_secret_key"):
                secret = getattr(self, name)
                if secret is None or not secret.get_secret_value():
                    problems.append((name, "is required when PAPER_TRADING=false (live trading)"))
        if self.storage_backend is StorageBackend.POSTGRES and not self.database_url:
            problems.append(("database_url", "is required when STORAGE_BACKEND=postgres"))
        if self.storage_backend is StorageBackend.SUPABASE:
            if not self.supabase_url:
                problems.append(("supabase_url", "is required when STORAGE_BACKEND=supabase"))
            if not self.supabase_key:
                problems.append(("supabase_key", "is required when STORAGE_BACKEND=supabase"))
        if self.fly_app_name:
            if not self.user_id:
                problems.append(("user_id", "is required on a cloud machine (FLY_APP_NAME is set)"))
            if not self.api_key.get_secret_value():
                problems.append(("api_key", "is required on a cloud machine (FLY_APP_NAME is set)"))
        if self.api_key.get_secret_value() and len(self.api_key.get_secret_value()) < 16:
            problems.append(("api_key", "is too short: use at least 16 characters"))
        if problems:
            raise ConfigError([_problem_line(name, msg) for name, msg in problems])
        return self

    @property
    def is_cloud(self) -> bool:
        return bool(self.fly_app_name)

    def redacted(self) -> dict[str, str]:
        """The effective configuration as display strings, secrets replaced by ``********``."""
        shown: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "********" if value.get_secret_value() else "(not set)"
            elif name == "database_url" and value:
                value = "********"
            shown[name.upper()] = "(not set)" if value is None else str(value)
        return shown


def _problem_line(name: str, message: str) -> str:
    var = name.upper()
    return f"{var}: {message} (example: {var}={EXAMPLES.get(var, '...')})"


def local_api_key(home: Path | None = None) -> str:
    """The API key kept in ``~/.aitrader/api_key`` (0600), generated on first use."""
    folder = home or aitrader_home()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / "api_key"
    if path.exists():
        key = path.read_text().strip()
        if key:
            return key
    key = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    os.chmod(path, 0o600)
    return key


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the configuration; raise `ConfigError` listing every bad variable."""
    try:
        settings = Settings(**overrides)
    except ConfigError:
        raise
    except ValidationError as exc:
        raise ConfigError(_validation_lines(exc)) from None
    changes: dict[str, Any] = {}
    if not settings.is_cloud:
        if not settings.user_id:
            changes["user_id"] = _os_user()
        if not settings.api_key.get_secret_value():
            changes["api_key"] = SecretStr(local_api_key())
    return settings.model_copy(update=changes) if changes else settings


def _os_user() -> str:
    try:
        name = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        name = "local"
    return name if _USER_ID.match(name) else "local"


def _validation_lines(exc: ValidationError) -> list[str]:
    lines: list[str] = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else "configuration"
        if error["type"] == "value_error" and isinstance(error.get("ctx", {}).get("error"), ConfigError):
            lines.extend(error["ctx"]["error"].problems)
            continue
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(_problem_line(name, f"{message}; got {_shown_input(name, error.get('input'))}"))
    return lines


def _shown_input(name: str, value: Any) -> str:
    if name in SECRET_FIELDS or name == "database_url":
        return "a value (hidden)"
    return repr(value)
