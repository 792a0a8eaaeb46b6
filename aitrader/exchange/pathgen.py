"""Deterministic synthetic price paths: a function of (seed, symbol, time), computable for any range.

The path is hierarchical, so no range needs simulating from the beginning:

* **Days.** A market-wide volatility regime ``h`` (AR(1) in log-volatility, giving volatility
  clustering) and each symbol's day-start log-price anchor ``x[d]`` (mean-reverting random walk,
  beta-correlated with a common market factor) are computed from day 0 (2017-01-01) by a cheap
  recursion over per-day random numbers drawn in 512-day chunks, then cached.
  The same recursion draws each day's high, low, volume, taker share and trade count, so daily and
  coarser candles never need minute data.
* **Minutes.** A day's 1,440 minute closes run from the day's open through its high and low (at
  random minutes) to its close: piecewise log-linear plus Brownian-bridge noise with correlated
  increments and hourly volatility multipliers, reflected into [low, high] and rounded to ticks.
  The day's volume, quote volume, taker volumes and trades are split over minutes by integer
  differences of cumulative weights, so minutes sum exactly to the day.
* **Seconds.** A minute's 61 second-boundary prices run through its open, high, low and close
  (piecewise linear with noise reflected into the minute's range), so 1s candles aggregate
  exactly to the 1m candle.

Every random draw comes from a Philox generator keyed by a BLAKE2 hash of (seed, symbol, block).
Prices are integers in ticks and volumes integers in 1e-8 units, so aggregation is exact.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from aitrader.exchange.symbols import SymbolSpec

#: First day of synthetic history: 2017-01-01 in days since the Unix epoch.
EPOCH_DAY = 17_167
EPOCH_MS = EPOCH_DAY * 86_400_000
#: Volumes are integers in units of 1e-8.
UNIT = 100_000_000
MINUTES_PER_DAY = 1_440
_CHUNK = 512
MAX_TRADES_PER_DAY = 10_000_000  # trade ids: day * this + running count
_MEAN_REVERSION = 0.02
_AVG_TRADE_QUOTE = 400.0


def _rng(*parts: object) -> np.random.Generator:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=16).digest()
    return np.random.Generator(np.random.Philox(key=int.from_bytes(digest, "big")))


def reflect(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """``values`` folded into [low, high] by reflection at its edges.

    A path that wanders past a bound comes back in as a reflected random walk would. Clipping it
    instead held the price flat at the day's high or low for as long as the noise stayed out:
    16 % of minute closes sat exactly on a day's extreme, in runs of up to 16 hours.
    """
    width = high - low
    if width <= 0:
        return np.full_like(values, low)
    folded = np.mod(values - low, 2 * width)
    return low + np.where(folded <= width, folded, 2 * width - folded)


@dataclass(frozen=True)
class DayBlock:
    """One symbol's 1,440 minutes of one day; prices in ticks, cumulative sums with a leading 0."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    cum_volume: np.ndarray
    cum_quote: np.ndarray
    cum_taker_base: np.ndarray
    cum_taker_quote: np.ndarray
    cum_trades: np.ndarray
    knot1: np.ndarray  # second at which the first extreme is reached
    knot2: np.ndarray
    high_first: np.ndarray


class PathGenerator:
    """Builds and caches day blocks and second paths for a fixed seed and symbol set."""

    def __init__(self, seed: int, specs: tuple[SymbolSpec, ...], cache_days: int = 512) -> None:
        self.seed = seed
        self.specs = {spec.symbol: spec for spec in specs}
        self._regime: list[float] = [0.0]
        self._anchors: dict[str, list[float]] = {}
        self._summaries: dict[str, dict[int, tuple[int, ...]]] = {}
        self._draws: OrderedDict[tuple[str, int], list[list[float]]] = OrderedDict()
        self._market_daily_lists: dict[int, list[float]] = {}
        self._blocks: OrderedDict[tuple[str, int], DayBlock] = OrderedDict()
        self._market_daily_cache: dict[int, np.ndarray] = {}
        self._market_intraday: OrderedDict[int, np.ndarray] = OrderedDict()
        self._seconds: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._cache_days = cache_days

    # -- day level -------------------------------------------------------------------------------
    def _market_daily(self, chunk: int) -> np.ndarray:
        cached = self._market_daily_cache.get(chunk)
        if cached is None:
            cached = _rng(self.seed, "__market__", "daily", chunk).standard_normal((2, _CHUNK))
            self._market_daily_cache[chunk] = cached
        return cached

    def _market_daily_list(self, chunk: int) -> list[float]:
        cached = self._market_daily_lists.get(chunk)
        if cached is None:
            cached = self._market_daily_lists[chunk] = self._market_daily(chunk)[1].tolist()
        return cached

    def regime(self, day: int) -> float:
        """Market-wide log-volatility multiplier on ``day`` (days since 2017-01-01)."""
        while len(self._regime) <= day:
            d = len(self._regime) - 1
            eta = self._market_daily(d // _CHUNK)[0, d % _CHUNK]
            self._regime.append(0.9 * self._regime[d] + 0.2 * float(eta))
        return self._regime[day]

    def day_sigma(self, symbol: str, day: int) -> float:
        """Standard deviation of ``symbol``'s log return over ``day``."""
        return self.specs[symbol].daily_vol * math.exp(self.regime(day))

    def anchor(self, symbol: str, day: int) -> float:
        """Log price of ``symbol`` at the start of ``day`` (days since 2017-01-01)."""
        self._extend(symbol, day + 1)
        return self._anchors[symbol][day]

    def day_summary(self, symbol: str, day: int) -> tuple[int, ...]:
        """Whole-day totals of ``symbol`` on ``day``: (open, high, low, close, volume, quote,
        taker_base, taker_quote, trades), prices in ticks, volumes in 1e-8 units.

        Built on demand from the day's two anchors and draws: only the anchors are a recursion
        from 2017, so a backfill of recent candles pays for ~3,600 anchor steps, not summaries.
        """
        summaries = self._summaries.setdefault(symbol, {})
        summary = summaries.get(day)
        if summary is None:
            summary = summaries[day] = self._summarise(symbol, day)
        return summary

    def _summarise(self, symbol: str, day: int) -> tuple[int, ...]:
        self._extend(symbol, day + 1)
        spec = self.specs[symbol]
        exp = math.exp
        tick = float(spec.tick_size)
        base_per_day = spec.quote_volume_per_minute / spec.start_price * MINUTES_PER_DAY * UNIT
        chunk, i = divmod(day, _CHUNK)
        draws = self._daily_draws(symbol, chunk)
        regime = self._regime[day]
        sigma = spec.daily_vol * exp(regime)
        x, x_next = self._anchors[symbol][day], self._anchors[symbol][day + 1]
        o = max(1, round(exp(x) / tick))
        c = max(1, round(exp(x_next) / tick))
        high = max(o, c, round(max(o, c) * exp(sigma * (0.15 + 0.6 * abs(draws[1][i])))))
        low = max(1, min(o, c, round(min(o, c) * exp(-sigma * (0.15 + 0.6 * abs(draws[2][i]))))))
        volume = max(MINUTES_PER_DAY, round(base_per_day * exp(0.8 * regime + 0.3 * draws[3][i])))
        quote = round(volume * (o + high + low + c) / 4 * tick)
        share = 0.5 + 0.1 * math.tanh(draws[4][i])
        trades = min(MAX_TRADES_PER_DAY - 1, max(1, round(quote / (_AVG_TRADE_QUOTE * UNIT))))
        return o, high, low, c, volume, quote, int(volume * share), int(quote * share), trades

    def _daily_draws(self, symbol: str, chunk: int) -> list[list[float]]:
        """The 5 x 512 daily draws of ``symbol``'s ``chunk`` of days, as lists (a small LRU)."""
        key = (symbol, chunk)
        draws = self._draws.get(key)
        if draws is None:
            draws = self._draws[key] = _rng(self.seed, symbol, "daily", chunk).standard_normal((5, _CHUNK)).tolist()
            if len(self._draws) > 64:
                self._draws.popitem(last=False)
        else:
            self._draws.move_to_end(key)
        return draws

    def _extend(self, symbol: str, day: int) -> None:
        """Anchors of ``symbol`` up to ``day``: a plain-float loop over lists (numpy indexing element
        by element cost several times the arithmetic), bit for bit the element-wise values."""
        spec = self.specs[symbol]
        x0 = math.log(spec.start_price)
        anchors = self._anchors.setdefault(symbol, [x0])
        if len(anchors) > day:
            return
        beta = spec.market_beta
        idio_weight = math.sqrt(1 - beta * beta)
        daily_vol = spec.daily_vol
        self.regime(day)
        regimes = self._regime
        exp = math.exp
        while len(anchors) <= day:
            first = len(anchors) - 1
            chunk = first // _CHUNK
            idio = self._daily_draws(symbol, chunk)[0]
            market = self._market_daily_list(chunk)
            for d in range(first, min(day, (chunk + 1) * _CHUNK)):  # this chunk's days, in one run
                i = d - chunk * _CHUNK
                x = anchors[d]
                sigma = daily_vol * exp(regimes[d])
                anchors.append(x - _MEAN_REVERSION * (x - x0) + sigma * (beta * market[i] + idio_weight * idio[i]))

    # -- minute level ----------------------------------------------------------------------------
    def _market_minutes(self, day: int) -> np.ndarray:
        cached = self._market_intraday.get(day)
        if cached is None:
            cached = _rng(self.seed, "__market__", "day", day).standard_normal(MINUTES_PER_DAY)
            self._market_intraday[day] = cached
            if len(self._market_intraday) > 64:
                self._market_intraday.popitem(last=False)
        return cached

    def day_block(self, symbol: str, day: int) -> DayBlock:
        """The minute data of ``symbol`` on ``day`` (days since 2017-01-01), cached (LRU)."""
        key = (symbol, day)
        block = self._blocks.get(key)
        if block is not None:
            self._blocks.move_to_end(key)
            return block
        block = self._build_block(symbol, day)
        self._blocks[key] = block
        if len(self._blocks) > self._cache_days:
            self._blocks.popitem(last=False)
        return block

    def _build_block(self, symbol: str, day: int) -> DayBlock:
        spec = self.specs[symbol]
        o, high, low, c, volume, quote, taker_base, taker_quote, trades = self.day_summary(symbol, day)
        rng = _rng(self.seed, symbol, "day", day)
        n = MINUTES_PER_DAY
        idio = rng.standard_normal(n)
        hourly = np.repeat(np.exp(0.35 * rng.standard_normal(24)), 60)
        wiggle = np.abs(rng.standard_normal((2, n)))
        activity = np.exp(0.5 * rng.standard_normal(n))
        knots = np.sort(rng.choice(n - 1, size=2, replace=False))
        high_first = bool(rng.random() < 0.5)
        sec_knot1 = rng.integers(1, 59, n)
        sec_knot2 = sec_knot1 + 1 + np.floor(rng.random(n) * (59 - sec_knot1)).astype(np.int64)
        sec_high_first = rng.random(n) < 0.5

        beta = spec.market_beta
        sigma = hourly * (self.day_sigma(symbol, day) / math.sqrt(n))
        shocks = beta * self._market_minutes(day) + math.sqrt(1 - beta * beta) * idio
        walk = np.concatenate(([0.0], np.cumsum(sigma * shocks)))  # index j = close of minute j-1
        first, second = (high, low) if high_first else (low, high)
        knot_idx = np.array([0, knots[0] + 1, knots[1] + 1, n])
        knot_log = np.log(np.array([o, first, second, c], dtype=np.float64))
        grid = np.arange(n + 1)
        bridge = walk - np.interp(grid, knot_idx, walk[knot_idx])
        log_path = reflect(np.interp(grid, knot_idx, knot_log) + bridge, math.log(low), math.log(high))
        points = np.clip(np.rint(np.exp(log_path)), low, high).astype(np.int64)  # clip: rounding only
        points[knot_idx] = np.array([o, first, second, c], dtype=np.int64)
        open_, close = points[:-1], points[1:]
        top = np.maximum(open_, close)
        bottom = np.minimum(open_, close)
        minute_high = np.minimum(high, np.maximum(top, np.rint(top * np.exp(0.7 * sigma * wiggle[0]))))
        minute_low = np.maximum(low, np.minimum(bottom, np.rint(bottom * np.exp(-0.7 * sigma * wiggle[1]))))

        weights = np.cumsum(hourly * activity * (0.6 + 0.4 * np.abs(shocks)))
        weights /= weights[-1]
        quote_weights = np.cumsum(np.diff(np.concatenate(([0.0], weights))) * close)
        quote_weights /= quote_weights[-1]

        def split(total: int, cum_weights: np.ndarray) -> np.ndarray:
            cum = np.floor(cum_weights * total).astype(np.int64)
            cum[-1] = total
            return np.concatenate((np.zeros(1, np.int64), cum))

        return DayBlock(
            open=open_,
            high=minute_high.astype(np.int64),
            low=minute_low.astype(np.int64),
            close=close,
            cum_volume=split(volume, weights),
            cum_quote=split(quote, quote_weights),
            cum_taker_base=split(taker_base, weights),
            cum_taker_quote=split(taker_quote, quote_weights),
            cum_trades=split(trades, weights),
            knot1=sec_knot1.astype(np.int8),
            knot2=sec_knot2.astype(np.int8),
            high_first=sec_high_first,
        )

    # -- second level ----------------------------------------------------------------------------
    def second_prices(self, symbol: str, minute: int) -> np.ndarray:
        """Prices (ticks) at the 61 second boundaries of epoch ``minute``; [0] is its open, [60] its close."""
        key = (symbol, minute)
        cached = self._seconds.get(key)
        if cached is not None:
            return cached
        day, i = divmod(minute - EPOCH_DAY * MINUTES_PER_DAY, MINUTES_PER_DAY)
        block = self.day_block(symbol, day)
        o, h, lo, c = int(block.open[i]), int(block.high[i]), int(block.low[i]), int(block.close[i])
        first, second = (h, lo) if block.high_first[i] else (lo, h)
        knots_t = np.array([0, int(block.knot1[i]), int(block.knot2[i]), 60])
        knots_v = np.array([o, first, second, c], dtype=np.float64)
        line = np.interp(np.arange(61), knots_t, knots_v)
        noise = _rng(self.seed, symbol, "sec", minute).standard_normal(61) * (h - lo) * 0.15
        prices = np.clip(np.rint(reflect(line + noise, lo, h)), lo, h).astype(np.int64)
        prices[knots_t] = knots_v.astype(np.int64)
        self._seconds[key] = prices
        if len(self._seconds) > 4096:
            self._seconds.popitem(last=False)
        return prices
