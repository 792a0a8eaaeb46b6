"""BufferedStorage.unbuffered(): money writes are committed or refused, never held in memory."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from aitrader.models import Balance, PositionStatus
from aitrader.storage import BufferedStorage, SQLStorage, StorageUnavailable
from tests.integration.test_storage_contract import make_position


class Outage:
    """A real SQLite storage that can be switched off, the way a stopped database refuses connections."""

    def __init__(self, path: Path) -> None:
        self.sql = SQLStorage(f"sqlite:///{path}")
        self.down = False

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.sql, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            if self.down and name != "close":
                raise StorageUnavailable("the database cannot be reached")
            return method(*args, **kwargs)

        return call


def balance(free: str) -> Balance:
    return Balance.model_validate({"user_id": "alice", "asset": "USDT", "free": Decimal(free), "locked": 0})


def test_an_unbuffered_write_during_an_outage_is_refused_not_queued(tmp_path: Path) -> None:
    # Arrange
    backend = Outage(tmp_path / "db.sqlite")
    storage = BufferedStorage(backend)  # type: ignore[arg-type]
    position = storage.create_position(make_position())
    backend.down = True
    # Act / Assert: a money write is refused; a heartbeat is still queued
    with storage.unbuffered(), pytest.raises(StorageUnavailable, match="cannot be reached"):
        storage.set_balances("alice", [balance("10")])
    assert storage.queued == 0
    storage.heartbeat("supervisor")
    assert storage.queued == 1
    # a money write queued behind a buffered one would not be committed either: refused too
    with storage.unbuffered(), pytest.raises(StorageUnavailable, match="1 writes are queued ahead"):
        storage.close_position(position.id, exit_price=Decimal("1"), pnl=Decimal(0), pnl_pct=Decimal(0), reason="x")
    backend.down = False
    with storage.unbuffered():
        closed, first = storage.close_position(position.id, exit_price=Decimal("1"), pnl=Decimal(0),
                                               pnl_pct=Decimal(0), reason="x")
    assert first and closed.status is PositionStatus.CLOSED
    assert storage.queued == 0 and backend.sql.get_heartbeat("supervisor") is not None


def test_outside_unbuffered_writes_are_still_buffered_through_an_outage(tmp_path: Path) -> None:
    backend = Outage(tmp_path / "db.sqlite")
    storage = BufferedStorage(backend)  # type: ignore[arg-type]
    backend.down = True
    storage.set_balances("alice", [balance("10")])
    assert storage.queued == 1
    backend.down = False
    assert storage.flush() == 0
    assert [b.free for b in backend.sql.get_balances("alice")] == [Decimal("10")]
