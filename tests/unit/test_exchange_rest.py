"""python-binance's own Client against the local exchange, with only API_URL changed."""

from __future__ import annotations

from decimal import Decimal

import pytest
import requests
from binance.client import Client
from binance.exceptions import BinanceAPIException

from aitrader.exchange import LOCAL_API_KEY, LOCAL_API_SECRET, secret_for
from tests.unit.exchange_fixtures import manual_exchange  # noqa: F401


@pytest.fixture
def exchange(manual_exchange):  # noqa: F811
    handle, clock = manual_exchange
    handle.faults.clear()
    return handle, clock


def make_client(url: str, api_key: str = LOCAL_API_KEY, secret: str = LOCAL_API_SECRET) -> Client:
    client = Client(api_key, secret, ping=False)
    client.API_URL = url + "/api"
    return client


def fresh_client(url: str, name: str) -> Client:
    """A client on its own funded account (a new key starts with 10,000 USDT)."""
    key = f"test{name}"
    return make_client(url, key, secret_for(key))


def test_klines_are_twelve_field_rows_ending_with_the_open_candle(exchange) -> None:
    handle, clock = exchange
    client = make_client(handle.url)

    rows = client.get_klines(symbol="BTCUSDT", interval="1m", limit=1000)

    assert len(rows) == 1000
    assert all(len(r) == 12 for r in rows)
    assert [type(v) for v in rows[0]] == [int, str, str, str, str, str, int, str, int, str, str, str]
    now = client.get_server_time()["serverTime"]
    assert rows[-1][0] == now - now % 60_000


def test_exchange_info_lists_filters(exchange) -> None:
    handle, _ = exchange
    client = make_client(handle.url)

    info = client.get_exchange_info()
    btc = client.get_symbol_info("BTCUSDT")

    assert len(info["symbols"]) >= 10
    assert {f["filterType"] for f in btc["filters"]} == {"PRICE_FILTER", "LOT_SIZE", "NOTIONAL"}


def test_market_buy_fills_at_once_with_commission_in_base(exchange) -> None:
    handle, _ = exchange
    client = fresh_client(handle.url, "market")

    order = client.order_market_buy(symbol="ETHUSDT", quantity="0.1")
    account = {b["asset"]: b for b in client.get_account()["balances"]}

    assert order["status"] == "FILLED"
    fill = order["fills"][0]
    assert Decimal(fill["commission"]) == Decimal("0.0001")
    assert Decimal(account["ETH"]["free"]) == Decimal("0.0999")
    assert Decimal(account["USDT"]["free"]) == Decimal(10000) - Decimal(order["cummulativeQuoteQty"])


def test_limit_order_rests_is_queried_and_cancelled(exchange) -> None:
    handle, _ = exchange
    client = fresh_client(handle.url, "rest")
    price = Decimal(client.get_symbol_ticker(symbol="ETHUSDT")["price"]) / 2

    order = client.order_limit_buy(
        symbol="ETHUSDT", quantity="1", price=f"{price:.2f}", newClientOrderId="rest-1"
    )
    queried = client.get_order(symbol="ETHUSDT", origClientOrderId="rest-1")
    locked = {b["asset"]: b for b in client.get_account()["balances"]}["USDT"]["locked"]
    cancelled = client.cancel_order(symbol="ETHUSDT", orderId=order["orderId"])

    assert order["status"] == queried["status"] == "NEW"
    assert Decimal(locked) == Decimal(f"{price:.2f}")
    assert cancelled["status"] == "CANCELED"
    assert client.get_open_orders(symbol="ETHUSDT") == []


def test_resting_limit_fills_when_the_price_crosses(exchange) -> None:
    handle, clock = exchange
    client = fresh_client(handle.url, "cross")
    market = handle.exchange.market
    now = clock.now_ms()
    ahead = market.aggregate("BTCUSDT", now, now + 30 * 60_000)
    assert ahead is not None and ahead.low < market.price_ticks("BTCUSDT", now)
    limit = market.to_price("BTCUSDT", ahead.low)

    order = client.order_limit_buy(symbol="BTCUSDT", quantity="0.01", price=f"{limit:.2f}")
    clock.advance(30 * 60_000)
    filled = client.get_order(symbol="BTCUSDT", orderId=order["orderId"])

    assert order["status"] == "NEW"
    assert filled["status"] == "FILLED"
    assert Decimal(filled["cummulativeQuoteQty"]) == limit * Decimal("0.01")


def test_wrong_secret_is_rejected_with_1022(exchange) -> None:
    handle, _ = exchange
    client = make_client(handle.url, secret="not-the-secret")

    with pytest.raises(BinanceAPIException) as raised:
        client.get_account()

    assert raised.value.code == -1022


def test_quantity_off_the_step_size_is_a_lot_size_filter_failure(exchange) -> None:
    handle, _ = exchange
    client = make_client(handle.url)

    with pytest.raises(BinanceAPIException) as raised:
        client.order_market_buy(symbol="BTCUSDT", quantity="0.000015")

    assert (raised.value.code, raised.value.message) == (-1013, "Filter failure: LOT_SIZE")


def test_insufficient_balance_is_2010(exchange) -> None:
    handle, _ = exchange
    client = fresh_client(handle.url, "poor")

    with pytest.raises(BinanceAPIException) as raised:
        client.order_market_buy(symbol="BTCUSDT", quantity="5")

    assert (raised.value.code, raised.value.message) == (
        -2010,
        "Account has insufficient balance for requested action.",
    )


def test_duplicate_client_order_id_of_an_open_order_is_2010(exchange) -> None:
    handle, _ = exchange
    client = fresh_client(handle.url, "dup")
    price = Decimal(client.get_symbol_ticker(symbol="SOLUSDT")["price"]) / 2
    params = {"symbol": "SOLUSDT", "quantity": "1", "price": f"{price:.2f}", "newClientOrderId": "same-id"}
    client.order_limit_buy(**params)

    with pytest.raises(BinanceAPIException) as raised:
        client.order_limit_buy(**params)

    assert (raised.value.code, raised.value.message) == (-2010, "Duplicate order sent.")


def test_unknown_orders(exchange) -> None:
    handle, _ = exchange
    client = make_client(handle.url)

    with pytest.raises(BinanceAPIException) as cancel:
        client.cancel_order(symbol="BTCUSDT", orderId=999_999)
    with pytest.raises(BinanceAPIException) as query:
        client.get_order(symbol="BTCUSDT", orderId=999_999)
    with pytest.raises(BinanceAPIException) as symbol:
        client.get_klines(symbol="NOPEUSDT", interval="1m")

    assert (cancel.value.code, query.value.code, symbol.value.code) == (-2011, -2013, -1121)


def test_dropped_response_still_places_the_order(exchange) -> None:
    handle, _ = exchange
    client = fresh_client(handle.url, "drop")
    handle.faults.drop_next_response("POST /api/v3/order")

    with pytest.raises(requests.exceptions.ConnectionError):
        client.order_market_buy(symbol="BTCUSDT", quantity="0.001", newClientOrderId="dropped-1")
    placed = client.get_order(symbol="BTCUSDT", origClientOrderId="dropped-1")

    assert placed["status"] == "FILLED"


def test_failed_request_is_not_processed(exchange) -> None:
    handle, _ = exchange
    client = fresh_client(handle.url, "fail")
    handle.faults.fail_next("POST /api/v3/order", status=503)

    with pytest.raises(BinanceAPIException) as raised:
        client.order_market_buy(symbol="BTCUSDT", quantity="0.001", newClientOrderId="failed-1")

    assert raised.value.status_code == 503
    with pytest.raises(BinanceAPIException) as missing:
        client.get_order(symbol="BTCUSDT", origClientOrderId="failed-1")
    assert missing.value.code == -2013
