"""Indicator kernels against TA-Lib as the oracle (values and warm-up), 1-D and 2-D."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from aitrader import indicators as ind

BARS = 300


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    """Same NaN warm-up mask and values within 1e-9 relative tolerance."""
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    finite = ~np.isnan(expected)
    np.testing.assert_allclose(actual[finite], expected[finite], rtol=1e-9, atol=1e-12)


def make_bars(kind: str, seed: int = 7, bars: int = BARS) -> tuple[np.ndarray, ...]:
    """High, low, close, volume for a random walk, a steady trend or a flat (constant) market."""
    rng = np.random.default_rng(seed)
    if kind == "walk":
        close = 100.0 + np.cumsum(rng.normal(0.0, 1.0, bars))
    elif kind == "trend":
        close = np.linspace(50.0, 150.0, bars)
    else:
        close = np.full(bars, 42.0)
    spread = 0.0 if kind == "flat" else 1.0
    high = close + spread * rng.random(bars)
    low = close - spread * rng.random(bars)
    volume = 1000.0 * rng.random(bars) + 1.0
    return high, low, close, volume


KINDS = ["walk", "trend", "flat"]

# (name, our function on (h, l, c, v), TA-Lib oracle on (h, l, c, v)), each returning a tuple.
CASES: list[tuple[str, Callable[..., tuple[np.ndarray, ...]], Callable[..., tuple[np.ndarray, ...]]]] = [
    ("sma", lambda h, lo, c, v: (ind.sma(c, 20),), lambda h, lo, c, v: (talib.SMA(c, 20),)),
    ("ema", lambda h, lo, c, v: (ind.ema(c, 12),), lambda h, lo, c, v: (talib.EMA(c, 12),)),
    ("rsi", lambda h, lo, c, v: (ind.rsi(c),), lambda h, lo, c, v: (talib.RSI(c, 14),)),
    ("rsi-2", lambda h, lo, c, v: (ind.rsi(c, 2),), lambda h, lo, c, v: (talib.RSI(c, 2),)),
    ("macd", lambda h, lo, c, v: ind.macd(c), lambda h, lo, c, v: talib.MACD(c, 12, 26, 9)),
    ("macd-5-35-5", lambda h, lo, c, v: ind.macd(c, 5, 35, 5), lambda h, lo, c, v: talib.MACD(c, 5, 35, 5)),
    ("bbands", lambda h, lo, c, v: ind.bbands(c), lambda h, lo, c, v: talib.BBANDS(c, 20, 2.0, 2.0)),
    (
        "bbands-10-1.5",
        lambda h, lo, c, v: ind.bbands(c, 10, 1.5),
        lambda h, lo, c, v: talib.BBANDS(c, 10, 1.5, 1.5),
    ),
    ("atr", lambda h, lo, c, v: (ind.atr(h, lo, c),), lambda h, lo, c, v: (talib.ATR(h, lo, c, 14),)),
    (
        "stoch",
        lambda h, lo, c, v: ind.stoch(h, lo, c),
        lambda h, lo, c, v: talib.STOCH(h, lo, c, 5, 3, 0, 3, 0),
    ),
    (
        "stoch-14-3-5",
        lambda h, lo, c, v: ind.stoch(h, lo, c, 14, 3, 5),
        lambda h, lo, c, v: talib.STOCH(h, lo, c, 14, 3, 0, 5, 0),
    ),
    ("obv", lambda h, lo, c, v: (ind.obv(c, v),), lambda h, lo, c, v: (talib.OBV(c, v),)),
    ("highest", lambda h, lo, c, v: (ind.highest(h, 10),), lambda h, lo, c, v: (talib.MAX(h, 10),)),
    ("lowest", lambda h, lo, c, v: (ind.lowest(lo, 10),), lambda h, lo, c, v: (talib.MIN(lo, 10),)),
]
CASE_IDS = [name for name, _, _ in CASES]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("name", "ours", "oracle"), CASES, ids=CASE_IDS)
def test_matches_talib_on_one_symbol(name: str, ours: Callable, oracle: Callable, kind: str) -> None:
    # Arrange
    bars = make_bars(kind)
    # Act
    actual, expected = ours(*bars), oracle(*bars)
    # Assert
    for got, want in zip(actual, expected, strict=True):
        assert_same(got, want)


@pytest.mark.parametrize(("name", "ours", "oracle"), CASES, ids=CASE_IDS)
def test_two_d_equals_row_by_row_talib(name: str, ours: Callable, oracle: Callable) -> None:
    # Arrange: five symbols, one of them flat
    rows = [make_bars("walk", seed) for seed in range(4)] + [make_bars("flat")]
    matrices = [np.vstack([r[i] for r in rows]) for i in range(4)]
    # Act
    actual = ours(*matrices)
    # Assert
    for symbol, bars in enumerate(rows):
        for got, want in zip(actual, oracle(*bars), strict=True):
            assert_same(got[symbol], want)


@pytest.mark.parametrize(("name", "ours", "oracle"), CASES, ids=CASE_IDS)
def test_short_history_rows_warm_up_from_their_first_bar(name: str, ours: Callable, oracle: Callable) -> None:
    # Arrange: symbol 1 listed 120 bars later (NaN-left-padded), symbol 2 later still
    full = make_bars("walk", 1)
    padded = [b.copy() for b in make_bars("walk", 2)]
    later = [b.copy() for b in make_bars("walk", 3)]
    for series in padded:
        series[:120] = np.nan
    for series in later:
        series[:200] = np.nan
    matrices = [np.vstack([full[i], padded[i], later[i]]) for i in range(4)]
    # Act
    actual = ours(*matrices)
    # Assert: each row equals TA-Lib on the row's own bars
    for symbol, start, bars in ((0, 0, full), (1, 120, padded), (2, 200, later)):
        expected = oracle(*(b[start:] for b in bars))
        for got, want in zip(actual, expected, strict=True):
            assert np.isnan(got[symbol, :start]).all()
            assert_same(got[symbol, start:], want)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 40),
    bars=st.integers(1, 120),
    scale=st.sampled_from([1e-3, 1.0, 1e4]),
)
def test_averages_and_rsi_match_talib_for_any_window(seed: int, n: int, bars: int, scale: float) -> None:
    # Arrange
    rng = np.random.default_rng(seed)
    close = scale * (100.0 + np.cumsum(rng.normal(0.0, 1.0, bars)))
    # Act / Assert
    assert_same(ind.sma(close, n), talib.SMA(close, n))
    assert_same(ind.ema(close, n), talib.EMA(close, n))
    assert_same(ind.rsi(close, n), talib.RSI(close, n))
    for got, want in zip(ind.bbands(close, n), talib.BBANDS(close, n, 2.0, 2.0), strict=True):
        assert_same(got, want)


def test_read_only_inputs_are_left_untouched() -> None:
    # Arrange
    high, low, close, volume = (np.vstack([b, b]) for b in make_bars("walk"))
    for array in (high, low, close, volume):
        array.flags.writeable = False
    before = close.copy()
    # Act
    (
        ind.macd(close),
        ind.atr(high, low, close),
        ind.stoch(high, low, close),
        ind.vwap(high, low, close, volume, 20),
    )
    ind.obv(close, volume), ind.rsi(close), ind.bbands(close), ind.pct_change(close, 3)
    # Assert
    np.testing.assert_array_equal(close, before)


def test_vwap_rolling_and_cumulative_use_typical_price() -> None:
    # Arrange
    high = np.array([11.0, 12.0, 13.0, 14.0])
    low = np.array([9.0, 10.0, 11.0, 12.0])
    close = np.array([10.0, 11.0, 12.0, 13.0])
    volume = np.array([1.0, 3.0, 0.0, 2.0])
    typical = (high + low + close) / 3.0
    # Act
    rolling, cumulative = ind.vwap(high, low, close, volume, 2), ind.vwap(high, low, close, volume)
    # Assert
    assert np.isnan(rolling[0])
    assert rolling[1] == pytest.approx((typical[0] * 1 + typical[1] * 3) / 4)
    assert rolling[2] == pytest.approx(typical[1])
    assert rolling[3] == pytest.approx(typical[3])
    assert cumulative[3] == pytest.approx((typical * volume).sum() / volume.sum())


def test_vwap_window_with_no_volume_is_nan() -> None:
    ones = np.ones(3)
    assert np.isnan(ind.vwap(ones, ones, ones, np.zeros(3), 2)[-1])


def test_pct_change_is_fractional_and_warms_up() -> None:
    result = ind.pct_change(np.array([[100.0, 110.0, 121.0], [50.0, 25.0, 50.0]]), 1)
    np.testing.assert_allclose(result[:, 1:], [[0.1, 0.1], [-0.5, 1.0]])
    assert np.isnan(result[:, 0]).all()


def test_crossover_and_crossunder_fire_on_the_crossing_bar_only() -> None:
    # Arrange
    fast = np.array([1.0, 2.0, 3.0, 2.0, 1.0, np.nan, 3.0])
    slow = np.full(7, 2.0)
    # Act
    up, down = ind.crossover(fast, slow), ind.crossunder(fast, 2.0)
    # Assert
    assert up.tolist() == [False, False, True, False, False, False, False]
    assert down.tolist() == [False, False, False, False, True, False, False]


def test_crossover_two_d_with_per_symbol_level() -> None:
    fast = np.array([[1.0, 3.0], [3.0, 1.0]])
    assert ind.crossover(fast, np.array([[2.0], [2.0]])).tolist() == [[False, True], [False, False]]


def test_short_inputs_are_all_nan_not_errors() -> None:
    close = np.arange(5.0)
    assert np.isnan(ind.sma(close, 20)).all()
    assert all(np.isnan(part).all() for part in ind.macd(close))
    assert np.isnan(ind.highest(close, 10)).all()


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_window_names_the_argument(bad: object) -> None:
    with pytest.raises(ind.IndicatorError, match="n must be a whole number of bars"):
        ind.sma(np.arange(10.0), bad)  # type: ignore[arg-type]


def test_tight_range_deviation_and_tiny_moves_match_talib() -> None:
    # Arrange: a stablecoin-like series moving by 1e-8 and a coin priced near 1e-300
    stable = np.array([1.0, 1.0 + 1e-8, 1.0, 1.0 + 1e-8, 1.0, 1.0, 1.0])
    dust = stable - 1.0
    # Act / Assert
    for got, want in zip(ind.bbands(stable, 2), talib.BBANDS(stable, 2, 2.0, 2.0), strict=True):
        assert_same(got, want)
    assert_same(ind.rsi(stable, 2), talib.RSI(stable, 2))
    assert_same(ind.rsi(dust * 1e-290, 2), talib.RSI(dust * 1e-290, 2))


def test_bbands_with_a_window_larger_than_one_chunk_matches_talib() -> None:
    close = make_bars("walk", bars=3000)[2] + 500.0  # keep the lower band away from zero
    for got, want in zip(ind.bbands(close, 1500), talib.BBANDS(close, 1500, 2.0, 2.0), strict=True):
        assert_same(got, want)
