"""CandleBuffer and MarketBuffers: in-place updates, open vs closed, gaps, dedupe, backfill."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aitrader.market.buffers import MarketBuffers
from aitrader.market.candles import Applied, CandleBuffer
from aitrader.market.wire import Kline, RestKline, TickerEvent

MIN = 60_000


def kline(minute: int, close: float = 1.0, *, closed: bool = True, symbol: str = "BTCUSDT") -> Kline:
    return Kline(
        open_time=minute * MIN, close_time=minute * MIN + MIN - 1, symbol=symbol, interval="1m",
        first_trade_id=1, last_trade_id=2, open=str(close - 0.5), close=str(close), high=str(close + 1),
        low=str(close - 1), volume="10", trades=2, closed=closed, quote_volume="20",
        taker_buy_base_volume="5", taker_buy_quote_volume="10",
    )


def rest_row(minute: int, close: float = 1.0) -> RestKline:
    return RestKline(minute * MIN, str(close - 0.5), str(close + 1), str(close - 1), str(close), "10",
                     minute * MIN + MIN - 1, "20", 2, "5", "10", "0")


def minutes(buffer: CandleBuffer) -> list[int]:
    return (buffer.open_times // MIN).tolist()


def test_appends_closed_candles_oldest_to_newest_and_keeps_last_n() -> None:
    buffer = CandleBuffer("BTCUSDT", "1m", capacity=3)

    results = [buffer.apply_closed(kline(m, close=m)) for m in range(5)]

    assert results == [Applied.APPENDED] * 5
    assert minutes(buffer) == [2, 3, 4]
    assert buffer.column("close").tolist() == [2.0, 3.0, 4.0]
    assert buffer.values().shape == (6, 3)


def test_many_appends_stay_correct_across_compactions() -> None:
    buffer = CandleBuffer("BTCUSDT", "1m", capacity=4)

    for m in range(23):
        buffer.apply_closed(kline(m, close=m))

    assert minutes(buffer) == [19, 20, 21, 22]
    assert buffer.column("close").tolist() == [19.0, 20.0, 21.0, 22.0]


def test_same_open_time_overwrites_instead_of_duplicating() -> None:
    buffer = CandleBuffer("BTCUSDT", "1m", capacity=5)
    for m in range(3):
        buffer.apply_closed(kline(m, close=m))

    last = buffer.apply_closed(kline(2, close=42))
    middle = buffer.apply_closed(kline(1, close=41))

    assert (last, middle) == (Applied.REPLACED, Applied.REPLACED)
    assert minutes(buffer) == [0, 1, 2]
    assert buffer.column("close").tolist() == [0.0, 41.0, 42.0]


def test_older_candle_outside_the_window_is_ignored() -> None:
    buffer = CandleBuffer("BTCUSDT", "1m", capacity=2)
    for m in (5, 6, 7):
        buffer.apply_closed(kline(m))

    assert buffer.apply_closed(kline(3)) is Applied.IGNORED
    assert minutes(buffer) == [6, 7]


def test_skipping_ahead_is_a_gap_reported_but_never_filled() -> None:
    buffer = CandleBuffer("BTCUSDT", "1m", capacity=10)
    buffer.apply_closed(kline(0))

    result = buffer.apply_closed(kline(4))

    assert result is Applied.GAP
    assert buffer.last_gap == (1 * MIN, 3 * MIN)
    assert minutes(buffer) == [0, 4]
    assert buffer.gaps() == [(1 * MIN, 3 * MIN)]


def test_open_candle_is_kept_apart_and_cleared_when_it_closes() -> None:
    buffer = CandleBuffer("BTCUSDT", "1m", capacity=10)
    buffer.apply_closed(kline(0))

    buffer.update_open(kline(1, close=7, closed=False))
    open_candle = buffer.open_candle
    buffer.apply_closed(kline(1, close=8))

    assert open_candle is not None and open_candle[0] == MIN and open_candle[1][3] == 7.0
    assert len(buffer) == 2
    assert buffer.open_candle is None


def test_open_candle_older_than_last_closed_is_refused() -> None:
    buffer = CandleBuffer("BTCUSDT", "1m", capacity=10)
    buffer.apply_closed(kline(5))

    assert buffer.update_open(kline(5, closed=False)) is False
    assert buffer.open_candle is None


def test_monthly_gap_is_measured_in_calendar_months() -> None:
    day = 86_400_000
    jan, feb, mar, apr = 1704067200000, 1704067200000 + 31 * day, 1704067200000 + 60 * day, 1704067200000 + 91 * day
    buffer = CandleBuffer("BTCUSDT", "1M", capacity=5)

    buffer.apply_closed(RestKline(jan, "1", "1", "1", "1", "1", feb - 1, "1", 1, "1", "1", "0"))
    contiguous = buffer.apply_closed(RestKline(feb, "1", "1", "1", "1", "1", mar - 1, "1", 1, "1", "1", "0"))
    skipped = buffer.apply_closed(RestKline(apr, "1", "1", "1", "1", "1", apr + 30 * day - 1, "1", 1, "1", "1", "0"))

    assert (contiguous, skipped) == (Applied.APPENDED, Applied.GAP)
    assert buffer.last_gap == (mar, mar)
    assert buffer.gaps() == [(mar, mar)]


def test_merge_fills_a_hole_with_real_candles_and_rest_wins_on_duplicates() -> None:
    buffer = CandleBuffer("BTCUSDT", "1m", capacity=5)
    for m in (0, 1, 4):
        buffer.apply_closed(kline(m, close=m))

    new = buffer.merge([rest_row(m, close=100 + m) for m in range(1, 6)])

    assert new == 3
    assert minutes(buffer) == [1, 2, 3, 4, 5]
    assert buffer.column("close").tolist() == [101.0, 102.0, 103.0, 104.0, 105.0]
    assert buffer.gaps() == []


class Model:
    """The specified semantics, written the slow obvious way."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.candles: dict[int, float] = {}

    def apply(self, minute: int, close: float) -> None:
        if not self.candles or minute >= max(self.candles) or minute in self.candles:
            self.candles[minute] = close
        kept = sorted(self.candles)[-self.capacity :]
        self.candles = {m: self.candles[m] for m in kept}


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(1, 6),
    updates=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 1000)), max_size=60),
)
def test_buffer_matches_the_model_for_any_sequence(capacity: int, updates: list[tuple[int, int]]) -> None:
    buffer = CandleBuffer("BTCUSDT", "1m", capacity=capacity)
    model = Model(capacity)

    for minute, close in updates:
        buffer.apply_closed(kline(minute, close=float(close)))
        model.apply(minute, float(close))

    assert minutes(buffer) == sorted(model.candles)
    assert buffer.column("close").tolist() == [model.candles[m] for m in sorted(model.candles)]


@settings(max_examples=60, deadline=None)
@given(
    live=st.lists(st.integers(0, 40), max_size=30),
    rest_end=st.integers(0, 40),
)
def test_backfill_leaves_no_gap_and_no_duplicate(live: list[int], rest_end: int) -> None:
    capacity = 8
    buffers = MarketBuffers(capacity)
    buffers.add("BTCUSDT", ["1m"])
    for minute in live:
        buffers.apply_kline(kline(minute))
    newest = max([rest_end, *live])
    rows = [rest_row(m) for m in range(max(0, newest - capacity), newest + 2)]  # last row still open

    result = buffers.backfill("BTCUSDT", "1m", rows, now_ms=(newest + 1) * MIN + 1)

    buffer = buffers.buffer("BTCUSDT", "1m")
    got = minutes(buffer)
    assert got == list(range(newest - len(got) + 1, newest + 1))
    assert len(got) == min(capacity, newest + 1)
    assert result.remaining_gaps == ()
    assert buffer.open_candle is not None and buffer.open_candle[0] == (newest + 1) * MIN


def test_frame_is_symbols_by_bars_nan_left_padded_with_optional_open_candle() -> None:
    buffers = MarketBuffers(capacity=4)
    buffers.add("BTCUSDT", ["1m"])
    buffers.add("ETHUSDT", ["1m"])
    for m in range(6):
        buffers.apply_kline(kline(m, close=m))
    buffers.apply_kline(kline(4, close=40, symbol="ETHUSDT"))
    buffers.apply_kline(kline(5, close=50, symbol="ETHUSDT"))
    buffers.apply_kline(kline(6, close=60, symbol="ETHUSDT", closed=False))

    closed = buffers.frame("1m")
    with_open = buffers.frame("1m", include_open=True)

    assert closed.symbols == ("BTCUSDT", "ETHUSDT")
    assert closed.close.shape == (2, 4) and closed.close.dtype == np.float64
    assert closed.close[0].tolist() == [2.0, 3.0, 4.0, 5.0]
    assert np.isnan(closed.close[1, :2]).all() and closed.close[1, 2:].tolist() == [40.0, 50.0]
    assert closed.last_open_time.tolist() == [5 * MIN, 5 * MIN]
    assert with_open.close.shape == (2, 5)
    assert with_open.has_open_candle.tolist() == [False, True]
    assert with_open.close[0, -1] == 5.0 and with_open.close[1, -1] == 60.0
    assert with_open.close[1, -2] == 50.0
    assert closed.high[0, -1] == 6.0 and closed.volume[0, -1] == 10.0


def test_frame_is_a_copy_not_a_live_view() -> None:
    buffers = MarketBuffers(capacity=3)
    buffers.add("BTCUSDT", ["1m"])
    buffers.apply_kline(kline(0, close=1))
    frame = buffers.frame("1m")

    buffers.apply_kline(kline(1, close=2))

    assert frame.close[0, -1] == 1.0


def test_klines_of_untracked_symbols_are_ignored() -> None:
    buffers = MarketBuffers(capacity=3)

    assert buffers.apply_kline(kline(0, symbol="DOGEUSDT")) is Applied.IGNORED
    assert buffers.keys == []


def test_latest_ticker_keeps_the_newest_event_as_decimals() -> None:
    buffers = MarketBuffers()

    def ticker(event_time: int, price: str) -> TickerEvent:
        return TickerEvent(event_time, "BTCUSDT", "1", "2.5", "1", "1", price, "1", "1", "1", "1", "1", "1",
                           "1", "1", "100", "123456.7", 0, 1, 0, 1, 2)

    buffers.update_ticker(ticker(2, "101.5"))
    buffers.update_ticker(ticker(1, "99"))

    snapshot = buffers.ticker("BTCUSDT")
    assert snapshot is not None
    assert (snapshot.price, snapshot.change_24h_pct, snapshot.volume_24h_quote, snapshot.event_time) == (
        Decimal("101.5"), Decimal("2.5"), Decimal("123456.7"), 2,
    )
    assert buffers.ticker("ETHUSDT") is None


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        CandleBuffer("BTCUSDT", "1m", capacity=0)
