"""SQLAlchemy engines for SQLite (WAL, busy timeout, foreign keys, BEGIN IMMEDIATE) and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str) -> str:
    """Accept plain ``postgres://`` / ``postgresql://`` URLs (Supabase gives these) and use psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path).expanduser()}"


def create_storage_engine(url: str, *, read_only: bool = False) -> Engine:
    """An engine tuned for the backend named by ``url``."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, read_only=read_only)
    kwargs: dict[str, Any] = {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 5}
    if read_only:
        kwargs["execution_options"] = {"postgresql_readonly": True}
    return create_engine(url, **kwargs)


def _sqlite_engine(url: str, *, read_only: bool) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:" and not read_only:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    connect_args: dict[str, Any] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    if read_only and database:
        url = f"sqlite:///file:{Path(database).expanduser()}?mode=ro&uri=true"
    engine = create_engine(url, connect_args=connect_args)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so that BEGIN IMMEDIATE
        # below is the only BEGIN: writers queue on the busy timeout instead of failing
        # with "database is locked" when a read lock would need upgrading.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not read_only:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Durability: in WAL mode a commit has written its frames to the WAL file (the OS page cache)
        # before COMMIT returns, so a kill -9 of the Store loses no acknowledged write; NORMAL skips
        # only the fsync per commit, so an OS crash or power cut could lose the last commits (FULL
        # would fsync each one, ~1-10 ms on this disk). Money writes rely on the first guarantee.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine
