"""A stream shard answers the Markets panel's rows itself: ticker and the last closes as plain numbers
(the plain class under the @ray.remote shell, with buffers filled by hand; no Ray started)."""

from __future__ import annotations

import asyncio
from typing import Any

from actors.stream import StreamShard
from aitrader.market.wire import RestKline, TickerEvent

MIN = 60_000


def shard(symbols: list[str]) -> Any:
    plain = StreamShard.__ray_metadata__.modified_class
    return plain(0, "ws://127.0.0.1:1", "http://127.0.0.1:1", symbols, ["1m", "5m"], capacity=50)


def rest_row(minute: int, close: float) -> RestKline:
    return RestKline(minute * MIN, str(close), str(close + 1), str(close - 1), str(close), "10",
                     minute * MIN + MIN - 1, "20", 2, "5", "10", "0")


def ticker(symbol: str, price: str) -> TickerEvent:
    return TickerEvent(5, symbol, "1", "2.5", "1", "1", price, "1", "1", "1", "1", "1", "1",
                       "1", "1", "100", "123456.7", 0, 1, 0, 1, 2)


def test_rows_carry_the_ticker_and_the_last_closes_by_symbol() -> None:
    # Arrange
    stream = shard(["ETHUSDT", "BTCUSDT"])
    buffers = stream.feed.buffers
    buffers.backfill("BTCUSDT", "1m", [rest_row(m, 100.0 + m) for m in range(40)], now_ms=41 * MIN)
    buffers.update_ticker(ticker("BTCUSDT", "139.5"))
    buffers.update_ticker(ticker("ETHUSDT", "2000"))

    # Act
    rows = asyncio.run(stream.markets("1m", 30))

    # Assert
    assert [row["symbol"] for row in rows] == ["BTCUSDT", "ETHUSDT"]
    btc, eth = rows
    assert (btc["price"], btc["change24h"], btc["volume24h"]) == ("139.5", "2.5", "123456.7")
    assert btc["sparkline"] == [100.0 + m for m in range(10, 40)]
    assert all(type(value) is float for value in btc["sparkline"])
    assert eth["sparkline"] == [], "no candles yet: no line, and no NaN"


def test_a_symbol_without_a_ticker_has_no_row_yet() -> None:
    stream = shard(["BTCUSDT"])
    stream.feed.buffers.backfill("BTCUSDT", "1m", [rest_row(m, 1.0) for m in range(3)], now_ms=4 * MIN)

    assert asyncio.run(stream.markets("1m", 30)) == []
