"""Candles of every Binance interval aggregated exactly from one deterministic price path."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from aitrader.exchange.pathgen import (
    EPOCH_DAY,
    EPOCH_MS,
    MAX_TRADES_PER_DAY,
    MINUTES_PER_DAY,
    PathGenerator,
)
from aitrader.exchange.symbols import SymbolSpec
from aitrader.intervals import INTERVAL_MS
from aitrader.intervals import candle_open_time as align_open
from aitrader.intervals import next_candle_open as next_open
from aitrader.intervals import prev_candle_open as prev_open


@dataclass(frozen=True, slots=True)
class Agg:
    """Aggregate of a span of the path: prices in ticks, volumes in 1e-8 units."""

    open: int
    high: int
    low: int
    close: int
    volume: int
    quote_volume: int
    taker_base: int
    taker_quote: int
    trades: int
    first_id: int
    last_id: int


@dataclass(frozen=True, slots=True)
class Candle:
    """One kline: its open/close times (ms) and its aggregate."""

    symbol: str
    interval: str
    open_time: int
    close_time: int
    agg: Agg
    closed: bool


def combine(parts: list[Agg]) -> Agg:
    """Aggregate consecutive spans: first open, max high, min low, last close, summed volumes."""
    if len(parts) == 1:  # most candles are one span of a day's minutes: nothing to combine
        return parts[0]
    traded = [p for p in parts if p.trades > 0]
    return Agg(
        open=parts[0].open,
        high=max(p.high for p in parts),
        low=min(p.low for p in parts),
        close=parts[-1].close,
        volume=sum(p.volume for p in parts),
        quote_volume=sum(p.quote_volume for p in parts),
        taker_base=sum(p.taker_base for p in parts),
        taker_quote=sum(p.taker_quote for p in parts),
        trades=sum(p.trades for p in parts),
        first_id=traded[0].first_id if traded else -1,
        last_id=traded[-1].last_id if traded else -1,
    )


class MarketData(Protocol):
    """What the exchange serves market data from: ``SyntheticMarket`` or a CSV ``ReplayMarket``."""

    specs: dict[str, SymbolSpec]

    @property
    def symbols(self) -> list[str]: ...
    def to_price(self, symbol: str, ticks: int) -> Decimal: ...
    def supports(self, interval: str) -> bool: ...
    def ended(self, symbol: str, now_ms: int) -> bool: ...
    def aggregate(self, symbol: str, start_ms: int, end_ms: int) -> Agg | None: ...
    def price_ticks(self, symbol: str, now_ms: int) -> int: ...
    def last_price(self, symbol: str, now_ms: int) -> Decimal: ...
    def candle(self, symbol: str, interval: str, open_ms: int, now_ms: int) -> Candle | None: ...
    def klines(
        self, symbol: str, interval: str, now_ms: int, start_ms: int | None = None, end_ms: int | None = None,
        limit: int = 500,
    ) -> list[Candle]: ...


class SyntheticMarket:
    """Seeded synthetic market: exact candles for any span, from history back to 2017 up to now."""

    def __init__(self, specs: tuple[SymbolSpec, ...], seed: int = 42) -> None:
        self.specs = {spec.symbol: spec for spec in specs}
        self.seed = seed
        self._path = PathGenerator(seed, specs)
        self._lock = threading.RLock()

    @property
    def symbols(self) -> list[str]:
        """Listed symbol names."""
        return list(self.specs)

    def to_price(self, symbol: str, ticks: int) -> Decimal:
        """Convert a price in ticks to a Decimal price."""
        return ticks * self.specs[symbol].tick_size

    def supports(self, interval: str) -> bool:
        """Every Binance interval is served."""
        return interval in INTERVAL_MS

    def ended(self, symbol: str, now_ms: int) -> bool:
        """A synthetic market never ends."""
        return False

    # -- spans -----------------------------------------------------------------------------------
    def _seconds_agg(self, symbol: str, minute: int, first: int, stop: int) -> Agg:
        prices = self._path.second_prices(symbol, minute)
        full = self._minutes_agg(symbol, minute, minute + 1)
        span = prices[first : stop + 1]

        def part(total: int) -> int:
            return total * stop // 60 - total * first // 60

        trades = part(full.trades)
        first_id = full.first_id + full.trades * first // 60
        return Agg(
            open=int(span[0]),
            high=int(span.max()),
            low=int(span.min()),
            close=int(span[-1]),
            volume=part(full.volume),
            quote_volume=part(full.quote_volume),
            taker_base=part(full.taker_base),
            taker_quote=part(full.taker_quote),
            trades=trades,
            first_id=first_id if trades else -1,
            last_id=first_id + trades - 1 if trades else -1,
        )

    def _minutes_agg(self, symbol: str, start_minute: int, stop_minute: int) -> Agg:
        """Minutes [start, stop) within one day."""
        day, a = divmod(start_minute - EPOCH_DAY * MINUTES_PER_DAY, MINUTES_PER_DAY)
        b = a + stop_minute - start_minute
        block = self._path.day_block(symbol, day)
        day_base = (day + EPOCH_DAY) * MAX_TRADES_PER_DAY
        trades = int(block.cum_trades[b] - block.cum_trades[a])
        one = b == a + 1  # a 1m candle: index, rather than reduce a one-element slice
        return Agg(
            open=int(block.open[a]),
            high=int(block.high[a] if one else block.high[a:b].max()),
            low=int(block.low[a] if one else block.low[a:b].min()),
            close=int(block.close[b - 1]),
            volume=int(block.cum_volume[b] - block.cum_volume[a]),
            quote_volume=int(block.cum_quote[b] - block.cum_quote[a]),
            taker_base=int(block.cum_taker_base[b] - block.cum_taker_base[a]),
            taker_quote=int(block.cum_taker_quote[b] - block.cum_taker_quote[a]),
            trades=trades,
            first_id=day_base + int(block.cum_trades[a]) if trades else -1,
            last_id=day_base + int(block.cum_trades[b]) - 1 if trades else -1,
        )

    def _day_agg(self, symbol: str, epoch_day: int) -> Agg:
        o, h, lo, c, v, q, tb, tq, n = self._path.day_summary(symbol, epoch_day - EPOCH_DAY)
        first_id = epoch_day * MAX_TRADES_PER_DAY
        return Agg(o, h, lo, c, v, q, tb, tq, n, first_id, first_id + n - 1)

    def aggregate(self, symbol: str, start_ms: int, end_ms: int) -> Agg | None:
        """Aggregate of the path over [start_ms, end_ms) at whole-second resolution; None if empty."""
        start_s = max(start_ms, EPOCH_MS) // 1000
        end_s = end_ms // 1000
        if end_s <= start_s:
            return None
        parts: list[Agg] = []
        s = start_s
        with self._lock:
            while s < end_s:
                if s % 86_400 == 0 and s + 86_400 <= end_s:
                    parts.append(self._day_agg(symbol, s // 86_400))
                    s += 86_400
                elif s % 60 == 0 and s + 60 <= end_s:
                    stop = min((s // 86_400 + 1) * 86_400, end_s - end_s % 60)
                    parts.append(self._minutes_agg(symbol, s // 60, stop // 60))
                    s = stop
                else:
                    minute = s // 60
                    stop = min(end_s, (minute + 1) * 60)
                    parts.append(self._seconds_agg(symbol, minute, s - minute * 60, stop - minute * 60))
                    s = stop
        return combine(parts)

    def price_ticks(self, symbol: str, now_ms: int) -> int:
        """The last traded price (ticks) at market time ``now_ms``."""
        second = max(now_ms, EPOCH_MS) // 1000
        minute = second // 60
        with self._lock:
            return int(self._path.second_prices(symbol, minute)[second - minute * 60])

    def last_price(self, symbol: str, now_ms: int) -> Decimal:
        """The last traded price at market time ``now_ms``."""
        return self.to_price(symbol, self.price_ticks(symbol, now_ms))

    # -- candles ---------------------------------------------------------------------------------
    def candle(self, symbol: str, interval: str, open_ms: int, now_ms: int) -> Candle:
        """The candle opening at ``open_ms``; partial (``closed=False``) if it contains ``now_ms``."""
        close_ms = next_open(open_ms, interval)
        closed = close_ms <= now_ms
        agg = self.aggregate(symbol, open_ms, close_ms if closed else now_ms)
        if agg is None:
            price = self.price_ticks(symbol, open_ms)
            agg = Agg(price, price, price, price, 0, 0, 0, 0, 0, -1, -1)
        return Candle(symbol, interval, open_ms, close_ms - 1, agg, closed)

    def open_times(
        self, interval: str, now_ms: int, start_ms: int | None, end_ms: int | None, limit: int
    ) -> list[int]:
        """Open times the klines endpoint returns, with Binance's startTime/endTime/limit semantics."""
        last = align_open(now_ms if end_ms is None else min(end_ms, now_ms), interval)
        opens: list[int] = []
        if start_ms is not None:
            t = align_open(max(start_ms, EPOCH_MS), interval)
            if t < start_ms:
                t = next_open(t, interval)
            while t <= last and len(opens) < limit:
                opens.append(t)
                t = next_open(t, interval)
            return opens
        t = last
        while len(opens) < limit and t >= align_open(EPOCH_MS, interval):
            opens.append(t)
            t = prev_open(t, interval)
        opens.reverse()
        return [t for t in opens if t >= EPOCH_MS or align_open(EPOCH_MS, interval) == t]

    def klines(
        self,
        symbol: str,
        interval: str,
        now_ms: int,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 500,
    ) -> list[Candle]:
        """Klines as ``GET /api/v3/klines`` selects them; the still-open candle comes last, partial."""
        opens = self.open_times(interval, now_ms, start_ms, end_ms, limit)
        return [self.candle(symbol, interval, t, now_ms) for t in opens]

    def candles(self, symbol: str, interval: str, opens: Iterable[int], now_ms: int) -> list[Candle]:
        """Candles opening at each of ``opens``."""
        return [self.candle(symbol, interval, t, now_ms) for t in opens]
