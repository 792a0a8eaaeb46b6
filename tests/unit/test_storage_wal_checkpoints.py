"""SQLite WAL checkpoints off the commit path (aitrader.storage.engine.WalCheckpointer)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from aitrader.models import Balance
from aitrader.storage.engine import WalCheckpointer
from aitrader.storage.sql import SQLStorage


def _write_balances(storage: SQLStorage, amounts: range) -> None:
    for amount in amounts:
        storage.update_balances("u1", [Balance.model_validate({"user_id": "u1", "asset": "USDT",
                                                               "free": Decimal(amount), "locked": Decimal(0)})])


def _autocheckpoint(storage: SQLStorage) -> int:
    with storage.engine.connect() as connection:
        return int(connection.execute(text("PRAGMA wal_autocheckpoint")).scalar_one())


def test_commits_leave_the_wal_to_the_background_checkpoint(tmp_path: Path) -> None:
    # Arrange
    storage = SQLStorage(f"sqlite:///{tmp_path / 'bg.db'}", background_checkpoints=True)
    checkpointer = WalCheckpointer(storage.engine, every_commits=5)

    # Act
    _write_balances(storage, range(1000, 1004))
    early = checkpointer.run_if_due()
    _write_balances(storage, range(1004, 1005))
    due = checkpointer.run_if_due()
    _busy, frames, copied = checkpointer.run()

    # Assert: no automatic checkpoints on the writer's connections; ours copied every frame back
    assert _autocheckpoint(storage) == 0
    assert (early, due) == (False, True)
    assert frames > 0 and copied == frames
    assert storage.get_balances("u1")[0].free == Decimal(1004)
    checkpointer.close()
    storage.close()


def test_a_default_storage_keeps_sqlite_automatic_checkpoints(tmp_path: Path) -> None:
    storage = SQLStorage(f"sqlite:///{tmp_path / 'default.db'}")

    assert storage.checkpointer is None and not storage.checkpoint_if_due()
    assert _autocheckpoint(storage) == 1000
    storage.close()


def test_checkpoints_need_a_sqlite_file(tmp_path: Path) -> None:
    storage = SQLStorage("sqlite://")
    with pytest.raises(ValueError, match="SQLite database file"):
        WalCheckpointer(storage.engine)
