"""SymbolRules against Binance's documented filters: exact Decimal modulo, tick and step edge cases."""

from decimal import Decimal as D
from typing import Any

import pytest

from aitrader.models import OrderType
from aitrader.trading import FilterFailure, SymbolRules, rules_from_exchange_info
from aitrader.trading.rules import LotRule


@pytest.fixture
def ethbtc(binance_vectors: dict[str, Any]) -> SymbolRules:
    info = binance_vectors["rest:GET /api/v3/exchangeInfo(ASSEMBLED with filters)"]
    return rules_from_exchange_info(info)["ETHBTC"]


def _usdt_rules(**overrides: Any) -> SymbolRules:
    info = {
        "symbol": "BTCUSDT",
        "baseAsset": "BTC",
        "quoteAsset": "USDT",
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000.00", "tickSize": "0.01"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001", "maxQty": "9000", "stepSize": "0.00001"},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0", "maxQty": "80", "stepSize": "0"},
            {"filterType": "NOTIONAL", "minNotional": "5", "applyMinToMarket": True,
             "maxNotional": "9000000", "applyMaxToMarket": False, "avgPriceMins": 5},
        ],
        **overrides,
    }
    return SymbolRules.from_exchange_info(info)


def test_parses_the_documented_exchange_info(ethbtc: SymbolRules) -> None:
    assert (ethbtc.base_asset, ethbtc.quote_asset) == ("ETH", "BTC")
    assert ethbtc.tick_size == D("0.000001") and ethbtc.min_price == D("0.000001")
    assert ethbtc.lot.step_size == D("0.001") and ethbtc.lot.min_qty == D("0.001")
    assert ethbtc.market_lot is not None and ethbtc.market_lot.max_qty == D("100000")
    # NOTIONAL supersedes the legacy MIN_NOTIONAL listed before it
    assert (ethbtc.notional_filter, ethbtc.min_notional, ethbtc.max_notional) == ("NOTIONAL", D("10"), D("10000"))
    assert ethbtc.apply_min_to_market is False and ethbtc.apply_max_to_market is False


def test_legacy_min_notional_alone_is_used() -> None:
    rules = SymbolRules.from_exchange_info(
        {"symbol": "LTCBTC", "baseAsset": "LTC", "quoteAsset": "BTC",
         "filters": [{"filterType": "MIN_NOTIONAL", "minNotional": "0.001", "applyToMarket": False}]}
    )
    with pytest.raises(FilterFailure, match="Filter failure: MIN_NOTIONAL"):
        rules.check_notional(D("0.0009"))
    rules.check_notional(D("0.0009"), market=True)  # applyToMarket false


@pytest.mark.parametrize("price", ["0.000001", "0.000002", "0.123456", "99999.999999", "100000"])
def test_prices_on_the_tick_pass(ethbtc: SymbolRules, price: str) -> None:
    ethbtc.check_price(D(price))


@pytest.mark.parametrize(
    "price", ["0.0000005", "0.0000015", "0.1234565", "100000.000001", "0"]
)
def test_prices_off_the_tick_or_out_of_bounds_fail(ethbtc: SymbolRules, price: str) -> None:
    with pytest.raises(FilterFailure, match="^Filter failure: PRICE_FILTER") as failure:
        ethbtc.check_price(D(price))
    assert failure.value.code == -1013 and failure.value.filter_name == "PRICE_FILTER"


def test_tick_is_measured_from_min_price() -> None:
    # minPrice 0.05 with tick 0.1: Binance accepts 0.15, 0.25 ... and refuses 0.2
    rules = SymbolRules("X", "A", "B", min_price=D("0.05"), max_price=D("10"), tick_size=D("0.1"))
    rules.check_price(D("0.15"))
    with pytest.raises(FilterFailure, match="PRICE_FILTER"):
        rules.check_price(D("0.2"))


@pytest.mark.parametrize("qty", ["0.001", "0.002", "1.234", "100000"])
def test_quantities_on_the_step_pass(ethbtc: SymbolRules, qty: str) -> None:
    ethbtc.check_quantity(D(qty))


@pytest.mark.parametrize("qty", ["0.0009", "0.0015", "1.2345", "100000.001"])
def test_quantities_off_the_step_or_out_of_bounds_fail(ethbtc: SymbolRules, qty: str) -> None:
    with pytest.raises(FilterFailure, match="^Filter failure: LOT_SIZE"):
        ethbtc.check_quantity(D(qty))


def test_market_lot_size_applies_to_market_orders_only() -> None:
    rules = _usdt_rules()
    rules.check_quantity(D("100"))
    with pytest.raises(FilterFailure, match="MARKET_LOT_SIZE"):
        rules.check_quantity(D("100"), market=True)


def test_float_artefacts_do_not_fool_the_modulo() -> None:
    # 0.1 + 0.2 in float is 0.30000000000000004; Decimal keeps 0.3 exact and on the step
    rules = SymbolRules("X", "A", "B", lot=LotRule(D("0.1"), D("10"), D("0.1")))
    rules.check_quantity(D("0.1") + D("0.2"))
    with pytest.raises(FilterFailure):
        rules.check_quantity(D(0.1 + 0.2))


@pytest.mark.parametrize(
    ("wanted", "expected"),
    [("1.23456789", "1.23456"), ("0.00001999", "0.00001"), ("0.000009", "0"), ("9999", "9000"), ("2", "2")],
)
def test_round_quantity_rounds_down_to_the_step(wanted: str, expected: str) -> None:
    rules = _usdt_rules()
    rounded = rules.round_quantity(D(wanted))
    assert rounded == D(expected)
    if rounded:
        rules.check_quantity(rounded)


@pytest.mark.parametrize(
    ("price", "rounding", "expected"),
    [("65000.004", "nearest", "65000"), ("65000.005", "up", "65000.01"), ("65000.019", "down", "65000.01")],
)
def test_round_price_to_the_tick(price: str, rounding: str, expected: str) -> None:
    assert _usdt_rules().round_price(D(price), rounding) == D(expected)  # type: ignore[arg-type]


def test_notional_limits_for_limit_and_market_orders(ethbtc: SymbolRules) -> None:
    with pytest.raises(FilterFailure, match="^Filter failure: NOTIONAL.*below the minimum 10"):
        ethbtc.validate(OrderType.LIMIT, quantity=D("1"), price=D("9.999999"))
    with pytest.raises(FilterFailure, match="above the maximum"):
        ethbtc.validate(OrderType.LIMIT, quantity=D("1001"), price=D("10"))
    # applyMinToMarket / applyMaxToMarket are false for ETHBTC: market orders skip NOTIONAL
    ethbtc.validate(OrderType.MARKET, quantity=D("0.001"), average_price=D("0.05"))
    ethbtc.validate(OrderType.MARKET, quantity=D("99999"), average_price=D("1"))


def test_market_notional_uses_the_average_price_when_applied() -> None:
    rules = _usdt_rules()
    with pytest.raises(FilterFailure, match="NOTIONAL"):
        rules.validate(OrderType.MARKET, quantity=D("0.0001"), average_price=D("40000"))
    rules.validate(OrderType.MARKET, quantity=D("0.0001"), average_price=D("50000"))
    with pytest.raises(FilterFailure, match="NOTIONAL"):
        rules.validate(OrderType.MARKET, quantity=None, quote_quantity=D("4.99"))


def test_failure_message_says_what_to_do() -> None:
    with pytest.raises(FilterFailure) as failure:
        _usdt_rules().check_quantity(D("0.000015"))
    assert "round it down" in str(failure.value) and "0.00001" in str(failure.value)
