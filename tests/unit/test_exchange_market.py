"""Synthetic market: determinism, exact aggregation across intervals, klines selection semantics."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from aitrader.exchange import DEFAULT_SYMBOLS, SyntheticMarket
from aitrader.exchange.market import combine
from aitrader.intervals import INTERVAL_MS

NOW = 1_767_607_230_000  # 2026-01-05 10:00:30 UTC


@pytest.fixture(scope="module")
def market() -> SyntheticMarket:
    return SyntheticMarket(DEFAULT_SYMBOLS, seed=11)


def test_same_seed_gives_identical_klines_in_a_new_instance(market: SyntheticMarket) -> None:
    restarted = SyntheticMarket(DEFAULT_SYMBOLS, seed=11)

    first = market.klines("ETHUSDT", "5m", NOW, limit=300)
    second = restarted.klines("ETHUSDT", "5m", NOW, limit=300)

    assert first == second


def test_other_seed_gives_other_prices(market: SyntheticMarket) -> None:
    other = SyntheticMarket(DEFAULT_SYMBOLS, seed=12)

    assert market.klines("BTCUSDT", "1m", NOW, limit=5) != other.klines("BTCUSDT", "1m", NOW, limit=5)


def test_hour_candle_is_the_aggregate_of_its_minute_candles(market: SyntheticMarket) -> None:
    hour = market.klines("BTCUSDT", "1h", NOW, limit=10)[3]

    minutes = market.klines("BTCUSDT", "1m", NOW, start_ms=hour.open_time, limit=60)

    assert [m.open_time for m in minutes][-1] == hour.close_time - 59_999
    assert combine([m.agg for m in minutes]) == hour.agg


def test_day_candle_is_the_aggregate_of_its_hour_candles(market: SyntheticMarket) -> None:
    day = market.klines("SOLUSDT", "1d", NOW, limit=3)[0]

    hours = market.klines("SOLUSDT", "1h", NOW, start_ms=day.open_time, limit=24)

    assert combine([h.agg for h in hours]) == day.agg


def test_minute_candle_is_the_aggregate_of_its_second_candles(market: SyntheticMarket) -> None:
    minute = market.klines("DOGEUSDT", "1m", NOW, limit=3)[0]

    seconds = market.klines("DOGEUSDT", "1s", NOW, start_ms=minute.open_time, limit=60)

    assert combine([s.agg for s in seconds]) == minute.agg


def test_partial_candle_is_last_and_open(market: SyntheticMarket) -> None:
    candles = market.klines("BTCUSDT", "1m", NOW, limit=3)

    assert [c.closed for c in candles] == [True, True, False]
    assert candles[-1].open_time == NOW - NOW % 60_000
    assert candles[-1].agg.close == market.price_ticks("BTCUSDT", NOW)


@pytest.mark.parametrize("interval", [i for i in INTERVAL_MS if INTERVAL_MS[i] <= INTERVAL_MS["1d"]])
def test_at_least_1000_historical_candles_for_every_interval_up_to_a_day(
    market: SyntheticMarket, interval: str
) -> None:
    candles = market.klines("XRPUSDT", interval, NOW, limit=1000)

    assert len(candles) == 1000
    steps = {b.open_time - a.open_time for a, b in zip(candles, candles[1:], strict=False)}
    assert steps == {INTERVAL_MS[interval]}
    assert all(
        c.agg.low <= min(c.agg.open, c.agg.close) <= max(c.agg.open, c.agg.close) <= c.agg.high
        for c in candles
    )


def test_start_time_selects_first_candles_at_or_after_it(market: SyntheticMarket) -> None:
    minute = NOW - NOW % 60_000 - 10 * 60_000
    start = minute + 1  # inside a minute: the next minute is first

    candles = market.klines("BTCUSDT", "1m", NOW, start_ms=start, limit=3)

    assert [c.open_time for c in candles] == [minute + 60_000 * k for k in (1, 2, 3)]


def test_end_time_selects_last_candles_opening_at_or_before_it(market: SyntheticMarket) -> None:
    end = NOW - NOW % 60_000 - 5 * 60_000

    candles = market.klines("BTCUSDT", "1m", NOW, end_ms=end, limit=4)

    assert [c.open_time for c in candles] == [end - 60_000 * k for k in (3, 2, 1, 0)]


def test_start_and_end_time_bound_the_range(market: SyntheticMarket) -> None:
    end = NOW - NOW % 60_000 - 60_000
    start = end - 4 * 60_000

    candles = market.klines("BTCUSDT", "1m", NOW, start_ms=start, end_ms=end, limit=500)

    assert [c.open_time for c in candles] == [start + 60_000 * k for k in range(5)]


def test_no_candles_in_the_future(market: SyntheticMarket) -> None:
    candles = market.klines("BTCUSDT", "1m", NOW, start_ms=NOW + 3_600_000, limit=10)

    assert candles == []


def test_weeks_open_on_monday(market: SyntheticMarket) -> None:
    week = market.klines("BTCUSDT", "1w", NOW, limit=2)[0]

    assert datetime.fromtimestamp(week.open_time / 1000, UTC).weekday() == 0


def test_minute_closes_do_not_sit_on_the_days_high_or_low_yet_reach_both() -> None:
    import numpy as np

    from aitrader.exchange.pathgen import PathGenerator
    from aitrader.exchange.symbols import DEFAULT_SYMBOLS

    paths = PathGenerator(42, DEFAULT_SYMBOLS)
    on_extreme = minutes = longest = wide_seconds = seconds_on_extreme = 0
    for spec in DEFAULT_SYMBOLS[:5]:
        for day in range(3200, 3210):
            block = paths.day_block(spec.symbol, day)
            _, high, low = paths.day_summary(spec.symbol, day)[:3]
            assert block.high.max() == high and block.low.min() == low
            at = (block.close == high) | (block.close == low)
            on_extreme += int(at.sum())
            minutes += len(at)
            run = 0
            for flag in at:
                run = run + 1 if flag else 0
                longest = max(longest, run)
            for minute in range(600, 660):  # seconds, where a minute spans enough ticks to tell
                seconds = paths.second_prices(spec.symbol, (17_167 + day) * 1440 + minute)
                if seconds.max() - seconds.min() >= 50:
                    wide_seconds += len(seconds)
                    seconds_on_extreme += int(np.count_nonzero((seconds == seconds.max()) | (seconds == seconds.min())))
    # Clipping the path into the day's range put 16 % of closes on an extreme, in runs of hours.
    assert on_extreme / minutes < 0.02
    assert longest <= 10
    assert wide_seconds > 1000 and seconds_on_extreme / wide_seconds < 0.1
