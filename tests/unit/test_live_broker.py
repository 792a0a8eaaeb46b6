"""LiveBroker through python-binance against the local exchange: fills, cancels, rejections, retries, reconcile."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path

import pytest

from aitrader.exchange import ExchangeConfig, ExchangeThread, secret_for, start_in_thread
from aitrader.models import OrderSide, OrderStatus, OrderType
from aitrader.storage.sql import SQLStorage
from aitrader.trading import (
    ENTRY,
    EXIT,
    CircuitOpen,
    FilterFailure,
    InsufficientBalance,
    ReconciliationMismatch,
    SubmitOrder,
    TemporaryError,
    UnknownOrder,
    client_order_id_for,
)
from aitrader.trading.circuit import CircuitState
from aitrader.trading.live import LiveBroker, binance_client


@pytest.fixture(scope="module")
def exchange() -> Iterator[ExchangeThread]:
    handle = start_in_thread(ExchangeConfig(port=0, seed=11, push_interval=5.0))
    yield handle
    handle.stop()


class Sleeps(list[float]):
    """Records the back-off sleeps instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def broker(exchange: ExchangeThread, tmp_path: Path, sleeps: Sleeps) -> Iterator[LiveBroker]:
    api_key = f"test{uuid.uuid4().hex}"  # every test gets its own freshly funded account
    storage = SQLStorage(f"sqlite:///{tmp_path / 'live.db'}")
    client = binance_client(exchange.url, api_key, secret_for(api_key))
    yield LiveBroker(client, storage, "alice", sleep=sleeps)
    storage.close()


def _buy(qty: str = "0.001", source: str = "signal-1", purpose: str = ENTRY) -> SubmitOrder:
    return SubmitOrder("BTCUSDT", OrderSide.BUY, OrderType.MARKET, client_order_id_for(source, purpose),
                       quantity=D(qty), purpose=purpose, signal_id=None)


def _orders_with(broker: LiveBroker, cid: str) -> int:
    return sum(1 for o in broker.client.get_all_orders(symbol="BTCUSDT") if o["clientOrderId"] == cid)


def test_market_buy_fills_and_is_journalled(broker: LiveBroker, sleeps: Sleeps) -> None:
    # Act
    result = broker.submit(_buy())
    # Assert
    assert result.status is OrderStatus.FILLED
    assert result.executed_qty == D("0.001") and result.average_price is not None
    stored = broker.storage.get_order_by_client_id(result.client_order_id)
    assert stored is not None and stored.status is OrderStatus.FILLED and stored.exchange_order_id
    assert {b.asset for b in broker.storage.get_balances("alice")} >= {"BTC", "USDT"}
    assert sleeps == []


def test_resubmitting_the_same_client_order_id_does_not_place_a_second_order(broker: LiveBroker) -> None:
    first = broker.submit(_buy())
    again = broker.submit(_buy())
    assert again.exchange_order_id == first.exchange_order_id
    assert _orders_with(broker, first.client_order_id) == 1


def test_limit_order_rests_and_cancels(broker: LiveBroker) -> None:
    far_below = broker.price("BTCUSDT") / 2
    request = SubmitOrder("BTCUSDT", OrderSide.BUY, OrderType.LIMIT, "rest-1", quantity=D("0.001"),
                          price=far_below.quantize(D("0.01")))
    assert broker.submit(request).status is OrderStatus.NEW
    cancelled = broker.cancel("BTCUSDT", "rest-1")
    assert cancelled.status is OrderStatus.CANCELED and cancelled.client_order_id == "rest-1"
    assert broker.order_status("BTCUSDT", "rest-1").status is OrderStatus.CANCELED
    with pytest.raises(UnknownOrder):
        broker.cancel("BTCUSDT", "rest-1")
    with pytest.raises(UnknownOrder):
        broker.order_status("BTCUSDT", "never-sent")


def test_insufficient_balance_is_typed_and_not_retried(broker: LiveBroker, sleeps: Sleeps) -> None:
    with pytest.raises(InsufficientBalance) as error:
        broker.submit(_buy("1"))  # ~65,000 USDT with 10,000 in the account
    assert error.value.code == -2010
    stored = broker.storage.get_order_by_client_id(_buy("1").client_order_id)
    assert stored is not None and stored.status is OrderStatus.REJECTED
    assert sleeps == [] and broker.breaker.consecutive_failures == 0


def test_filter_failure_is_typed_and_not_retried(broker: LiveBroker, sleeps: Sleeps) -> None:
    with pytest.raises(FilterFailure, match="Filter failure: LOT_SIZE"):
        broker.submit(_buy("0.0010001"))
    assert sleeps == []


def test_dropped_response_is_looked_up_not_sent_twice(broker: LiveBroker, exchange: ExchangeThread,
                                                      sleeps: Sleeps) -> None:
    # Arrange: the exchange fills the order, then drops the connection before answering
    exchange.faults.drop_next_response("POST /api/v3/order")
    # Act
    result = broker.submit(_buy())
    # Assert
    assert result.status is OrderStatus.FILLED
    assert _orders_with(broker, result.client_order_id) == 1
    assert sleeps == [0.5]
    assert broker.balances()["BTC"].free == D("0.000999")  # one fill, 0.1 % commission in BTC


def test_5xx_before_processing_is_looked_up_then_resent_once(broker: LiveBroker, exchange: ExchangeThread,
                                                           sleeps: Sleeps) -> None:
    exchange.faults.fail_next("POST /api/v3/order", status=503)
    result = broker.submit(_buy())
    assert result.status is OrderStatus.FILLED
    assert _orders_with(broker, result.client_order_id) == 1
    assert sleeps == [0.5]


def test_unconfirmed_order_stays_pending_and_reconcile_settles_it(broker: LiveBroker,
                                                                 exchange: ExchangeThread) -> None:
    # Arrange: every attempt fails with 503 before the exchange processes it
    exchange.faults.fail_next("/api/v3/order", status=503, times=5)
    request = _buy()
    # Act
    with pytest.raises(TemporaryError, match="PENDING_SUBMIT"):
        broker.submit(request)
    exchange.faults.clear()
    stored = broker.storage.get_order_by_client_id(request.client_order_id)
    assert stored is not None and stored.status is OrderStatus.PENDING_SUBMIT
    broker.reconcile()
    # Assert: the exchange never saw it, so it is expired and nothing was placed
    stored = broker.storage.get_order_by_client_id(request.client_order_id)
    assert stored is not None and stored.status is OrderStatus.EXPIRED
    assert _orders_with(broker, request.client_order_id) == 0


def test_reconcile_adopts_balances_on_first_start_then_detects_strays(broker: LiveBroker) -> None:
    # Arrange: a fresh account is in sync once its balances are adopted
    assert broker.reconcile() is None
    assert broker.storage.get_balances("alice")[0].asset == "USDT"
    # an order placed behind the engine's back
    price = (broker.price("BTCUSDT") / 2).quantize(D("0.01"))
    broker.client.create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                               quantity="0.001", price=str(price), newClientOrderId="stray-1")
    # Act
    mismatch = broker.reconcile()
    # Assert
    assert isinstance(mismatch, ReconciliationMismatch)
    assert any("stray-1" in line for line in mismatch.differences)
    assert "USDT balance" not in str(mismatch)  # locked funds still count towards the total
    with pytest.raises(ReconciliationMismatch, match="Opening new positions is stopped"):
        broker.submit(_buy(purpose=ENTRY))
    # closing is still allowed: sell what we do not have is refused by the exchange, not by the block
    with pytest.raises(InsufficientBalance):
        broker.submit(SubmitOrder("BTCUSDT", OrderSide.SELL, OrderType.MARKET, "exit-1",
                                  quantity=D("0.001"), purpose=EXIT))


def test_reconcile_reports_balance_differences(broker: LiveBroker) -> None:
    broker.reconcile()
    broker.client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.001")
    mismatch = broker.reconcile()
    assert mismatch is not None and broker.entries_blocked is mismatch
    assert any(line.startswith("BTC balance is 0.000999") for line in mismatch.differences)


def test_repeated_5xx_open_the_circuit(broker: LiveBroker, exchange: ExchangeThread) -> None:
    # Arrange: 3 attempts per submit, the breaker opens at the 5th consecutive failure
    exchange.faults.fail_next("/api/v3/order", status=503, times=10)
    with pytest.raises(TemporaryError):
        broker.submit(_buy(source="a"))
    # Act / Assert: the second submit trips the breaker before its third attempt
    with pytest.raises(CircuitOpen, match="paused"):
        broker.submit(_buy(source="b"))
    assert broker.breaker.state is CircuitState.OPEN
    exchange.faults.clear()
