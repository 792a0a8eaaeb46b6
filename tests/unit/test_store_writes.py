"""The Store actor's write rules, on its plain class (no Ray started): money writes are never queued,
and a queued P&L mark never lands on a closed position."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from actors.store import Store
from aitrader.config import Settings
from tests.integration.test_storage_contract import make_position


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    plain = Store.__ray_actor_class__(Settings(user_id="alice", sqlite_path=tmp_path / "data.db"),  # type: ignore[attr-defined]
                                      flush_interval_s=3600)  # flushed by hand in these tests
    yield plain
    plain.shutdown()


@pytest.mark.parametrize(("method", "kwargs"), [("set_balances", {}), ("create_order", {}),
                                                 ("close_position", {}), ("update_position", {"status": "closed"})])
def test_money_writes_cannot_be_queued(store: Any, method: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="moves money and cannot be queued"):
        store.enqueue(method, "x", **kwargs)
    assert store.health()["queued"] == 0


def test_a_mark_queued_before_a_close_does_not_overwrite_it(store: Any) -> None:
    # Arrange: a mark is queued, then the position is closed (money writes do not wait for the queue)
    position = store.call("create_position", make_position())
    store.enqueue("update_position", position.id, current_price=Decimal("1"), pnl=Decimal("-999"))
    [(closed, first)] = store.call_many([("close_position", (position.id,), {
        "exit_price": Decimal("50"), "pnl": Decimal("5"), "pnl_pct": Decimal("1"), "reason": "stop_loss"})])
    # Act
    remaining = store.flush()
    # Assert
    stored = store.call("get_position", position.id)
    assert first and remaining == 0
    assert stored.current_price == Decimal("50") and stored.pnl == Decimal("5")


def test_a_mark_of_an_open_position_is_written(store: Any) -> None:
    position = store.call("create_position", make_position())
    store.enqueue("update_position", position.id, current_price=Decimal("123"))
    assert store.flush() == 0
    assert store.call("get_position", position.id).current_price == Decimal("123")


def test_a_create_retried_after_it_was_stored_returns_the_stored_row(store: Any) -> None:
    position = store.call("create_position", make_position())
    assert store.call("create_position", position).id == position.id


def test_call_many_answers_only_the_last_result_when_asked(store: Any) -> None:
    position = make_position()
    close = {"exit_price": Decimal("64100"), "pnl": Decimal("0.1"), "pnl_pct": Decimal("0.1"), "reason": "take_profit"}
    answer = store.call_many([("create_position", (position,), {}), ("close_position", (position.id,), close)],
                             last_only=True)
    [(closed, closed_now)] = answer
    assert closed_now and closed.id == position.id and closed.exit_price == Decimal("64100")


def test_a_run_of_queued_marks_is_applied_at_once_and_skips_a_closed_position(store: Any) -> None:
    # Arrange: two open positions; one is closed after marks of both were queued
    kept, gone = store.call("create_position", make_position()), store.call("create_position", make_position())
    store.enqueue_many([("update_position", (kept.id,), {"current_price": Decimal("64100")}),
                        ("update_position", (gone.id,), {"current_price": Decimal("1"), "pnl": Decimal("-9")}),
                        ("update_position", (kept.id,), {"current_price": Decimal("64200")})])
    store.call("close_position", gone.id, exit_price=Decimal("63500"), pnl=Decimal("-1"), pnl_pct=Decimal("-1"),
               reason="stop_loss")
    # Act
    remaining = store.flush()
    # Assert
    assert remaining == 0 and store.health()["written"] == 3
    assert store.call("get_position", kept.id).current_price == Decimal("64200")
    assert store.call("get_position", gone.id).current_price == Decimal("63500")


def test_a_caller_waiting_for_the_lock_goes_before_the_flushers_next_batch(store: Any) -> None:
    # Arrange: marks are queued; a close waits for the Store's lock (held here) while the flusher runs
    positions = [store.call("create_position", make_position()) for _ in range(3)]
    store.enqueue_many([("update_position", (p.id,), {"current_price": Decimal("64100")}) for p in positions])
    applied: list[str] = []
    storage = store._storage
    for name in ("apply_many", "mark_positions"):
        def record(*args: Any, _name: str = name, _inner: Any = getattr(storage, name)) -> Any:
            applied.append(_name)
            return _inner(*args)
        setattr(storage, name, record)
    close = {"exit_price": Decimal("63500"), "pnl": Decimal("-1"), "pnl_pct": Decimal("-1"), "reason": "stop_loss"}
    store._lock.acquire()
    caller = threading.Thread(target=store.call_many, args=([("close_position", (positions[0].id,), close),
                                                            ("update_balances", ("alice", []), {})],))
    caller.start()
    while not store._waiting:
        time.sleep(0.001)
    flusher = threading.Thread(target=store._flush_in_turn)
    flusher.start()
    time.sleep(0.05)
    # Act
    store._lock.release()
    caller.join(5)
    flusher.join(5)
    # Assert: the close first, then the marks, which skip the closed position
    assert applied == ["apply_many", "mark_positions"]
    assert store.health()["queued"] == 0
    assert store.call("get_position", positions[0].id).current_price == Decimal("63500")
    assert store.call("get_position", positions[2].id).current_price == Decimal("64100")
