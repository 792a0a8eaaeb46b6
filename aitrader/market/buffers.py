"""``MarketBuffers``: candle buffers for many (symbol, interval) pairs, latest tickers, frames."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from aitrader.market.candles import CLOSE, DEFAULT_CAPACITY, FIELDS, Applied, CandleBuffer
from aitrader.market.wire import Kline, RestKline, TickerEvent

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class MarketFrame:
    """Candles of one interval as symbols x bars float64 arrays, oldest to newest per row.

    Rows with fewer candles are NaN-padded on the left.  ``last_open_time`` is the open time of
    the newest *closed* candle per symbol (-1 when none); ``has_open_candle`` says whether the
    row's last column is the in-progress candle (only when the frame was asked to include it).
    """

    interval: str
    symbols: tuple[str, ...]
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    last_open_time: npt.NDArray[np.int64]
    has_open_candle: npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class TickerSnapshot:
    """Latest 24-hour ticker of one symbol."""

    symbol: str
    price: Decimal
    change_24h_pct: Decimal
    volume_24h_quote: Decimal
    event_time: int


@dataclass(frozen=True, slots=True)
class BackfillResult:
    """Outcome of merging REST klines into one buffer."""

    new_candles: int
    remaining_gaps: tuple[tuple[int, int], ...]


class MarketBuffers:
    """Every ``CandleBuffer`` of a shard, keyed by (symbol, interval), and the latest tickers."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._buffers: dict[tuple[str, str], CandleBuffer] = {}
        self._tickers: dict[str, TickerEvent] = {}

    # -- membership --------------------------------------------------------------------------

    def add(self, symbol: str, intervals: Iterable[str]) -> None:
        """Start keeping candles of ``symbol`` (upper-case, as Binance names it) for ``intervals``."""
        for interval in intervals:
            key = (symbol, interval)
            if key not in self._buffers:
                self._buffers[key] = CandleBuffer(symbol, interval, self.capacity)

    def remove(self, symbol: str) -> None:
        """Forget every candle and ticker of ``symbol``."""
        for key in [key for key in self._buffers if key[0] == symbol]:
            del self._buffers[key]
        self._tickers.pop(symbol, None)

    def buffer(self, symbol: str, interval: str) -> CandleBuffer:
        """The buffer of (symbol, interval); ``KeyError`` when it is not tracked."""
        return self._buffers[(symbol, interval)]

    def get(self, symbol: str, interval: str) -> CandleBuffer | None:
        """The buffer of (symbol, interval), or None when it is not tracked."""
        return self._buffers.get((symbol, interval))

    @property
    def keys(self) -> list[tuple[str, str]]:
        """Tracked (symbol, interval) pairs."""
        return list(self._buffers)

    def symbols(self) -> list[str]:
        """Tracked symbols, in the order they were added."""
        return list(dict.fromkeys(symbol for symbol, _ in self._buffers))

    # -- hot path ----------------------------------------------------------------------------

    def apply_kline(self, kline: Kline) -> Applied | None:
        """Apply one stream kline; returns what happened to a closed one, None for an open one.

        Klines of untracked (symbol, interval) pairs are ignored and reported as ``IGNORED``.
        """
        buffer = self._buffers.get((kline.symbol, kline.interval))
        if buffer is None:
            return Applied.IGNORED
        if kline.closed:
            return buffer.apply_closed(kline)
        buffer.update_open(kline)
        return None

    def update_ticker(self, ticker: TickerEvent) -> None:
        """Keep ``ticker`` as the latest of its symbol unless a newer one is already kept."""
        current = self._tickers.get(ticker.symbol)
        if current is None or ticker.event_time >= current.event_time:
            self._tickers[ticker.symbol] = ticker

    # -- backfill ----------------------------------------------------------------------------

    def backfill(self, symbol: str, interval: str, rest_klines: Sequence[RestKline], now_ms: int) -> BackfillResult:
        """Merge REST klines so the buffer ends with no gap and no duplicate.

        The last REST row becomes the open candle when its close time is still in the future
        (``>= now_ms``); every earlier row is a closed candle.
        """
        buffer = self._buffers.get((symbol, interval))
        if buffer is None:
            buffer = self._buffers[(symbol, interval)] = CandleBuffer(symbol, interval, self.capacity)
        # Every row but the last is closed by definition; the last one is the open candle
        # unless its close time has passed. Deciding by the local clock alone would misfile
        # closed rows whenever the exchange's clock runs ahead (skew, or a sped-up local exchange).
        rows = list(rest_klines)
        last_open = bool(rows) and rows[-1].close_time >= now_ms
        closed = rows[:-1] if last_open else rows
        still_open = rows[-1:] if last_open else []
        new_candles = buffer.merge(closed)
        for row in still_open:
            buffer.update_open(row)
        return BackfillResult(new_candles, tuple(buffer.gaps()))

    # -- reads -------------------------------------------------------------------------------

    def frame(self, interval: str, symbols: Sequence[str] | None = None, include_open: bool = False) -> MarketFrame:
        """A ``MarketFrame`` of ``interval`` for ``symbols`` (default: every tracked symbol)."""
        chosen = tuple(symbols) if symbols is not None else tuple(
            symbol for symbol, tracked in self._buffers if tracked == interval
        )
        bars = self.capacity + (1 if include_open else 0)
        data = np.full((len(FIELDS) - 1, len(chosen), bars), np.nan)
        last_open_time = np.full(len(chosen), -1, dtype=np.int64)
        has_open = np.zeros(len(chosen), dtype=np.bool_)
        for row, symbol in enumerate(chosen):
            buffer = self._buffers.get((symbol, interval))
            if buffer is None:
                continue
            end = bars
            if include_open and (candle := buffer.open_candle) is not None:
                data[:, row, end - 1] = candle[1][: CLOSE + 2]
                has_open[row] = True
                end -= 1
            count = len(buffer)
            if count:
                data[:, row, end - count : end] = buffer.values()[: CLOSE + 2]
                last_open_time[row] = buffer.open_times[-1]
        return MarketFrame(interval, chosen, data[0], data[1], data[2], data[3], data[4], last_open_time, has_open)

    def ticker(self, symbol: str) -> TickerSnapshot | None:
        """Latest ticker of ``symbol`` with prices as ``Decimal``, or None before the first one."""
        event = self._tickers.get(symbol)
        if event is None:
            return None
        return TickerSnapshot(
            symbol=event.symbol,
            price=Decimal(event.last_price),
            change_24h_pct=Decimal(event.price_change_percent),
            volume_24h_quote=Decimal(event.quote_volume),
            event_time=event.event_time,
        )

    def tickers(self) -> dict[str, TickerSnapshot]:
        """Latest ticker of every symbol that has one."""
        return {symbol: snapshot for symbol in self._tickers if (snapshot := self.ticker(symbol))}
