"""Evaluating filters on constructed frames: results, NaN handling, budgets and runtime errors."""

from __future__ import annotations

import numpy as np
import pytest
import talib

from aitrader.filters import (
    FilterResourceError,
    FilterRuntimeError,
    FilterTimeout,
    MarketFrame,
    compile_filter,
)


def frame_from_closes(closes: dict[str, list[float]], volume: float = 100.0) -> MarketFrame:
    close = np.array(list(closes.values()), dtype=np.float64)
    return MarketFrame.from_arrays(
        list(closes), close, close + 1.0, close - 1.0, close, np.full(close.shape, volume)
    )


def random_frame(symbols: int = 6, bars: int = 120, seed: int = 3) -> MarketFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 + np.cumsum(rng.normal(0.0, 1.0, (symbols, bars)), axis=1)
    volume = 1000.0 * rng.random((symbols, bars)) + 1.0
    return MarketFrame.from_arrays(
        [f"S{i}" for i in range(symbols)], close, close + 0.5, close - 0.5, close, volume
    )


def test_condition_that_holds_for_exactly_one_symbol() -> None:
    # Arrange: only ETH closes above its open-bar level of 100
    frame = frame_from_closes({"BTC": [100.0, 99.0, 98.0], "ETH": [100.0, 101.0, 102.0], "SOL": [100.0] * 3})
    compiled = compile_filter("close[-1] > close[0] and volume[-1] > 0")
    # Act
    result = compiled.evaluate(frame)
    # Assert
    assert result.matched == ["ETH"]
    assert result.conditions == {
        "BTC": ["volume[-1] > 0"],
        "ETH": ["close[-1] > close[0]", "volume[-1] > 0"],
        "SOL": ["volume[-1] > 0"],
    }


def test_series_condition_counts_on_its_last_bar() -> None:
    frame = frame_from_closes({"UP": [1.0, 2.0, 3.0], "DOWN": [3.0, 2.0, 1.0]})
    result = compile_filter("close > 2").evaluate(frame)
    assert result.matched == ["UP"]


def test_warm_up_nan_comparisons_are_false() -> None:
    # Arrange: 10 bars, a 20-bar SMA is NaN everywhere
    frame = frame_from_closes({"A": [float(i) for i in range(10)]})
    # Act
    above, below = (
        compile_filter(f"close[-1] {op} sma(close, 20)[-1]").evaluate(frame) for op in (">", "<=")
    )
    # Assert
    assert above.matched == below.matched == []


def test_vectorised_result_equals_talib_per_symbol() -> None:
    # Arrange
    frame = random_frame()
    code = "rsi(close, 14) < 55 and close[-1] > ema(close, 20)[-1] and volume[-1] > 0.5 * sma(volume, 20)[-1]"
    expected = [
        symbol
        for row, symbol in enumerate(frame.symbols)
        if talib.RSI(frame.close[row], 14)[-1] < 55
        and frame.close[row, -1] > talib.EMA(frame.close[row], 20)[-1]
        and frame.volume[row, -1] > 0.5 * talib.SMA(frame.volume[row], 20)[-1]
    ]
    # Act
    result = compile_filter(code).evaluate(frame)
    # Assert
    assert result.matched == expected
    assert 0 < len(expected) < len(frame.symbols)


def test_crossover_with_assignment_and_tuple_unpacking() -> None:
    # Arrange: A crosses above 10 on the last bar, B stays above
    frame = frame_from_closes({"A": [9.0, 9.0, 11.0], "B": [12.0, 12.0, 12.0]})
    # Act
    result = compile_filter("level = 5 * 2\ncrossover(close, level)").evaluate(frame)
    # Assert
    assert result.matched == ["A"]


def test_short_history_symbol_is_padded_and_still_evaluated() -> None:
    # Arrange: NEW listed 3 bars ago (NaN-padded), OLD has full history
    nan = float("nan")
    frame = frame_from_closes({"OLD": [1.0, 2.0, 3.0, 4.0, 5.0], "NEW": [nan, nan, 1.0, 2.0, 3.0]})
    # Act
    result = compile_filter("sma(close, 3)[-1] == 2").evaluate(frame)
    # Assert
    assert result.matched == ["NEW"]


def test_read_only_frame_arrays_are_used_without_copy() -> None:
    # Arrange
    close = np.arange(12.0).reshape(3, 4)
    close.flags.writeable = False
    # Act
    frame = MarketFrame.from_arrays(["A", "B", "C"], close, close, close, close, close)
    result = compile_filter("close[-1] > 5").evaluate(frame)
    # Assert
    assert frame.close is close
    assert result.matched == ["B", "C"]


def test_frame_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="same bars"):
        MarketFrame.from_arrays(
            ["A"], np.ones((1, 3)), np.ones((1, 3)), np.ones((1, 2)), np.ones((1, 3)), np.ones((1, 3))
        )


def test_zero_time_budget_stops_the_filter() -> None:
    with pytest.raises(FilterTimeout, match="time budget"):
        compile_filter("rsi(close, 14) < 30").evaluate(random_frame(), time_budget_s=0.0)


def test_heavy_filter_is_stopped_by_its_budget_and_reported() -> None:
    # Arrange: 150 distinct 2000-bar rolling windows over 200 symbols x 2000 bars
    frame = random_frame(symbols=200, bars=2000)
    code = "max(" + ", ".join(f"bbands(close, {n})[0]" for n in range(1800, 1950)) + ")[-1] > 0"
    compiled = compile_filter(code)
    # Act / Assert
    with pytest.raises(FilterTimeout):
        compiled.evaluate(frame, time_budget_s=0.001)


def test_memory_budget_is_enforced() -> None:
    # crossover reads two bars of each average, so both are computed as whole series
    with pytest.raises(FilterResourceError, match="memory"):
        compile_filter("crossover(sma(close, 5), ema(close, 5))").evaluate(
            random_frame(), memory_budget_bytes=1000
        )


def test_mismatched_slices_raise_a_runtime_error_naming_the_expression() -> None:
    with pytest.raises(FilterRuntimeError, match=r"close\[-5:\] > close\[-3:\]"):
        compile_filter("close[-5:] > close[-3:]").evaluate(random_frame())


def test_index_beyond_history_raises_a_runtime_error() -> None:
    with pytest.raises(FilterRuntimeError, match="close"):
        compile_filter("close[-500] > 0").evaluate(random_frame(bars=50))


def test_division_by_zero_is_silent_and_false() -> None:
    frame = frame_from_closes({"A": [0.0, 0.0]})
    assert compile_filter("close[-1] / close[0] > 1").evaluate(frame).matched == []


def test_cached_sub_expressions_give_the_same_answer_as_separate_ones() -> None:
    frame = random_frame()
    shared = compile_filter("a = sma(close, 20)\nclose[-1] > a[-1] and a[-1] > sma(close, 20)[-2]").evaluate(
        frame
    )
    separate = compile_filter("close[-1] > sma(close, 20)[-1] and sma(close, 20)[-1] > sma(close, 20)[-2]")
    assert shared.matched == separate.evaluate(frame).matched
