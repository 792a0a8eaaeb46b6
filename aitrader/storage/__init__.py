"""Storage: one protocol, backends for SQLite, PostgreSQL and Supabase's REST API."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aitrader.lazy import lazy_names
from aitrader.storage.base import (
    Conflict,
    NotFound,
    Storage,
    StorageError,
    StorageUnavailable,
    WriteBuffered,
)

if TYPE_CHECKING:
    from aitrader.config import Settings
    from aitrader.storage.buffered import BufferedStorage as BufferedStorage
    from aitrader.storage.engine import normalize_url as normalize_url
    from aitrader.storage.engine import sqlite_url as sqlite_url
    from aitrader.storage.sql import SQLStorage as SQLStorage

# The backends (SQLAlchemy, sqlmodel, the table models) load on first use: Ray imports an actor's
# module in every process that holds a handle to it, and the Store's module needs only the errors.
_LAZY = {
    "BufferedStorage": "aitrader.storage.buffered",
    "SQLStorage": "aitrader.storage.sql",
    "normalize_url": "aitrader.storage.engine",
    "sqlite_url": "aitrader.storage.engine",
}

__getattr__ = lazy_names(__name__, _LAZY, globals())


def storage_url(settings: Settings) -> str:
    """The SQLAlchemy URL of the configured SQL backend."""
    from aitrader.config import StorageBackend
    from aitrader.storage.engine import normalize_url, sqlite_url

    if settings.storage_backend is StorageBackend.POSTGRES:
        assert settings.database_url is not None  # guaranteed by Settings validation
        return normalize_url(settings.database_url.get_secret_value())
    if settings.storage_backend is StorageBackend.SQLITE:
        return sqlite_url(settings.sqlite_path)
    raise StorageError(
        "STORAGE_BACKEND=supabase talks to Supabase's REST API, not SQL; its schema is applied with "
        "`aitrader db supabase-sql` in the project's SQL editor (or use postgres with the project's "
        "connection string as DATABASE_URL)"
    )


def open_storage(settings: Settings, *, read_only: bool = False, background_checkpoints: bool = False) -> Storage:
    """Open (and migrate) the storage backend the settings name.

    ``background_checkpoints``: SQLite's WAL is checkpointed by the caller's `checkpoint_if_due`,
    never inside a commit (for the single writer, the Store).

    The networked backends (Supabase, PostgreSQL) come wrapped in `BufferedStorage`, so writes
    made while the database is unreachable are kept in order and flushed when it is back.
    """
    from aitrader.config import StorageBackend
    from aitrader.storage.buffered import BufferedStorage
    from aitrader.storage.sql import SQLStorage

    if settings.storage_backend is StorageBackend.SUPABASE:
        from aitrader.storage.supabase import SupabaseStorage

        assert settings.supabase_url and settings.supabase_key  # guaranteed by Settings validation
        rest = SupabaseStorage(settings.supabase_url, settings.supabase_key.get_secret_value())
        return rest if read_only else BufferedStorage(rest)
    storage = SQLStorage(storage_url(settings), read_only=read_only, background_checkpoints=background_checkpoints)
    if settings.storage_backend is StorageBackend.POSTGRES and not read_only:
        return BufferedStorage(storage)
    return storage


__all__ = [
    "BufferedStorage",
    "Conflict",
    "NotFound",
    "SQLStorage",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "WriteBuffered",
    "open_storage",
    "sqlite_url",
    "storage_url",
]
