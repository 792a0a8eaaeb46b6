"""The built-in analyzer ranks strong setups above weak ones and explains itself."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from aitrader.analysis import AnalysisRequest, Decision, RuleAnalyzer, decision_for
from aitrader.models import PositionSide

N = 120
T = np.arange(N)


def request(close: np.ndarray, volume: np.ndarray, side: PositionSide = PositionSide.LONG) -> AnalysisRequest:
    close = np.asarray(close, dtype=np.float64)
    opened = np.r_[close[0], close[:-1]]
    high = np.maximum(opened, close) * 1.002
    low = np.minimum(opened, close) * 0.998
    return AnalysisRequest("BTCUSDT", "1h", side, ("rsi ok",), "t1", opened, high, low, close,
                           np.asarray(volume, dtype=np.float64))


def uptrend() -> np.ndarray:
    return 100 * np.exp(0.003 * T) * (1 + 0.004 * np.sin(T * 1.3))


def downtrend() -> np.ndarray:
    return 100 * np.exp(-0.003 * T) * (1 + 0.004 * np.sin(T * 1.3))


def choppy() -> np.ndarray:
    return 100 * (1 + 0.01 * np.sin(T * 0.9))


RISING_VOLUME = np.r_[np.linspace(100, 150, N - 1), 300.0]
FLAT_VOLUME = np.full(N, 100.0)
THIN_VOLUME = np.r_[np.full(N - 1, 100.0), 30.0]


def score(close: np.ndarray, volume: np.ndarray, side: PositionSide = PositionSide.LONG) -> int:
    return RuleAnalyzer().analyze_sync(request(close, volume, side)).confidence


@pytest.mark.parametrize(
    ("weak_close", "weak_volume"),
    [(choppy(), FLAT_VOLUME), (downtrend(), RISING_VOLUME), (uptrend(), THIN_VOLUME), (choppy(), THIN_VOLUME)],
    ids=["choppy", "falling", "thin-volume", "choppy-thin"],
)
def test_strong_long_setup_outranks_weak_ones(weak_close: np.ndarray, weak_volume: np.ndarray) -> None:
    assert score(uptrend(), RISING_VOLUME) > score(weak_close, weak_volume)


def test_short_setups_are_mirrored() -> None:
    assert score(downtrend(), RISING_VOLUME, PositionSide.SHORT) > score(uptrend(), RISING_VOLUME, PositionSide.SHORT)
    assert score(downtrend(), RISING_VOLUME, PositionSide.SHORT) > score(downtrend(), RISING_VOLUME)


def test_strong_setup_is_entered_with_atr_levels_and_explained() -> None:
    analysis = RuleAnalyzer().analyze_sync(request(uptrend(), RISING_VOLUME))
    price = Decimal(repr(float(uptrend()[-1])))
    assert analysis.decision is Decision.ENTER
    assert analysis.stop_loss is not None and analysis.take_profit is not None
    assert analysis.stop_loss < price < analysis.take_profit
    # take-profit is 2.5 ATRs away, the stop 1.5: the reward is 5/3 of the risk (rounding aside)
    ratio = (analysis.take_profit - price) / (price - analysis.stop_loss)
    assert Decimal("1.6") < ratio < Decimal("1.73")
    for words in ("RSI", "MACD", "EMA20", "volume is 2.", "ATR", "stop at", "enter ≥ 70"):
        assert words in analysis.reasoning
    assert analysis.analyzer == "rules" and not analysis.fell_back


def test_short_levels_are_mirrored() -> None:
    analysis = RuleAnalyzer().analyze_sync(request(downtrend(), RISING_VOLUME, PositionSide.SHORT))
    price = Decimal(repr(float(downtrend()[-1])))
    assert analysis.stop_loss is not None and analysis.take_profit is not None
    assert analysis.take_profit < price < analysis.stop_loss


def test_levels_are_rounded_to_five_significant_figures() -> None:
    analysis = RuleAnalyzer().analyze_sync(request(uptrend() / 10_000, RISING_VOLUME))
    assert analysis.stop_loss is not None
    assert len(analysis.stop_loss.as_tuple().digits) <= 5


def test_short_history_is_skipped_with_an_explanation() -> None:
    analysis = RuleAnalyzer().analyze_sync(request(uptrend()[:30], RISING_VOLUME[:30]))
    assert analysis.decision is Decision.SKIP and analysis.confidence == 0
    assert "only 30 complete candles" in analysis.reasoning
    assert analysis.stop_loss is None


def test_nan_padding_on_the_left_is_ignored_but_a_recent_gap_skips() -> None:
    padded = np.r_[np.full(20, np.nan), uptrend()[20:]]
    volume = np.r_[np.full(20, np.nan), RISING_VOLUME[20:]]
    assert RuleAnalyzer().analyze_sync(request(padded, volume)).decision is not Decision.SKIP
    gapped = uptrend().copy()
    gapped[-10] = np.nan
    analysis = RuleAnalyzer().analyze_sync(request(gapped, RISING_VOLUME))
    assert analysis.decision is Decision.SKIP
    assert "after a gap" in analysis.reasoning


def test_empty_request_is_skipped() -> None:
    assert RuleAnalyzer().analyze_sync(AnalysisRequest("BTCUSDT", "1m")).decision is Decision.SKIP


@pytest.mark.parametrize(("confidence", "decision"), [(100, "enter"), (70, "enter"), (69, "wait"), (40, "wait"),
                                                      (39, "skip"), (0, "skip")])
def test_decision_thresholds(confidence: int, decision: str) -> None:
    assert decision_for(confidence) == decision
