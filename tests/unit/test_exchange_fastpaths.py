"""The local exchange's faster paths give exactly what the plain ones give."""

from __future__ import annotations

from decimal import Decimal

import pytest

from aitrader.exchange.market import Agg, SyntheticMarket, combine
from aitrader.exchange.pathgen import PathGenerator
from aitrader.exchange.payloads import units
from aitrader.exchange.symbols import DEFAULT_SYMBOLS

DAYS = 1_200  # crosses two 512-day chunks of daily draws


@pytest.mark.parametrize("value", [0, 1, 7, 99_999_999, 100_000_000, 123_456_789_012, 10**22 + 5, -1, -100_000_001])
def test_units_are_the_decimal_division_to_eight_places(value: int) -> None:
    assert units(value) == f"{Decimal(value) / Decimal(100_000_000):.8f}"


def test_daily_path_is_the_same_extended_at_once_or_day_by_day_and_interleaved() -> None:
    # Arrange
    at_once = PathGenerator(42, DEFAULT_SYMBOLS)
    stepwise = PathGenerator(42, DEFAULT_SYMBOLS)
    symbols = [spec.symbol for spec in DEFAULT_SYMBOLS[:3]]
    # Act
    expected = {symbol: at_once.day_summary(symbol, DAYS) for symbol in symbols}
    for day in range(0, DAYS + 1, 97):
        for symbol in symbols:  # interleaving symbols switches the cached chunk of draws
            stepwise.day_summary(symbol, day)
    # Assert
    for symbol in symbols:
        assert stepwise.day_summary(symbol, DAYS) == expected[symbol]
        assert [stepwise.anchor(symbol, d) for d in range(DAYS)] == [at_once.anchor(symbol, d) for d in range(DAYS)]


def test_a_single_span_combines_to_itself_and_a_1m_candle_equals_its_seconds() -> None:
    # Arrange
    market = SyntheticMarket(DEFAULT_SYMBOLS, 42)
    symbol, open_ms = DEFAULT_SYMBOLS[0].symbol, 1_700_000_040_000
    # Act
    minute = market.aggregate(symbol, open_ms, open_ms + 60_000)
    halves = [market.aggregate(symbol, open_ms, open_ms + 30_000), market.aggregate(symbol, open_ms + 30_000,
                                                                                    open_ms + 60_000)]
    # Assert
    assert minute is not None and all(isinstance(h, Agg) for h in halves)
    assert combine([minute]) is minute
    assert combine([h for h in halves if h is not None]) == minute
