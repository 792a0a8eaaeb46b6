"""``ReplayMarket``: recorded candles served through the same interface as ``SyntheticMarket``.

Closed candles of the recorded interval are exactly the file's rows; coarser intervals aggregate
them.  A candle still forming at market time ``now`` shows the part of its row elapsed so far:
prices follow open -> low -> high -> close for a rising candle (open -> high -> low -> close for
a falling one) in equal thirds, and volumes and trades accrue linearly, so the forming candle
ends exactly on the recorded values.  Missing rows stay missing (no candle is made up for them),
and after the last row a symbol's data has ended: nothing more is streamed for it.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np

from aitrader.exchange.market import Agg, Candle, combine
from aitrader.exchange.replay_csv import RecordedSymbol, ReplayFileError
from aitrader.exchange.symbols import SymbolSpec, resolve_symbols
from aitrader.intervals import INTERVAL_MS, candle_open_time, next_candle_open

_UNIT = Decimal(100_000_000)


def _ticks(value: Decimal, tick: Decimal) -> int:
    return int(value / tick)


def _units(value: Decimal) -> int:
    scaled = value * _UNIT
    if scaled != scaled.to_integral_value():
        raise ReplayFileError(f"volume {value} has more than 8 decimal places; Binance volumes have at most 8")
    return int(scaled)


class RecordedSeries:
    """One symbol's rows as arrays: prices in ticks, running sums of volumes in 1e-8 units."""

    def __init__(self, recorded: RecordedSymbol, spec: SymbolSpec) -> None:
        rows = recorded.candles
        tick = spec.tick_size
        self.symbol = recorded.symbol
        self.step = INTERVAL_MS[recorded.interval]
        self.open_times = [c.open_time for c in rows]
        self.open = [_ticks(c.open, tick) for c in rows]
        self.close = [_ticks(c.close, tick) for c in rows]
        self.high = np.array([_ticks(c.high, tick) for c in rows], dtype=np.int64)
        self.low = np.array([_ticks(c.low, tick) for c in rows], dtype=np.int64)

        def running(values: Iterable[int]) -> list[int]:
            return list(itertools.accumulate(values, initial=0))

        self.cum_volume = running(_units(c.volume) for c in rows)
        self.cum_quote = running(_units(c.quote_volume) for c in rows)
        self.cum_taker_base = running(_units(c.taker_buy_base) for c in rows)
        self.cum_taker_quote = running(_units(c.taker_buy_quote) for c in rows)
        self.cum_trades = running(c.trades for c in rows)

    @property
    def end_ms(self) -> int:
        """Market time at which the last recorded candle has closed."""
        return self.open_times[-1] + self.step

    def _path_price(self, i: int, elapsed: int) -> int:
        """Price (ticks) of row ``i`` after ``elapsed`` ms of its ``step``."""
        o, c = self.open[i], self.close[i]
        h, lo = int(self.high[i]), int(self.low[i])
        knots = (o, lo, h, c) if c >= o else (o, h, lo, c)
        third = self.step / 3
        leg = min(2, int(elapsed / third))
        a, b = knots[leg], knots[leg + 1]
        return a + round((b - a) * (elapsed - leg * third) / third)

    def _partial(self, i: int, begin: int, end: int) -> Agg:
        """Aggregate of row ``i`` between ``begin`` and ``end`` ms after its open (0 <= begin < end <= step)."""
        step = self.step
        o, c = self.open[i], self.close[i]
        h, lo = int(self.high[i]), int(self.low[i])
        knots = (o, lo, h, c) if c >= o else (o, h, lo, c)
        inside = [knots[k] for k in (1, 2) if begin < k * step / 3 < end]
        first, last = self._path_price(i, begin), self._path_price(i, end)

        def part(cum: list[int]) -> int:
            total = cum[i + 1] - cum[i]
            return total * end // step - total * begin // step

        trades = part(self.cum_trades)
        first_id = self.cum_trades[i] + (self.cum_trades[i + 1] - self.cum_trades[i]) * begin // step
        return Agg(
            first, max(first, last, *inside), min(first, last, *inside), last,
            part(self.cum_volume), part(self.cum_quote), part(self.cum_taker_base), part(self.cum_taker_quote),
            trades, first_id if trades else -1, first_id + trades - 1 if trades else -1,
        )  # fmt: skip

    def _whole(self, a: int, b: int) -> Agg:
        """Aggregate of whole rows ``a`` .. ``b - 1``."""
        trades = self.cum_trades[b] - self.cum_trades[a]
        return Agg(
            self.open[a], int(self.high[a:b].max()), int(self.low[a:b].min()), self.close[b - 1],
            self.cum_volume[b] - self.cum_volume[a], self.cum_quote[b] - self.cum_quote[a],
            self.cum_taker_base[b] - self.cum_taker_base[a], self.cum_taker_quote[b] - self.cum_taker_quote[a],
            trades, self.cum_trades[a] if trades else -1, self.cum_trades[b] - 1 if trades else -1,
        )  # fmt: skip

    def aggregate(self, start_ms: int, end_ms: int) -> Agg | None:
        """Aggregate of the recorded market over [start_ms, end_ms); None if nothing was recorded there."""
        times, step = self.open_times, self.step
        if end_ms <= start_ms:
            return None
        whole_from = bisect_left(times, start_ms)  # rows wholly inside: open >= start, open + step <= end
        whole_to = bisect_right(times, end_ms - step)
        parts: list[Agg] = []
        head = whole_from - 1  # a row open at start_ms
        if head >= 0 and times[head] + step > start_ms:
            parts.append(self._partial(head, start_ms - times[head], min(end_ms - times[head], step)))
        if whole_to > whole_from:
            parts.append(self._whole(whole_from, whole_to))
        tail = max(whole_to, whole_from)  # a row still open at end_ms
        if tail < len(times) and times[tail] < end_ms and tail != head:
            parts.append(self._partial(tail, 0, end_ms - times[tail]))
        return combine(parts) if parts else None

    def price_ticks(self, now_ms: int) -> int:
        """Last price at ``now_ms``: the forming candle's path price, else the last close."""
        i = bisect_right(self.open_times, now_ms) - 1
        if i < 0:
            return self.open[0]
        elapsed = now_ms - self.open_times[i]
        return self.close[i] if elapsed >= self.step else self._path_price(i, elapsed)

    def bucket_opens(self, interval: str, until_ms: int) -> list[int]:
        """Open times of ``interval`` candles that hold at least one row opened by ``until_ms``."""
        stop = bisect_right(self.open_times, until_ms)
        if INTERVAL_MS[interval] == self.step:
            return self.open_times[:stop]
        return list(dict.fromkeys(candle_open_time(t, interval) for t in self.open_times[:stop]))


class ReplayMarket:
    """Recorded candles of several symbols; the interface ``SyntheticMarket`` offers."""

    def __init__(self, recorded: list[RecordedSymbol], symbols: tuple[str, ...] | None = None) -> None:
        chosen = {r.symbol: r for r in recorded}
        if symbols:
            unknown = [s for s in symbols if s.upper() not in chosen]
            if unknown:
                raise ReplayFileError(
                    f"--symbols asks for {', '.join(unknown)} but the replay file has only {', '.join(chosen)}"
                )
            chosen = {s.upper(): chosen[s.upper()] for s in symbols}
        self.interval = next(iter(chosen.values())).interval
        self.specs: dict[str, SymbolSpec] = {}
        self._series: dict[str, RecordedSeries] = {}
        for name, rec in chosen.items():
            try:
                (spec,) = resolve_symbols([name])
            except ValueError as exc:
                raise ReplayFileError(f"cannot list {name}: {exc}") from None
            tick = min([spec.tick_size, *(_precision(v) for c in rec.candles for v in (c.open, c.high, c.low, c.close))])
            self.specs[name] = dataclasses.replace(spec, tick_size=tick, start_price=float(rec.candles[0].open))
            self._series[name] = RecordedSeries(rec, self.specs[name])
        self.start_ms = min(s.open_times[0] for s in self._series.values())
        self.end_ms = max(s.end_ms for s in self._series.values())
        self._lock = threading.RLock()

    @property
    def symbols(self) -> list[str]:
        """Listed symbol names."""
        return list(self.specs)

    def describe(self, speed: float) -> str:
        """One line for the operator: what is replayed, over which span, how fast."""
        def when(ms: int) -> str:
            return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")

        wall_s = (self.end_ms - self.start_ms) / 1000 / speed
        return (
            f"replaying {len(self.specs)} symbol(s) of {self.interval} candles from {when(self.start_ms)} "
            f"to {when(self.end_ms)} at {speed:g}x (about {wall_s / 60:.1f} min); streams stop at the end"
        )

    def to_price(self, symbol: str, ticks: int) -> Decimal:
        """Convert a price in ticks to a Decimal price."""
        return ticks * self.specs[symbol].tick_size

    def supports(self, interval: str) -> bool:
        """Whether candles of ``interval`` can be built from the recorded ones (same or coarser)."""
        step = INTERVAL_MS[self.interval]
        if interval not in INTERVAL_MS or INTERVAL_MS[interval] < step:
            return False
        return 86_400_000 % step == 0 if interval in ("1w", "1M") else INTERVAL_MS[interval] % step == 0

    def ended(self, symbol: str, now_ms: int) -> bool:
        """Whether the last recorded candle of ``symbol`` has closed by ``now_ms``."""
        return now_ms >= self._series[symbol].end_ms

    def aggregate(self, symbol: str, start_ms: int, end_ms: int) -> Agg | None:
        """Aggregate of the recorded market over [start_ms, end_ms); None when nothing was recorded."""
        with self._lock:
            return self._series[symbol].aggregate(start_ms, end_ms)

    def price_ticks(self, symbol: str, now_ms: int) -> int:
        """The last traded price (ticks) at market time ``now_ms``."""
        return self._series[symbol].price_ticks(now_ms)

    def last_price(self, symbol: str, now_ms: int) -> Decimal:
        """The last traded price at market time ``now_ms``."""
        return self.to_price(symbol, self.price_ticks(symbol, now_ms))

    def candle(self, symbol: str, interval: str, open_ms: int, now_ms: int) -> Candle | None:
        """The ``interval`` candle opening at ``open_ms`` as of ``now_ms``; None if no row has opened in it."""
        close_ms = next_candle_open(open_ms, interval)
        closed = close_ms <= now_ms
        agg = self.aggregate(symbol, open_ms, min(close_ms, now_ms))
        if agg is None:
            series = self._series[symbol]
            i = bisect_left(series.open_times, open_ms)
            if i == len(series.open_times) or series.open_times[i] > min(now_ms, close_ms - 1):
                return None
            price = series.open[i]  # a row opens exactly now: nothing traded yet
            agg = Agg(price, price, price, price, 0, 0, 0, 0, 0, -1, -1)
        return Candle(symbol, interval, open_ms, close_ms - 1, agg, closed)

    def klines(
        self,
        symbol: str,
        interval: str,
        now_ms: int,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 500,
    ) -> list[Candle]:
        """Recorded klines up to ``now_ms`` with Binance's startTime/endTime/limit semantics."""
        until = now_ms if end_ms is None else min(end_ms, now_ms)
        opens = self._series[symbol].bucket_opens(interval, until)
        if start_ms is not None:
            opens = opens[bisect_left(opens, start_ms) :][:limit]
        else:
            opens = opens[-limit:]
        return [c for t in opens if (c := self.candle(symbol, interval, t, now_ms)) is not None]

    def candles(self, symbol: str, interval: str, opens: Iterable[int], now_ms: int) -> list[Candle]:
        """Candles opening at each of ``opens`` (skipping those with no recorded data)."""
        return [c for t in opens if (c := self.candle(symbol, interval, t, now_ms)) is not None]


def _precision(value: Decimal) -> Decimal:
    """The smallest decimal step that writes ``value`` exactly, e.g. 0.01 for 42283.58000000."""
    exponent = value.normalize().as_tuple().exponent
    return Decimal(1).scaleb(min(0, int(exponent)))
