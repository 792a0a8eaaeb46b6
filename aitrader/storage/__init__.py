"""Storage: one protocol, backends for SQLite, PostgreSQL and (later) Supabase's REST API."""

from __future__ import annotations

from aitrader.config import Settings, StorageBackend
from aitrader.storage.base import Conflict, NotFound, Storage, StorageError, StorageUnavailable
from aitrader.storage.engine import normalize_url, sqlite_url
from aitrader.storage.sql import SQLStorage


def storage_url(settings: Settings) -> str:
    """The SQLAlchemy URL of the configured SQL backend."""
    if settings.storage_backend is StorageBackend.POSTGRES:
        assert settings.database_url is not None  # guaranteed by Settings validation
        return normalize_url(settings.database_url.get_secret_value())
    if settings.storage_backend is StorageBackend.SQLITE:
        return sqlite_url(settings.sqlite_path)
    raise StorageError(
        "STORAGE_BACKEND=supabase is not available yet; use sqlite, or postgres with your Supabase "
        "project's connection string as DATABASE_URL"
    )


def open_storage(settings: Settings, *, read_only: bool = False) -> Storage:
    """Open (and migrate) the storage backend the settings name."""
    return SQLStorage(storage_url(settings), read_only=read_only)


__all__ = [
    "Conflict",
    "NotFound",
    "SQLStorage",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "open_storage",
    "sqlite_url",
    "storage_url",
]
