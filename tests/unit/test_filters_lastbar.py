"""Last-bar planning: the last-bar kernels match TA-Lib, and planned filters answer exactly as whole-series ones."""

from __future__ import annotations

import numpy as np
import pytest
import talib

from aitrader import indicators
from aitrader.filters import CompiledFilter, FilterRuntimeError, MarketFrame, compile_filter
from aitrader.filters.compiler import Compiler
from aitrader.filters.lastbar import indicator_last
from aitrader.filters.nodes import Node
from aitrader.filters.syntax import parse

TALIB = {"sma": talib.SMA, "ema": talib.EMA, "rsi": talib.RSI}


def walks(symbols: int, bars: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.02, (symbols, bars)), axis=1))


def whole_series_filter(code: str) -> CompiledFilter:
    """The filter as written, every expression evaluated as a whole series (no last-bar plan)."""
    return CompiledFilter.build(code, Compiler(code).program(parse(code)))


def reachable_names(compiled: CompiledFilter) -> set[str]:
    names: set[str] = set()
    pending: list[Node] = list(compiled._condition_nodes)
    while pending:
        node = pending.pop()
        names.add(node.name)
        pending.extend(node.children)
    return names


@pytest.mark.parametrize("name", ["sma", "ema", "rsi"])
@pytest.mark.parametrize(
    ("n", "bars"), [(1, 30), (2, 30), (14, 250), (20, 250), (50, 250), (30, 30), (30, 31)]
)
def test_last_bar_kernels_match_talib(name: str, n: int, bars: int) -> None:
    # Arrange
    close = walks(12, bars, seed=n * 1000 + bars)
    # Act
    last = indicator_last(name, close, n)
    # Assert
    whole = getattr(indicators, name)(close, n)[:, -1:]
    np.testing.assert_allclose(last, whole, rtol=1e-12, atol=0.0, equal_nan=True)
    if not (name == "rsi" and n == 1):  # TA-Lib's RSI needs at least 2 bars
        expected = np.array([[TALIB[name](row, n)[-1]] for row in close])
        np.testing.assert_allclose(last, expected, rtol=1e-9, atol=0.0, equal_nan=True)


@pytest.mark.parametrize("name", ["sma", "ema", "rsi"])
def test_rows_with_gaps_or_short_histories_match_the_whole_series(name: str) -> None:
    # Arrange: a clean row, a NaN-padded (newer) symbol, a gap, an infinity, a row of NaN
    close = walks(5, 120, seed=9)
    close[1, :70] = np.nan
    close[2, 40] = np.nan
    close[3, 100] = np.inf
    close[4, :] = np.nan
    # Act
    last = indicator_last(name, close, 14)
    # Assert
    whole = getattr(indicators, name)(close, 14)[:, -1:]
    np.testing.assert_allclose(last, whole, rtol=1e-12, atol=0.0, equal_nan=True)
    assert np.isfinite(last[1, 0]), "a padded row with enough history still has a value"


def test_flat_market_rsi_is_zero_like_talib() -> None:
    close = np.full((2, 40), 5.0)
    assert indicator_last("rsi", close, 14).ravel().tolist() == [0.0, 0.0]
    assert talib.RSI(close[0], 14)[-1] == 0.0


def test_one_bar_reads_skip_whole_series_indicators() -> None:
    compiled = compile_filter(
        "rsi(close, 14) < 70 and close[-1] > ema(close, 20)[-1] and sma(close, 50)[-1] > 0"
    )
    names = reachable_names(compiled)
    assert {"rsi_last", "ema_last", "sma_last"} <= names
    assert not {"rsi", "ema", "sma"} & names, "no whole-series indicator is left"


def test_expressions_reading_more_bars_stay_whole_series() -> None:
    compiled = compile_filter("crossover(ema(close, 12), sma(close, 26)) and ema(close, 12)[-2] > 0")
    assert {"ema", "sma", "crossover"} <= reachable_names(compiled)


def frame_of(close: np.ndarray) -> MarketFrame:
    rng = np.random.default_rng(1)
    volume = 1000.0 * rng.random(close.shape) + 1.0
    names = [f"S{i}" for i in range(close.shape[0])]
    return MarketFrame.from_arrays(names, close, close * 1.01, close * 0.99, close, volume)


FILTERS = [
    "rsi(close, 14) < 55 and close[-1] > ema(close, 20)[-1] and volume[-1] > 0.5 * sma(volume, 20)[-1]",
    "fast = ema(close, 12)\nfast > sma(close, 26) and not (rsi(close) > 60)",
    "(close - ema(close, 10)) / ema(close, 10) > -0.01 or abs(close - open) > 0.5",
    "max(close, sma(close, 5))[-1] >= min(open, ema(close, 5))[-1] and close > close[-2]",
    "crossover(ema(close, 5), sma(close, 20)) or rsi(ema(close, 3), 7) < 50",
    "m, s, h = macd(close)\nm[-1] > s[-1] and h > -1 and close[-5:][-1] > 0",
    "ema(close[-60:], 20)[-1] > sma(close, 30)[-1] and (close[-60:] > 0)",
    "rsi(close, 14)[-1] - rsi(close, 14)[-2] > 0 and ema(close, 200)[-1] > 0",
]


@pytest.mark.parametrize("code", FILTERS)
@pytest.mark.parametrize("padded", [False, True])
def test_planned_filters_answer_like_whole_series_ones(code: str, padded: bool) -> None:
    # Arrange: 40 symbols, some (when padded) with a shorter, NaN-padded history
    close = walks(40, 220, seed=len(code))
    if padded:
        close[::3, :150] = np.nan
    frame = frame_of(close)
    # Act
    planned = compile_filter(code).evaluate(frame)
    whole = whole_series_filter(code).evaluate(frame)
    # Assert
    assert planned.matched == whole.matched
    assert planned.conditions == whole.conditions
    assert 0 < len(whole.matched) < 40 or any(whole.conditions.values()), "the filter is not trivial here"


@pytest.mark.parametrize(
    "code", ["close[-5:] > close[-3:]", "ema(close[-5:], 2) > sma(close[-3:], 2)", "close[-500] > 0"]
)
def test_planned_filters_fail_where_whole_series_ones_fail(code: str) -> None:
    frame = frame_of(walks(4, 50, seed=2))
    with pytest.raises(FilterRuntimeError):
        whole_series_filter(code).evaluate(frame)
    with pytest.raises(FilterRuntimeError):
        compile_filter(code).evaluate(frame)


def test_an_empty_history_fails_on_an_index_and_is_false_as_a_series() -> None:
    empty = MarketFrame.from_arrays(["A"], *(np.empty((1, 0)) for _ in range(5)))
    with pytest.raises(FilterRuntimeError):
        compile_filter("ema(close, 3)[-1] > 0").evaluate(empty)
    assert compile_filter("rsi(close) < 101").evaluate(empty).matched == []
