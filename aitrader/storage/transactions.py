"""Transactions of the SQL storage: one per storage call, or one for several calls (`apply_many`).

A call that writes with Core statements takes a `Connection` (`_connection`), one that needs the
ORM a `Session` (`_session`); inside `apply_many` both are the one transaction's, the session
made only when a call needs it (a paper fill's writes never do: a `Session` costs more than the
SQLite statements). Hot-path statements run as `Prepared` statements on that connection.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from aitrader.storage.base import Conflict, StorageUnavailable
from aitrader.storage.prepared import Prepared

R = TypeVar("R")
#: One storage call: (method name, positional arguments, keyword arguments).
Write = tuple[str, tuple[Any, ...], dict[str, Any]]


def _is_locked(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and "locked" in str(exc.orig)


#: SQLite already waits out its busy timeout; these cover the rare lock that outlasts it.
LOCKED_ATTEMPTS = 5
LOCKED_BACKOFF_S = (0.05, 0.1, 0.2, 0.4)


def _retry_locked(action: Callable[[], R]) -> R:
    """``action()``, run again (up to `LOCKED_ATTEMPTS` in all, backing off) while the database is locked.

    A plain loop: tenacity's wrapper costs ~50 us a call, more than a paper close's SQLite statements.
    """
    for backoff in LOCKED_BACKOFF_S:
        try:
            return action()
        except OperationalError as exc:
            if not _is_locked(exc):
                raise
        time.sleep(backoff)
    return action()


class _Transaction:
    """The transaction of one `apply_many`: its connection, and an ORM session on it once a call needs one."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._root = connection.begin()
        self.session: Session | None = None

    def orm_session(self) -> Session:
        if self.session is None:
            # Joins the connection's transaction: its flushes write there, and it never commits it.
            self.session = Session(bind=self.connection, expire_on_commit=False)
        return self.session

    def commit(self) -> None:
        if self.session is not None:
            self.session.flush()
        self._root.commit()

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


class SQLTransactions:
    """The transaction plumbing `SQLStorage` builds on (see the module docstring)."""

    engine: Engine

    def _init_transactions(self) -> None:
        self._local = threading.local()  # the `_Transaction` of an `apply_many` running on this thread
        self._prepared: dict[Any, Prepared] = {}  # hot-path statements, compiled once for this engine

    def apply_many(self, writes: Sequence[Write]) -> list[Any]:
        """Run several storage calls in ONE transaction, in order: every one committed, or none
        (the first error is raised and nothing is written). Returns their results, in order."""

        def action() -> list[Any]:
            with self.engine.connect() as connection:
                tx = self._local.tx = _Transaction(connection)
                try:
                    results = [getattr(self, method)(*args, **kwargs) for method, args, kwargs in writes]
                    tx.commit()
                finally:
                    self._local.tx = None
                    tx.close()
                return results

        return self._guard(action)

    def _in_transaction(self) -> bool:
        return getattr(self._local, "tx", None) is not None

    @contextmanager
    def _session(self) -> Iterator[Session]:
        """The `apply_many` transaction's session, or a new one (closed afterwards)."""
        tx: _Transaction | None = getattr(self._local, "tx", None)
        if tx is not None:
            yield tx.orm_session()
            return
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """The `apply_many` transaction's connection, or a new transaction, committed when the block ends."""
        tx: _Transaction | None = getattr(self._local, "tx", None)
        if tx is not None:
            yield tx.connection
            return
        with self.engine.begin() as connection:
            yield connection

    def _commit(self, session: Session) -> None:
        """Commit a call's own session; inside `apply_many` only flush (the transaction commits once)."""
        tx: _Transaction | None = getattr(self._local, "tx", None)
        if tx is not None and session is tx.session:
            session.flush()
        else:
            session.commit()

    def _run(self, connection: Connection, statement: Any, values: Mapping[str, Any]) -> tuple[int, list[dict[str, Any]]]:
        """Run a hot-path Core statement on ``connection``'s DBAPI cursor: (rows changed, RETURNING rows)."""
        return self._prepare(statement).execute(connection, values)

    def _run_many(self, connection: Connection, statement: Any, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run a hot-path Core statement once per mapping in ``rows`` (one ``executemany``)."""
        self._prepare(statement).execute_many(connection, rows)

    def _prepare(self, statement: Any) -> Prepared:
        prepared = self._prepared.get(statement)
        if prepared is None:
            prepared = self._prepared[statement] = Prepared(statement, self.engine.dialect)
        return prepared

    def _guard(self, action: Callable[[], R]) -> R:
        try:
            # Inside `apply_many` a locked database is retried by the whole transaction, not one call.
            return action() if self._in_transaction() else _retry_locked(action)
        except IntegrityError as exc:
            raise Conflict(_integrity_message(exc)) from exc
        except OperationalError as exc:
            raise StorageUnavailable(f"the database cannot be reached or used: {exc.orig}") from exc


def _integrity_message(exc: IntegrityError) -> str:
    text = str(exc.orig)
    if "uq_traders_user_name" in text or "traders.user_id, traders.name" in text:
        return "a trader with this name already exists; choose another name"
    if "client_order_id" in text:
        return "an order with this client order id already exists"
    if "FOREIGN KEY" in text or "foreign key" in text:
        return "the row refers to a trader, signal or position that does not exist"
    return f"the write breaks a uniqueness or reference rule: {text}"
