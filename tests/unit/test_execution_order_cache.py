"""OrderCache: orders by client id from memory; each paper broker operation's writes as one synchronous message."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path
from typing import Any, cast

import pytest

from aitrader.models import OrderStatus, TradingMode
from aitrader.storage.base import Storage, StorageUnavailable
from aitrader.storage.sql import SQLStorage
from aitrader.trading import PaperBroker
from aitrader.trading.execution import ExecutionService, PriceCache
from aitrader.trading.order_cache import OrderCache
from tests.unit.test_execution import BTC

Write = tuple[str, tuple[Any, ...], dict[str, Any]]


class Messages:
    """A `write_many` that applies each message to SQLite at once (like Store.call_many), and records it."""

    def __init__(self, storage: SQLStorage) -> None:
        self.storage = storage
        self.sent: list[list[Write]] = []
        self.down = False

    def __call__(self, writes: list[Write]) -> list[Any]:
        if self.down:
            raise StorageUnavailable("the store is down")
        self.sent.append(list(writes))
        return [getattr(self.storage, method)(*args, **kwargs) for method, args, kwargs in writes]


def paper(tmp_path: Path) -> tuple[SQLStorage, Messages, ExecutionService, PaperBroker]:
    sql = SQLStorage(f"sqlite:///{tmp_path / 'cache.db'}")
    messages = Messages(sql)
    cached = cast(Storage, OrderCache(sql, "alice", write_many=messages))
    prices = PriceCache()
    prices.update({"BTCUSDT": D("100")})
    broker = PaperBroker(user_id="alice", rules={"BTCUSDT": BTC}, price_source=prices, storage=cached,
                         slippage_bps=D(0), starting_balance=D(1000))
    return sql, messages, ExecutionService(broker, cached, "alice", mode=TradingMode.PAPER, prices=prices), broker


def test_a_fill_is_in_storage_when_the_order_is_acknowledged(tmp_path: Path) -> None:
    # Arrange
    sql, messages, service, _ = paper(tmp_path)
    messages.sent.clear()
    # Act
    answer = service.submit_manual({"symbol": "BTCUSDT", "side": "BUY", "quantity": "1"})
    # Assert: one message carried the filled order and the balances, and storage has them all
    assert answer["status"] == "FILLED" and answer["position"] is not None
    assert [[method for method, _, _ in message] for message in messages.sent] == [["create_order", "update_balances"]]
    stored = sql.get_order_by_client_id(answer["client_order_id"])
    assert stored is not None and stored.status is OrderStatus.FILLED
    assert {b.asset: b.free for b in sql.get_balances("alice")}["BTC"] == 1
    assert sql.get_position(answer["position"]["id"]).size == 1


def test_a_close_sends_its_exit_fill_and_the_close_as_one_message(tmp_path: Path) -> None:
    # Arrange
    sql, messages, service, _ = paper(tmp_path)
    position = service.submit_manual({"symbol": "BTCUSDT", "side": "BUY", "quantity": "1"})["position"]
    messages.sent.clear()
    # Act
    view = service.close_position(position["id"], "stop_loss", D("100"))
    # Assert
    assert [[method for method, _, _ in message] for message in messages.sent] == [
        ["create_order", "update_balances", "close_position"]]
    stored = sql.get_position(position["id"])
    assert view["status"] == "stopped" and stored.exit_order_id is not None
    exit_order = sql.get_order(stored.exit_order_id)
    assert exit_order.status is OrderStatus.FILLED and exit_order.executed_qty == 1
    assert {b.asset: b.free for b in sql.get_balances("alice")}["BTC"] == 0


def test_a_close_whose_writes_fail_can_be_retried_and_closes_once(tmp_path: Path) -> None:
    # Arrange
    sql, messages, service, broker = paper(tmp_path)
    position = service.submit_manual({"symbol": "BTCUSDT", "side": "BUY", "quantity": "1"})["position"]
    holding = broker.balances()
    messages.down = True
    # Act
    with pytest.raises(StorageUnavailable):
        service.close_position(position["id"], "stop_loss", D("100"))
    unchanged = broker.balances() == holding and sql.get_position(position["id"]).status.value == "open"
    messages.down = False
    view = service.close_position(position["id"], "stop_loss", D("100"))
    # Assert: the failed attempt left nothing behind; the retry sold once
    assert unchanged and view["status"] == "stopped"
    exits = [o for o in sql.list_orders("alice") if o.purpose == "exit"]
    assert [o.status for o in exits] == [OrderStatus.FILLED]
    assert {b.asset: b.free for b in sql.get_balances("alice")}["BTC"] == 0


def test_a_restarted_cache_finds_orders_stored_before(tmp_path: Path) -> None:
    sql, _, service, _ = paper(tmp_path)
    answer = service.submit_manual({"symbol": "BTCUSDT", "side": "BUY", "quantity": "1"})
    restarted = OrderCache(sql, "alice")
    found = restarted.get_order_by_client_id(answer["client_order_id"])
    assert found is not None and found.status is OrderStatus.FILLED
    assert restarted.get_order_by_client_id("ait-unknown") is None


def test_an_order_whose_writes_fail_leaves_account_cache_and_storage_as_they_were(tmp_path: Path) -> None:
    # Arrange
    sql, messages, service, broker = paper(tmp_path)
    before = broker.balances()
    messages.down = True
    # Act
    with pytest.raises(StorageUnavailable):
        service.submit_manual({"symbol": "BTCUSDT", "side": "BUY", "quantity": "1", "client_order_id": "m-1"})
    # Assert: nothing happened, in memory or in storage
    assert broker.balances() == before
    assert sql.get_order_by_client_id("m-1") is None
    assert {b.asset: b.free for b in sql.get_balances("alice")} == {"USDT": 1000}
    # and the same order goes through once the store is back
    messages.down = False
    answer = service.submit_manual({"symbol": "BTCUSDT", "side": "BUY", "quantity": "1", "client_order_id": "m-1"})
    assert answer["status"] == "FILLED"
    assert {b.asset: b.free for b in sql.get_balances("alice")}["BTC"] == 1
