"""Core statements compiled once and run straight on the DBAPI cursor, for the Store's hot writes.

SQLAlchemy's execution of an already compiled statement still costs ~100-200 us in Python (an
execution context, parameter and result wrapping) where SQLite itself takes ~20 us; a paper close
runs four statements. A `Prepared` statement keeps what SQLAlchemy would do with the values — the
SQL text its dialect compiled, each bound parameter's bind processor (the column types'
conversions: exact Decimal text on SQLite, enums, JSON, UTC datetimes) and each RETURNING
column's result processor — and calls the DBAPI cursor of the connection directly, inside the
same transaction as everything else on that connection. DBAPI errors come out as SQLAlchemy's
(`IntegrityError`, `OperationalError`), as from `Connection.execute`.

Only plain bound parameters: no expanding (``IN``) or literal-rendered ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

Processor = Callable[[Any], Any]


class Prepared:
    """One statement compiled for ``dialect``; run it with `execute` / `execute_many` on a `Connection`."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        if compiled.literal_execute_params or any(bind.expanding for bind in compiled.bind_names):
            raise ValueError("a prepared statement takes plain bound parameters only")
        self.sql: str = compiled.string
        self._dialect = dialect
        names = compiled.bind_names
        escaped: Mapping[str, str] = compiled.escaped_bind_names or {}
        #: (key the caller gives, key the DBAPI takes, the type's bind processor or None) per parameter.
        self._binds: list[tuple[str, str, Processor | None]] = [
            (name, escaped.get(name, name), bind.type.dialect_impl(dialect).bind_processor(dialect))
            for bind, name in names.items()
        ]
        positions = compiled.positiontup
        self._positional = positions is not None
        if positions is not None:
            order = {name: index for index, name in enumerate(positions)}
            self._binds.sort(key=lambda bind: order[bind[0]])
            if [name for name, _key, _processor in self._binds] != list(positions):
                raise ValueError("a prepared statement cannot repeat a bound parameter")
        #: (column name, type) per RETURNING column, in order.
        self._returning = [(str(column.key), column.type) for column in compiled.effective_returning or ()]
        self._result_processors: list[Processor | None] | None = None

    def _parameters(self, values: Mapping[str, Any]) -> Any:
        if self._positional:
            return tuple(values[name] if processor is None else processor(values[name])
                         for name, _key, processor in self._binds)
        return {key: values[name] if processor is None else processor(values[name])
                for name, key, processor in self._binds}

    def execute(self, connection: Connection, values: Mapping[str, Any]) -> tuple[int, list[dict[str, Any]]]:
        """Run once with ``values`` (by bound parameter name): (rows changed, RETURNING rows as dicts)."""
        parameters = self._parameters(values)
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(self.sql, parameters)
            rows = cursor.fetchall() if self._returning else []
            changed = cursor.rowcount
            description = cursor.description
        except self._dialect.loaded_dbapi.Error as error:
            raise _translated(self.sql, parameters, error, self._dialect) from error
        finally:
            cursor.close()
        return changed, [self._row(row, description) for row in rows]

    def execute_many(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run once per mapping in ``rows`` (no RETURNING), as one ``executemany``."""
        parameters = [self._parameters(values) for values in rows]
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(self.sql, parameters)
        except self._dialect.loaded_dbapi.Error as error:
            raise _translated(self.sql, parameters, error, self._dialect) from error
        finally:
            cursor.close()

    def _row(self, row: Sequence[Any], description: Sequence[Any]) -> dict[str, Any]:
        processors = self._result_processors
        if processors is None:
            processors = self._result_processors = [
                type_.dialect_impl(self._dialect).result_processor(self._dialect, column[1])
                for (_key, type_), column in zip(self._returning, description, strict=True)
            ]
        return {key: value if processor is None else processor(value)
                for (key, _type), processor, value in zip(self._returning, processors, row, strict=True)}


def _translated(sql: str, parameters: Any, error: Exception, dialect: Dialect) -> Exception:
    """The DBAPI error as SQLAlchemy raises it from `Connection.execute` (IntegrityError, OperationalError, ...)."""
    return DBAPIError.instance(sql, parameters, error, dialect.loaded_dbapi.Error, dialect=dialect)
