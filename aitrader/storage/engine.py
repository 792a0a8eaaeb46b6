"""SQLAlchemy engines for SQLite (WAL, busy timeout, foreign keys, BEGIN IMMEDIATE) and PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

SQLITE_BUSY_TIMEOUT_MS = 30_000
#: Commits between two background WAL checkpoints (a paper close writes ~10 pages, so ~1,000 pages).
CHECKPOINT_EVERY_COMMITS = 100


def normalize_url(url: str) -> str:
    """Accept plain ``postgres://`` / ``postgresql://`` URLs (Supabase gives these) and use psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path).expanduser()}"


def create_storage_engine(url: str, *, read_only: bool = False, background_checkpoints: bool = False) -> Engine:
    """An engine tuned for the backend named by ``url``.

    With ``background_checkpoints`` a SQLite engine's commits never checkpoint the WAL (SQLite's
    automatic checkpoint copies ~1,000 pages back and fsyncs inside the commit that crosses the
    threshold, a 20 ms+ stall): its owner runs a `WalCheckpointer` off the commit path instead.
    """
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, read_only=read_only, background_checkpoints=background_checkpoints)
    kwargs: dict[str, Any] = {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 5}
    if read_only:
        kwargs["execution_options"] = {"postgresql_readonly": True}
    return create_engine(url, **kwargs)


def _sqlite_engine(url: str, *, read_only: bool, background_checkpoints: bool = False) -> Engine:
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
        if background_checkpoints and not read_only:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Straight on the DBAPI connection: `exec_driver_sql` costs ~50 us of SQLAlchemy per transaction.
        try:
            connection.connection.dbapi_connection.execute(begin)
        except sqlite3.Error as error:  # as `exec_driver_sql` would raise it (OperationalError, ...)
            raise DBAPIError.instance(begin, (), error, sqlite3.Error, dialect=engine.dialect) from error

    return engine


class WalCheckpointer:
    """Copies a SQLite database's WAL back into it from a connection of its own, once every
    ``every_commits`` commits of ``engine``, when its owner calls `run_if_due` (off the commit path).

    PASSIVE: it neither waits for nor blocks a writer; frames a writer holds stay for the next run.
    The sqlite3 module releases the GIL while it copies, so the writer's thread keeps committing.
    """

    def __init__(self, engine: Engine, every_commits: int = CHECKPOINT_EVERY_COMMITS) -> None:
        database = engine.url.database
        if engine.url.get_backend_name() != "sqlite" or not database or database == ":memory:":
            raise ValueError(f"WAL checkpoints need a SQLite database file, not {engine.url}")
        self._database = str(Path(database).expanduser())
        self._every = every_commits
        self._commits = 0
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self.runs = 0
        event.listen(engine, "commit", self._committed)

    def _committed(self, _connection: Any) -> None:
        self._commits += 1

    def run_if_due(self) -> bool:
        """Checkpoint if ``every_commits`` commits were made since the last run; True if it ran."""
        if self._commits < self._every:
            return False
        self.run()
        return True

    def run(self) -> tuple[int, int, int]:
        """Checkpoint now: (1 if a writer kept some frames else 0, frames in the WAL, frames copied)."""
        with self._lock:
            self._commits = 0
            if self._connection is None:
                self._connection = sqlite3.connect(self._database, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
                                                   isolation_level=None, check_same_thread=False)
            busy, frames, copied = self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            self.runs += 1
            return int(busy), int(frames), int(copied)

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
