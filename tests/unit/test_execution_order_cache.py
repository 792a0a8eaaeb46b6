"""OrderCache: orders by client id from memory, order updates and balances written behind, in order."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path
from typing import Any, cast

from aitrader.models import OrderStatus, TradingMode
from aitrader.storage.base import Storage
from aitrader.storage.sql import SQLStorage
from aitrader.trading import PaperBroker
from aitrader.trading.execution import ExecutionService, PriceCache
from aitrader.trading.order_cache import OrderCache
from tests.unit.test_execution import BTC


class Queue(list[tuple[str, tuple[Any, ...], dict[str, Any]]]):
    def __call__(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.append((method, args, kwargs))

    def flush(self, storage: SQLStorage) -> None:
        for method, args, kwargs in self:
            getattr(storage, method)(*args, **kwargs)
        self.clear()


def test_order_updates_and_balances_are_written_behind_and_close_lands_after_them(tmp_path: Path) -> None:
    # Arrange
    sql = SQLStorage(f"sqlite:///{tmp_path / 'cache.db'}")
    queue = Queue()
    cached = cast(Storage, OrderCache(sql, "alice", write_behind=queue))
    prices = PriceCache()
    prices.update({"BTCUSDT": D("100")})
    broker = PaperBroker(user_id="alice", rules={"BTCUSDT": BTC}, price_source=prices, storage=cached,
                         slippage_bps=D(0))
    queue.flush(sql)  # the starting balance
    service = ExecutionService(broker, cached, "alice", mode=TradingMode.PAPER, prices=prices)
    # Act
    answer = service.submit_manual({"symbol": "BTCUSDT", "side": "BUY", "quantity": "1"})
    stored_before_flush = sql.get_order_by_client_id(answer["client_order_id"])
    queued = [method for method, _, _ in queue]
    queue.flush(sql)
    # Assert: the order was stored (PENDING_SUBMIT) before it was sent; its fill was written behind
    assert answer["status"] == "FILLED" and answer["position"] is not None
    assert stored_before_flush is not None and stored_before_flush.status is OrderStatus.PENDING_SUBMIT
    assert queued == ["set_balances", "update_order"]
    assert sql.get_order_by_client_id(answer["client_order_id"]).status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert {b.asset: b.free for b in sql.get_balances("alice")}["BTC"] == 1


def test_a_restarted_cache_finds_orders_stored_before(tmp_path: Path) -> None:
    sql = SQLStorage(f"sqlite:///{tmp_path / 'cache.db'}")
    prices = PriceCache()
    prices.update({"BTCUSDT": D("100")})
    broker = PaperBroker(user_id="alice", rules={"BTCUSDT": BTC}, price_source=prices, storage=sql)
    service = ExecutionService(broker, sql, "alice", mode=TradingMode.PAPER, prices=prices)
    answer = service.submit_manual({"symbol": "BTCUSDT", "side": "BUY", "quantity": "1"})
    restarted = OrderCache(sql, "alice")
    found = restarted.get_order_by_client_id(answer["client_order_id"])
    assert found is not None and found.status is OrderStatus.FILLED
    assert restarted.get_order_by_client_id("ait-unknown") is None


def test_a_fill_reaches_the_store_as_one_message(tmp_path: Path) -> None:
    # Arrange: every write-behind message is recorded separately
    sql = SQLStorage(f"sqlite:///{tmp_path / 'batch.db'}")
    singles = Queue()
    messages: list[list[tuple[str, tuple[Any, ...], dict[str, Any]]]] = []
    cached = cast(Storage, OrderCache(sql, "alice", write_behind=singles, write_behind_many=messages.append))
    prices = PriceCache()
    prices.update({"BTCUSDT": D("100")})
    broker = PaperBroker(user_id="alice", rules={"BTCUSDT": BTC}, price_source=prices, storage=cached,
                         slippage_bps=D(0))
    singles.flush(sql)
    messages.clear()
    service = ExecutionService(broker, cached, "alice", mode=TradingMode.PAPER, prices=prices)
    # Act
    service.submit_manual({"symbol": "BTCUSDT", "side": "BUY", "quantity": "1"})
    # Assert: the balances and the order's FILLED status travelled together, never one without the other
    assert singles == []
    fill_messages = [m for m in messages if any(method == "set_balances" for method, _, _ in m)]
    assert fill_messages, messages
    first = fill_messages[0]
    methods = [method for method, _, _ in first]
    assert "set_balances" in methods and "update_order" in methods
    statuses = [kw.get("status") for method, _, kw in first if method == "update_order"]
    assert OrderStatus.FILLED in statuses
