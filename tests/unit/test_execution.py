"""ExecutionService over a PaperBroker and SQLite: manual orders, signals, exactly-once closes, restore."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest

from aitrader.models import (
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    PositionStatus,
    Signal,
    Trader,
    TradingMode,
)
from aitrader.storage.sql import SQLStorage
from aitrader.trading import InsufficientBalance, PaperBroker, RiskLimitReached, SubmitOrder, SymbolRules
from aitrader.trading.execution import ExecutionService, PriceCache, exit_client_order_id
from aitrader.trading.journal import OrderJournal
from aitrader.trading.order_request import InvalidOrderRequest

BTC = SymbolRules.from_exchange_info(
    {
        "symbol": "BTCUSDT",
        "baseAsset": "BTC",
        "quoteAsset": "USDT",
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000", "stepSize": "0.00001"},
            {"filterType": "NOTIONAL", "minNotional": "5", "applyMinToMarket": True,
             "maxNotional": "9000000", "applyMaxToMarket": False},
        ],
    }
)


class Events(list[tuple[str, str, dict[str, Any]]]):
    def __call__(self, channel: str, type: str, data: dict[str, Any]) -> None:
        self.append((channel, type, data))

    def of(self, type: str) -> list[dict[str, Any]]:
        return [data for _, t, data in self]


@pytest.fixture
def storage(tmp_path: Path) -> SQLStorage:
    return SQLStorage(f"sqlite:///{tmp_path / 'exec.db'}")


def _service(storage: SQLStorage, events: Events | None = None, *, price: str = "50000",
             max_open: int = 10, slippage: str = "0") -> tuple[ExecutionService, PriceCache]:
    prices = PriceCache()
    prices.update({"BTCUSDT": D(price)})
    broker = PaperBroker(user_id="alice", rules={"BTCUSDT": BTC}, price_source=prices, storage=storage,
                         slippage_bps=D(slippage))
    service = ExecutionService(broker, storage, "alice", mode=TradingMode.PAPER, max_open_positions=max_open,
                               publish=events, prices=prices)
    return service, prices


def test_manual_market_buy_opens_a_long_with_its_fills(storage: SQLStorage) -> None:
    # Arrange
    events = Events()
    service, _ = _service(storage, events)
    # Act
    answer = service.submit_manual({"symbol": "btcusdt", "side": "BUY", "type": "MARKET", "quantity": "0.1",
                                    "stop_loss": 49000, "take_profit": "52000"})
    # Assert
    assert answer["status"] == "FILLED" and answer["executed_qty"] == "0.1"
    assert answer["fills"][0]["price"] == "50000" and D(answer["fills"][0]["commission"]) == 5
    position = answer["position"]
    assert position["side"] == "LONG" and position["size"] == "0.1" and position["entry_price"] == "50000"
    assert position["stop_loss"] == "49000" and position["fees"] == "5"
    stored = storage.get_position(position["id"])
    assert stored.status is PositionStatus.OPEN and stored.entry_order_id == storage.get_order(answer["id"]).id
    assert [t for _, t, _ in events] == ["order_update", "position_update"]


def test_manual_paper_sell_opens_a_short(storage: SQLStorage) -> None:
    service, _ = _service(storage)
    answer = service.submit_manual({"symbol": "BTCUSDT", "side": "SELL", "quote_quantity": 1000})
    assert answer["position"]["side"] == "SHORT" and answer["position"]["size"] == "0.02"


def test_resting_limit_buy_opens_its_position_when_the_price_crosses(storage: SQLStorage) -> None:
    # Arrange
    service, _ = _service(storage)
    answer = service.submit_manual({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.1",
                                    "price": "49000", "stop_loss": "48000"})
    assert answer["status"] == "NEW" and answer["position"] is None
    # Act
    untouched = service.on_prices({"BTCUSDT": D("49500")})
    [opened] = service.on_prices({"BTCUSDT": D("48990")})
    # Assert
    assert untouched == []
    assert opened["id"] == answer["position_id"] and opened["entry_price"] == "49000"
    assert opened["stop_loss"] == "48000"
    assert storage.get_order(answer["id"]).status is OrderStatus.FILLED


def test_insufficient_balance_is_typed_and_opens_no_position(storage: SQLStorage) -> None:
    service, _ = _service(storage)
    with pytest.raises(InsufficientBalance):
        service.submit_manual({"symbol": "BTCUSDT", "side": "BUY", "quantity": "1"})
    assert storage.list_positions("alice") == []
    [order] = storage.list_orders("alice")
    assert order.status is OrderStatus.REJECTED


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"symbol": "BTCUSDT", "side": "HOLD", "quantity": "1"}, "side must be one of BUY, SELL"),
        ({"symbol": "BTCUSDT", "side": "BUY"}, "exactly one of quantity"),
        ({"symbol": "BTCUSDT", "side": "BUY", "quantity": "-1"}, "quantity must be a positive number"),
        ({"symbol": "BTCUSDT", "side": "BUY", "quantity": "abc"}, "decimal number"),
        ({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1"}, "needs a price"),
        ({"symbol": "BTC/USDT", "side": "BUY", "quantity": "1"}, "not a Binance symbol"),
        ({"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.1", "stop_loss": "60000"}, "must be below"),
    ],
)
def test_bad_requests_are_rejected_before_anything_is_stored(storage: SQLStorage, body: dict[str, Any],
                                                             fragment: str) -> None:
    service, _ = _service(storage)
    with pytest.raises(InvalidOrderRequest, match=fragment):
        service.submit_manual(body)
    assert storage.list_orders("alice") == []


def test_max_open_positions_is_enforced(storage: SQLStorage) -> None:
    service, _ = _service(storage, max_open=1)
    service.submit_manual({"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.01"})
    with pytest.raises(RiskLimitReached):
        service.submit_manual({"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.01"})


def test_same_client_order_id_never_opens_twice(storage: SQLStorage) -> None:
    service, _ = _service(storage)
    body = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.01", "client_order_id": "my-order-1"}
    first, second = service.submit_manual(body), service.submit_manual(body)
    assert first["position"]["id"] == second["position"]["id"]
    assert len(storage.list_positions("alice")) == 1 and len(storage.list_orders("alice")) == 1


def test_close_exactly_once_with_one_exit_order(storage: SQLStorage) -> None:
    # Arrange
    events = Events()
    service, prices = _service(storage, events)
    opened = service.submit_manual({"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.1"})["position"]
    prices.update({"BTCUSDT": D("51000")})
    # Act
    closed = service.close_position(opened["id"], "stop_loss", trigger_price=D("49000"))
    again = service.close_position(opened["id"], "manual")
    # Assert: exit at the trigger price; pnl = (49000 - 50000) * 0.1 - 5 - 4.9 fees
    assert closed["status"] == "stopped" and closed["exit_price"] == "49000" and closed["close_reason"] == "stop_loss"
    assert closed["pnl"] == "-109.9" and closed["fees"] == "9.9"
    assert again == closed
    exits = [o for o in storage.list_orders("alice") if o.purpose == "exit"]
    assert len(exits) == 1 and exits[0].client_order_id == exit_client_order_id(opened["id"])
    assert sum(1 for _, t, d in events if t == "position_update" and d["status"] == "stopped") == 1
    assert service.broker.balances()["BTC"].free == 0


def test_a_second_service_closing_the_same_position_reuses_the_exit_order(storage: SQLStorage) -> None:
    # Arrange: a close whose process died after the exit filled but before the position was stored closed
    service, _ = _service(storage)
    opened = service.submit_manual({"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.1"})["position"]
    service._exit(storage.get_position(opened["id"]))
    # Act: the restarted service finishes the close
    restarted, _ = _service(storage, price="40000")
    restarted.restore()
    closed = storage.get_position(opened["id"])
    # Assert
    assert closed.status is PositionStatus.CLOSED and closed.exit_price == D("50000")
    assert len([o for o in storage.list_orders("alice") if o.purpose == "exit"]) == 1
    assert restarted.close_position(opened["id"], "manual")["close_reason"] == "recovered"


def test_restore_reloads_open_positions_and_expires_orders_left_in_flight(storage: SQLStorage) -> None:
    # Arrange
    service, _ = _service(storage)
    kept = service.submit_manual({"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.1"})["position"]
    resting = service.submit_manual({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.01",
                                     "price": "40000"})
    OrderJournal(storage, "alice", TradingMode.PAPER).begin(
        SubmitOrder("BTCUSDT", OrderSide.BUY, OrderType.MARKET, "ait-crashed", quantity=D("0.01")))
    # Act
    restarted, _ = _service(storage)
    views = restarted.restore()
    # Assert
    assert [v["id"] for v in views] == [kept["id"]] and restarted.open_positions == 1
    assert storage.get_order_by_client_id("ait-crashed").status is OrderStatus.EXPIRED  # type: ignore[union-attr]
    assert storage.get_order(resting["id"]).status is OrderStatus.NEW
    assert restarted.close_position(kept["id"], "manual")["status"] == "closed"


def test_restore_opens_the_position_of_an_entry_that_filled_before_a_crash(storage: SQLStorage) -> None:
    service, _ = _service(storage)
    answer = service.submit_manual({"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.1"})
    with storage._session() as session:  # the crash came between the fill and the position row
        session.delete(session.get(Position, answer["position_id"]))
        session.commit()
    restarted, _ = _service(storage)
    [view] = restarted.restore()
    assert view["id"] == answer["position_id"] and view["size"] == "0.1"


def _trader_and_signal(storage: SQLStorage) -> tuple[Trader, Signal]:
    trader = storage.create_trader(Trader.model_validate({
        "user_id": "alice", "name": "dip", "symbols": ["BTCUSDT"], "signal_code": "close[-1] < 1",
        "auto_trade": True, "stop_loss_pct": "2", "take_profit_pct": "5", "trailing_stop_pct": "1"}))
    signal, _ = storage.create_signal(Signal.model_validate({
        "trader_id": trader.id, "user_id": "alice", "symbol": "BTCUSDT", "timeframe": "1m",
        "candle_time": 1_700_000_000_000, "trigger_price": "50000"}))
    return trader, signal


def test_a_signal_opens_one_sized_position_with_the_traders_levels_even_when_retried(storage: SQLStorage) -> None:
    # Arrange
    service, _ = _service(storage)
    trader, signal = _trader_and_signal(storage)
    # Act
    first = service.open_from_signal(signal, trader)
    retried = service.open_from_signal(signal, trader)
    # Assert: 100 USDT at 50000 is 0.002 BTC; stop 2 % below, take-profit 5 % above
    assert first is not None and retried == first
    assert first["size"] == "0.002" and first["stop_loss"] == "49000" and first["take_profit"] == "52500"
    assert first["trailing_stop_pct"] == "1" and first["signal_id"] == signal.id
    assert len(storage.list_orders("alice")) == 1
    assert storage.get_signal(signal.id).status == "executed"


def test_a_retried_signal_after_a_restart_opens_nothing_new(storage: SQLStorage) -> None:
    service, _ = _service(storage)
    trader, signal = _trader_and_signal(storage)
    first = service.open_from_signal(signal, trader)
    restarted, _ = _service(storage)
    restarted.restore()
    assert restarted.open_from_signal(signal, trader) == first
    assert len(storage.list_orders("alice")) == 1
