"""The built-in analyzer: scores a setup from indicator confluence, trend, volatility and volume.

No network. The score starts at 50 and each reading adds or takes points (see `_score`); the
total, clamped to 0-100, is the confidence and picks the decision (enter >= 70, wait 40-69,
skip < 40). Stop-loss and take-profit sit 1.5 and 2.5 ATRs from the last close (mirrored for a
SHORT), rounded to five significant figures of the price.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np
import numpy.typing as npt

from aitrader import indicators as ta
from aitrader.analysis.types import Analysis, AnalysisRequest, Decision, FloatArray, decision_for
from aitrader.models import PositionSide

MIN_BARS = 60
STOP_ATRS = 1.5
TARGET_ATRS = 2.5
NAME = "rules"
FLAT_SLOPE_PCT = 0.05  # EMA20 moving less than this over 5 candles is no trend


@dataclass(frozen=True, slots=True)
class Readings:
    """The indicator values the score is built from (the newest closed candle)."""

    price: float
    rsi: float
    macd_hist: float
    macd_hist_prev: float
    ema20: float
    ema50: float
    ema20_slope_pct: float
    bb_position: float
    atr: float
    atr_pct: float
    volume_ratio: float
    higher_highs: bool
    higher_lows: bool
    lower_highs: bool
    lower_lows: bool
    change_20_pct: float

    def summary(self) -> dict[str, float | bool]:
        """Rounded readings, compact enough to send to a language model."""
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


class InsufficientData(ValueError):
    """The candles cannot support an analysis (too few, or gaps)."""


def read_indicators(request: AnalysisRequest) -> Readings:
    """Compute the readings from the request's candles; `InsufficientData` says why not."""
    arrays = [np.asarray(a, dtype=np.float64) for a in
              (request.open, request.high, request.low, request.close, request.volume)]
    lengths = {a.shape for a in arrays}
    if len(lengths) != 1 or arrays[3].ndim != 1:
        raise InsufficientData("the candle arrays differ in length")
    close = arrays[3]
    finite: npt.NDArray[np.bool_] = np.asarray(np.isfinite(np.vstack(arrays)).all(axis=0))
    # Frames pad short histories with NaN on the left: keep the newest unbroken run.
    start = len(close)
    while start > 0 and finite[start - 1]:
        start -= 1
    if len(close) - start < MIN_BARS:
        have = len(close) - start
        gap = " after a gap in the data" if start > 0 and np.isfinite(close[:start]).any() else ""
        raise InsufficientData(f"only {have} complete candles{gap}; at least {MIN_BARS} are needed")
    opened, high, low, close, volume = (a[start:] for a in arrays)
    if (close <= 0).any() or (high < low).any():
        raise InsufficientData("the candles hold non-positive prices or a high below its low")
    rsi = ta.rsi(close, 14)
    _, _, hist = ta.macd(close)
    ema20, ema50 = ta.ema(close, 20), ta.ema(close, 50)
    upper, _, lower = ta.bbands(close, 20, 2.0)
    atr = ta.atr(high, low, close, 14)
    avg_volume = float(np.mean(volume[-21:-1]))
    price = float(close[-1])
    band = float(upper[-1] - lower[-1])
    recent_high, prior_high = float(high[-20:].max()), float(high[-40:-20].max())
    recent_low, prior_low = float(low[-20:].min()), float(low[-40:-20].min())
    margin = 0.25 * float(atr[-1])  # swings closer than a quarter ATR count as level
    return Readings(
        price=price,
        rsi=float(rsi[-1]),
        macd_hist=float(hist[-1]),
        macd_hist_prev=float(hist[-2]),
        ema20=float(ema20[-1]),
        ema50=float(ema50[-1]),
        ema20_slope_pct=float((ema20[-1] / ema20[-6] - 1) * 100),
        bb_position=float((price - lower[-1]) / band) if band > 0 else 0.5,
        atr=float(atr[-1]),
        atr_pct=float(atr[-1] / price * 100),
        volume_ratio=float(volume[-1] / avg_volume) if avg_volume > 0 else 0.0,
        higher_highs=recent_high > prior_high + margin,
        higher_lows=recent_low > prior_low + margin,
        lower_highs=recent_high < prior_high - margin,
        lower_lows=recent_low < prior_low - margin,
        change_20_pct=float((close[-1] / close[-21] - 1) * 100),
    )


def round_price(value: float, reference: float) -> Decimal:
    """``value`` on a tick of five significant figures of ``reference`` (0.00012345, 43251)."""
    exponent = math.floor(math.log10(abs(reference))) - 4
    tick = Decimal(1).scaleb(exponent)
    return Decimal(repr(value)).quantize(tick, rounding=ROUND_HALF_EVEN)


def protective_levels(readings: Readings, side: PositionSide) -> tuple[Decimal, Decimal]:
    """(stop_loss, take_profit) at 1.5 / 2.5 ATRs from the price, each at least one tick away."""
    price = readings.price
    tick = float(Decimal(1).scaleb(math.floor(math.log10(price)) - 4))
    distance_stop = max(STOP_ATRS * readings.atr, tick)
    distance_target = max(TARGET_ATRS * readings.atr, tick)
    if side is PositionSide.LONG:
        stop = max(price - distance_stop, tick)
        return round_price(stop, price), round_price(price + distance_target, price)
    return round_price(price + distance_stop, price), round_price(max(price - distance_target, tick), price)


def _score(r: Readings, side: PositionSide) -> tuple[int, list[str]]:
    """Points for and against the side, with one plain sentence per reading."""
    long = side is PositionSide.LONG
    sign = 1.0 if long else -1.0
    points = 50.0
    words: list[str] = []

    # Momentum: RSI zone, read from the side's point of view.
    rsi = r.rsi if long else 100.0 - r.rsi
    if 55 <= rsi < 70:
        points += 12
        words.append(f"RSI {r.rsi:.0f} shows firm momentum without being {'overbought' if long else 'oversold'}")
    elif 70 <= rsi < 80:
        points -= 4
        words.append(f"RSI {r.rsi:.0f} is {'overbought' if long else 'oversold'}, so the move is stretched")
    elif rsi >= 80:
        points -= 12
        words.append(f"RSI {r.rsi:.0f} is extremely {'overbought' if long else 'oversold'}")
    elif 45 <= rsi < 55:
        words.append(f"RSI {r.rsi:.0f} is neutral")
    elif 35 <= rsi < 45:
        points -= 6
        words.append(f"RSI {r.rsi:.0f} shows weak momentum for a {side}")
    else:
        points -= 10
        words.append(f"RSI {r.rsi:.0f} shows momentum against a {side}")

    hist, prev = sign * r.macd_hist, sign * r.macd_hist_prev
    if hist > 0 and hist >= prev:
        points += 10
        words.append("the MACD histogram supports the move and is growing")
    elif hist > 0:
        points += 3
        words.append("the MACD histogram supports the move but is shrinking")
    elif hist >= prev:
        points -= 3
        words.append("the MACD histogram is against the move but recovering")
    else:
        points -= 10
        words.append("the MACD histogram is against the move and deepening")

    # Trend: price vs EMA20, EMA20 vs EMA50, EMA20 slope, swing structure.
    gap_pct = (r.price / r.ema20 - 1) * 100
    slope = sign * r.ema20_slope_pct
    flat = abs(r.ema20_slope_pct) < FLAT_SLOPE_PCT
    trend_word = "flat" if flat else "rising" if r.ema20_slope_pct > 0 else "falling"
    place = "above" if gap_pct >= 0 else "below"
    words.append(f"price is {abs(gap_pct):.1f} % {place} a {trend_word} EMA20")
    points += 6 if sign * gap_pct > 0 else -6
    points += -3 if flat else 6 if slope > 0 else -6
    stacked = sign * (r.ema20 - r.ema50) > 0
    points += 6 if stacked else -6
    words.append(f"EMA20 is {'above' if r.ema20 > r.ema50 else 'below'} EMA50"
                 f" ({'with' if stacked else 'against'} the trade)")
    if (r.higher_highs and r.higher_lows) if long else (r.lower_highs and r.lower_lows):
        points += 6
        words.append(f"{'higher highs and higher lows' if long else 'lower highs and lower lows'} than 20 candles ago")
    elif (r.lower_highs and r.lower_lows) if long else (r.higher_highs and r.higher_lows):
        points -= 6
        words.append(f"{'lower highs and lower lows' if long else 'higher highs and higher lows'} than 20 candles ago")

    # Bollinger position, from the side's point of view (1 = at the band the trade runs toward).
    band = r.bb_position if long else 1.0 - r.bb_position
    if band > 1.0:
        points -= 5
        words.append("price is outside the Bollinger Band it is heading for (stretched)")
    elif band >= 0.5:
        points += 5
        words.append("price sits in the half of the Bollinger Bands the trade runs toward")
    elif band < 0.2:
        points -= 5
        words.append("price hugs the opposite Bollinger Band")

    if r.volume_ratio >= 1.5:
        points += 10
    elif r.volume_ratio >= 1.0:
        points += 4
    elif r.volume_ratio >= 0.5:
        points -= 4
    else:
        points -= 10
    words.append(f"volume is {r.volume_ratio:.1f}× its 20-candle average")
    if r.atr_pct > 5:
        points -= 5
        words.append(f"volatility is high (ATR {r.atr_pct:.1f} % of price)")
    return max(0, min(100, round(points))), words


class RuleAnalyzer:
    """Scores a signal from its candles alone; never touches the network."""

    name = NAME

    def analyze_sync(self, request: AnalysisRequest) -> Analysis:
        try:
            readings = read_indicators(request)
        except InsufficientData as why:
            return Analysis(Decision.SKIP, 0, f"Cannot analyse {request.symbol}: {why}.", None, None, self.name)
        return self.judge(readings, request.side)

    async def analyze(self, request: AnalysisRequest) -> Analysis:
        return self.analyze_sync(request)

    def judge(self, readings: Readings, side: PositionSide) -> Analysis:
        """The analysis of already computed readings."""
        if not all(math.isfinite(v) for v in asdict(readings).values() if isinstance(v, float)):
            return Analysis(Decision.SKIP, 0, "Cannot analyse: some indicators are undefined (flat or gapped prices).",
                            None, None, self.name)
        confidence, words = _score(readings, side)
        decision = decision_for(confidence)
        stop, target = protective_levels(readings, side)
        words.append(f"ATR {readings.atr_pct:.1f} % sets the stop at {stop} and the target at {target}")
        reasoning = "; ".join(words) + (
            f". Score {confidence}/100 for a {side} → {decision} (enter ≥ 70, wait 40-69, skip < 40).")
        return Analysis(decision, confidence, reasoning[0].upper() + reasoning[1:], stop, target, self.name)


def last_candles(request: AnalysisRequest, count: int = 10) -> list[list[float]]:
    """The newest ``count`` candles as [open, high, low, close, volume] rows, for prompts."""
    arrays: list[FloatArray] = [request.open, request.high, request.low, request.close, request.volume]
    rows = np.column_stack([np.asarray(a, dtype=np.float64)[-count:] for a in arrays])
    return [[float(f"{v:.8g}") for v in row] for row in rows]
