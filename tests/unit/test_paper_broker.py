"""PaperBroker: market/limit fills, slippage, commission, balance and filter rejections, persistence."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal as D
from pathlib import Path

import pytest

from aitrader.models import Balance, OrderSide, OrderStatus, OrderType
from aitrader.storage.base import StorageUnavailable
from aitrader.storage.sql import SQLStorage
from aitrader.trading import (
    FilterFailure,
    InsufficientBalance,
    PaperBroker,
    SubmitOrder,
    SymbolRules,
    UnknownOrder,
)

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


class Prices:
    """A settable price source."""

    def __init__(self, price: str) -> None:
        self.value = D(price)

    def __call__(self, symbol: str) -> D:
        return self.value


def _broker(prices: Prices, storage: SQLStorage | None = None, **kwargs: object) -> PaperBroker:
    return PaperBroker(user_id="alice", rules={"BTCUSDT": BTC}, price_source=prices, storage=storage, **kwargs)  # type: ignore[arg-type]


def _market(side: OrderSide, qty: str, cid: str = "c1") -> SubmitOrder:
    return SubmitOrder("BTCUSDT", side, OrderType.MARKET, cid, quantity=D(qty))


def _limit(side: OrderSide, qty: str, price: str, cid: str = "l1") -> SubmitOrder:
    return SubmitOrder("BTCUSDT", side, OrderType.LIMIT, cid, quantity=D(qty), price=D(price))


@pytest.fixture
def storage(tmp_path: Path) -> SQLStorage:
    return SQLStorage(f"sqlite:///{tmp_path / 'paper.db'}")


def test_starts_with_ten_thousand_usdt() -> None:
    assert _broker(Prices("50000")).balances()["USDT"].free == D("10000")


def test_market_buy_pays_slippage_and_commission_in_quote() -> None:
    # Arrange: 10 bps of 50000 is 50
    broker = _broker(Prices("50000"), slippage_bps=D(10))
    # Act
    result = broker.submit(_market(OrderSide.BUY, "0.1"))
    # Assert
    assert result.status is OrderStatus.FILLED
    assert result.average_price == D("50050")
    assert result.executed_qty == D("0.1") and result.cumulative_quote_qty == D("5005")
    assert result.commission("USDT") == D("5.005")
    balances = broker.balances()
    assert balances["BTC"].free == D("0.1")
    assert balances["USDT"].free == D("10000") - D("5005") - D("5.005")


def test_market_sell_gets_less_and_rounds_down_to_the_tick() -> None:
    broker = _broker(Prices("50000.03"), slippage_bps=D(5))
    broker.submit(_market(OrderSide.BUY, "0.1", "buy"))
    # 50000.03 - 25.000015 = 49975.029985 -> rounded down to 49975.02
    result = broker.submit(_market(OrderSide.SELL, "0.1", "sell"))
    assert result.average_price == D("49975.02")


def test_quote_quantity_market_buy_rounds_quantity_down_to_the_step() -> None:
    broker = _broker(Prices("30000"), slippage_bps=D(0))
    result = broker.submit(SubmitOrder("BTCUSDT", OrderSide.BUY, OrderType.MARKET, "q", quote_quantity=D("100")))
    assert result.executed_qty == D("0.00333")


def test_insufficient_balance_is_typed_and_leaves_balances_alone() -> None:
    broker = _broker(Prices("50000"), slippage_bps=D(0))
    with pytest.raises(InsufficientBalance, match="insufficient balance.*Order less") as error:
        broker.submit(_market(OrderSide.BUY, "0.2"))
    assert error.value.code == -2010
    assert broker.balances()["USDT"].free == D("10000")


def test_filter_failures_are_typed() -> None:
    broker = _broker(Prices("50000"))
    with pytest.raises(FilterFailure, match="Filter failure: LOT_SIZE"):
        broker.submit(_market(OrderSide.BUY, "0.000015"))
    with pytest.raises(FilterFailure, match="Filter failure: NOTIONAL"):
        broker.submit(_market(OrderSide.BUY, "0.00009", "c2"))
    with pytest.raises(FilterFailure, match="Filter failure: PRICE_FILTER"):
        broker.submit(_limit(OrderSide.BUY, "0.01", "49000.005"))


def test_resting_limit_buy_locks_funds_and_fills_when_crossed() -> None:
    prices = Prices("50000")
    broker = _broker(prices, slippage_bps=D(0))
    resting = broker.submit(_limit(OrderSide.BUY, "0.1", "49000"))
    assert resting.status is OrderStatus.NEW
    assert broker.balances()["USDT"].locked == D("4904.9")  # 4900 plus room for the 0.1 % fee

    assert broker.on_price("BTCUSDT", D("49000.01")) == []
    filled = broker.on_price("BTCUSDT", D("48500"))

    assert [r.status for r in filled] == [OrderStatus.FILLED]
    assert filled[0].average_price == D("49000")  # a resting order fills at its limit
    assert broker.balances()["USDT"].locked == D("0")
    assert broker.balances()["USDT"].free == D("10000") - D("4900") - D("4.9")
    assert broker.order_status("BTCUSDT", "l1").status is OrderStatus.FILLED


def test_marketable_limit_fills_at_once_at_the_limit_or_better() -> None:
    broker = _broker(Prices("50000"), slippage_bps=D(10))
    better = broker.submit(_limit(OrderSide.BUY, "0.01", "51000", "a"))
    capped = broker.submit(_limit(OrderSide.BUY, "0.01", "50010", "b"))
    assert better.average_price == D("50050")
    assert capped.average_price == D("50010")


def test_cancel_releases_locked_funds_and_unknown_cancels_are_typed() -> None:
    broker = _broker(Prices("50000"))
    broker.submit(_limit(OrderSide.BUY, "0.1", "40000"))
    cancelled = broker.cancel("BTCUSDT", "l1")
    assert cancelled.status is OrderStatus.CANCELED
    assert broker.balances()["USDT"] .free == D("10000")
    with pytest.raises(UnknownOrder, match="Unknown order sent"):
        broker.cancel("BTCUSDT", "l1")


def test_same_client_order_id_never_fills_twice() -> None:
    broker = _broker(Prices("50000"))
    first = broker.submit(_market(OrderSide.BUY, "0.01"))
    again = broker.submit(_market(OrderSide.BUY, "0.01"))
    assert again == first
    assert broker.balances()["BTC"].free == D("0.01")


def test_short_sell_borrows_base_and_buy_back_repays_it() -> None:
    prices = Prices("50000")
    broker = _broker(prices, slippage_bps=D(0))
    broker.submit(_market(OrderSide.SELL, "0.1", "open-short"))
    assert broker.balances()["BTC"].free == D("-0.1")
    assert broker.balances()["USDT"].free == D("10000") + D("5000") - D("5")
    prices.value = D("40000")
    broker.submit(_market(OrderSide.BUY, "0.1", "close-short"))
    assert broker.balances()["BTC"].free == D("0")
    assert broker.balances()["USDT"].free == D("10000") + D("1000") - D("5") - D("4")


def test_short_needs_collateral_and_can_be_switched_off() -> None:
    with pytest.raises(InsufficientBalance, match="collateral"):
        _broker(Prices("50000")).submit(_market(OrderSide.SELL, "0.3"))
    with pytest.raises(InsufficientBalance, match="short selling is off"):
        _broker(Prices("50000"), allow_short=False).submit(_market(OrderSide.SELL, "0.01"))


def test_balances_and_orders_survive_a_restart(storage: SQLStorage) -> None:
    # Arrange
    prices = Prices("50000")
    broker = _broker(prices, storage, slippage_bps=D(0))
    broker.submit(_market(OrderSide.BUY, "0.1", "m1"))
    broker.submit(_limit(OrderSide.BUY, "0.01", "45000", "rest"))
    before = broker.balances()
    # Act
    reloaded = _broker(prices, storage, slippage_bps=D(0))
    # Assert
    assert reloaded.balances() == before
    assert reloaded.order_status("BTCUSDT", "m1").status is OrderStatus.FILLED
    stored = storage.get_order_by_client_id("m1")
    assert stored is not None and stored.status is OrderStatus.FILLED and stored.fills
    filled = reloaded.on_price("BTCUSDT", D("44000"))
    assert [r.client_order_id for r in filled] == ["rest"]
    assert reloaded.balances()["USDT"].locked == D("0")


def test_rejected_orders_are_journalled(storage: SQLStorage) -> None:
    broker = _broker(Prices("50000"), storage)
    with pytest.raises(InsufficientBalance):
        broker.submit(_market(OrderSide.BUY, "1", "too-big"))
    stored = storage.get_order_by_client_id("too-big")
    assert stored is not None and stored.status is OrderStatus.REJECTED
    assert stored.error is not None and "insufficient" in stored.error


class RecordingStorage(SQLStorage):
    """SQLite storage that records each `update_balances` call's assets and can refuse the next one."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.written: list[list[str]] = []
        self.refuse_next = False

    def update_balances(self, user_id: str, balances: Sequence[Balance]) -> None:
        if self.refuse_next:
            self.refuse_next = False
            raise StorageUnavailable("the database is gone for a moment")
        self.written.append([b.asset for b in balances])
        super().update_balances(user_id, balances)


def test_a_fill_writes_only_the_balances_it_changed(tmp_path: Path) -> None:
    # Arrange: an account holding three assets
    storage = RecordingStorage(f"sqlite:///{tmp_path / 'paper.db'}")
    storage.set_balances("alice", [Balance(user_id="alice", asset=a, free=D(f), locked=D(0))
                                   for a, f in (("USDT", "10000"), ("ETH", "2"), ("BTC", "0"))])
    broker = _broker(Prices("50000"), storage, slippage_bps=D(0))
    # Act
    broker.submit(_market(OrderSide.BUY, "0.1", "m1"))
    # Assert: one write of the two assets the fill moved; storage agrees with the broker
    assert storage.written == [["BTC", "USDT"]]
    stored = {b.asset: b.free for b in storage.get_balances("alice")}
    assert stored == {a: b.free for a, b in broker.balances().items()} and stored["ETH"] == 2


def test_balances_a_failed_write_did_not_store_are_written_by_the_next_fill(tmp_path: Path) -> None:
    # Arrange
    storage = RecordingStorage(f"sqlite:///{tmp_path / 'paper.db'}")
    broker = _broker(Prices("50000"), storage, slippage_bps=D(0))
    before = broker.balances()
    storage.refuse_next = True
    # Act: the first buy's balance write fails (the broker rolls back), the second goes through
    with pytest.raises(StorageUnavailable):
        broker.submit(_market(OrderSide.BUY, "0.1", "m1"))
    unchanged = broker.balances()
    broker.submit(_market(OrderSide.BUY, "0.1", "m2"))
    # Assert
    assert unchanged == before
    assert {b.asset: b.free for b in storage.get_balances("alice")} == {
        a: b.free for a, b in broker.balances().items()}
    assert broker.balances()["BTC"].free == D("0.1")


def test_a_failed_operation_rolls_back_the_fills_and_orders_of_its_nested_operations() -> None:
    # Arrange: one earlier fill stays; a wider operation (as a close is) fills twice, then fails
    broker = _broker(Prices("50000"), slippage_bps=D(0))
    broker.submit(_market(OrderSide.BUY, "0.1", "kept"))
    before, fees_before = broker.balances(), dict(broker.fees_paid)
    # Act
    with pytest.raises(RuntimeError, match="the close write failed"), broker.operation():
        broker.submit(_market(OrderSide.BUY, "0.05", "n1"))
        broker.submit(_market(OrderSide.SELL, "0.01", "n2"))
        raise RuntimeError("the close write failed")
    # Assert
    assert broker.balances() == before and broker.fees_paid == fees_before
    assert broker.order_status("BTCUSDT", "kept").status is OrderStatus.FILLED
    for cid in ("n1", "n2"):
        with pytest.raises(UnknownOrder):
            broker.order_status("BTCUSDT", cid)
    assert broker.submit(_market(OrderSide.BUY, "0.05", "n1")).executed_qty == D("0.05")  # fills anew
