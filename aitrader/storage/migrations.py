"""Versioned schema migrations, applied idempotently when a storage is opened."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Engine, Integer, MetaData, Table, select, text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import aitrader.models.entities  # noqa: F401  (registers every table on SQLModel.metadata)

_meta = MetaData()
schema_version = Table(
    "schema_version",
    _meta,
    Column("version", Integer, primary_key=True),
    Column("applied_at", DateTime(timezone=True), nullable=False),
)


def _v1_initial(connection: Connection) -> None:
    SQLModel.metadata.create_all(connection)


#: Ordered migrations; append new ones, never edit an applied one.
MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "initial schema: traders, signals, positions, orders, balances, heartbeats", _v1_initial),
]
LATEST_VERSION = MIGRATIONS[-1][0]


def current_version(engine: Engine) -> int:
    """The schema version stored in the database (0 for an empty database)."""
    with engine.connect() as connection:
        if not engine.dialect.has_table(connection, "schema_version"):
            return 0
        versions = connection.execute(select(schema_version.c.version)).scalars().all()
        return max(versions, default=0)


def migrate(engine: Engine) -> list[int]:
    """Bring the schema to the latest version; return the versions applied by this call."""
    applied: list[int] = []
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            # Two engines starting at once must not both run a migration.
            connection.execute(text("SELECT pg_advisory_xact_lock(4242001)"))
        _meta.create_all(connection)
        done = set(connection.execute(select(schema_version.c.version)).scalars())
        for version, _description, apply in MIGRATIONS:
            if version in done:
                continue
            apply(connection)
            connection.execute(schema_version.insert().values(version=version, applied_at=datetime.now(UTC)))
            applied.append(version)
    return applied
