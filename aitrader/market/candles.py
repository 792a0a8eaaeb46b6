"""``CandleBuffer``: the last N closed candles of one (symbol, interval), plus the open candle.

Layout: one float64 array of shape (fields, 2N) and an int64 ``open_time`` array of 2N; the
window ``[start, end)`` holds the closed candles oldest to newest, so every field is one
contiguous slice and reading a window is a view, not a copy.  Appends write at ``end``; when
``end`` reaches 2N the newest N-1 candles are moved to the front (an amortised O(1) copy once
every N appends).  The open (in-progress) candle is kept apart and never mixed with closed ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum
from typing import Protocol

import numpy as np
import numpy.typing as npt

from aitrader.intervals import interval_ms, next_candle_open, prev_candle_open

#: Float fields stored per candle, in row order.
FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume", "quote_volume")
OPEN, HIGH, LOW, CLOSE, VOLUME, QUOTE_VOLUME = range(len(FIELDS))

DEFAULT_CAPACITY = 250
_EMPTY = -(2**62)


class CandleSource(Protocol):
    """Anything carrying one candle as wire strings: a stream ``Kline`` or a ``RestKline`` row."""

    @property
    def open_time(self) -> int: ...
    @property
    def open(self) -> str: ...
    @property
    def high(self) -> str: ...
    @property
    def low(self) -> str: ...
    @property
    def close(self) -> str: ...
    @property
    def volume(self) -> str: ...
    @property
    def quote_volume(self) -> str: ...


class Applied(IntEnum):
    """What applying a closed candle did."""

    APPENDED = 0
    REPLACED = 1
    IGNORED = 2
    GAP = 3  # appended, but candles between the previous one and this one are missing


class CandleBuffer:
    """Closed candles of one (symbol, interval) in a fixed-size window, plus the open candle."""

    __slots__ = (
        "symbol", "interval", "capacity", "last_gap", "_step", "_monthly", "_values", "_times",
        "_rows", "_start", "_end", "_open", "_last",
    )

    def __init__(self, symbol: str, interval: str, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1 candle, got {capacity}")
        self.symbol = symbol
        self.interval = interval
        self.capacity = capacity
        #: ``(first_missing_open_time, last_missing_open_time)`` of the latest gap seen.
        self.last_gap: tuple[int, int] | None = None
        self._step = interval_ms(interval)
        self._monthly = interval == "1M"
        self._values = np.full((len(FIELDS), 2 * capacity), np.nan)
        self._times = np.zeros(2 * capacity, dtype=np.int64)
        self._rows = tuple(self._values[i] for i in range(len(FIELDS)))
        self._start = 0
        self._end = 0
        self._open: CandleSource | None = None
        self._last = _EMPTY  # open time of the newest closed candle, as a Python int (hot path)

    # -- reads -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._end - self._start

    @property
    def open_times(self) -> npt.NDArray[np.int64]:
        """Open times of the closed candles, oldest to newest (a read-only view)."""
        view = self._times[self._start : self._end]
        view.flags.writeable = False
        return view

    def values(self) -> npt.NDArray[np.float64]:
        """Closed candles as a (fields, bars) view, oldest to newest; rows follow ``FIELDS``."""
        view = self._values[:, self._start : self._end]
        view.flags.writeable = False
        return view

    def column(self, name: str) -> npt.NDArray[np.float64]:
        """One field (``"close"``, ...) of the closed candles, oldest to newest."""
        return self.values()[FIELDS.index(name)]

    @property
    def last_open_time(self) -> int | None:
        """Open time of the newest closed candle, or None when empty."""
        return self._last if self._end > self._start else None

    @property
    def open_candle(self) -> tuple[int, npt.NDArray[np.float64]] | None:
        """The in-progress candle as ``(open_time, values by FIELDS)``, or None."""
        source = self._open
        if source is None:
            return None
        return source.open_time, _floats(source)

    # -- writes ------------------------------------------------------------------------------

    def update_open(self, candle: CandleSource) -> bool:
        """Keep ``candle`` as the in-progress candle unless a closed one already covers it."""
        if candle.open_time <= self._last:
            return False
        current = self._open
        if current is not None and candle.open_time < current.open_time:
            return False
        self._open = candle
        return True

    def apply_closed(self, candle: CandleSource) -> Applied:
        """Store a closed candle: append, overwrite the stored one with its open time, or ignore."""
        open_time = candle.open_time
        start, end = self._start, self._end
        result = Applied.APPENDED
        if end > start:
            last = self._last
            if open_time > last:
                expected = next_candle_open(last, self.interval) if self._monthly else last + self._step
                if open_time > expected:
                    last_missing = prev_candle_open(open_time, self.interval) if self._monthly else open_time - self._step
                    self.last_gap = (expected, last_missing)
                    result = Applied.GAP
            elif open_time == last:
                self._write(end - 1, open_time, candle)
                self._drop_open_at_or_before(open_time)
                return Applied.REPLACED
            else:
                index = start + int(np.searchsorted(self._times[start:end], open_time))
                if index < end and self._times[index] == open_time:
                    self._write(index, open_time, candle)
                    return Applied.REPLACED
                return Applied.IGNORED
            if end - start == self.capacity or end == 2 * self.capacity:
                start, end = self._compact(start, end)
        self._write(end, open_time, candle)
        self._start, self._end = start, end + 1
        self._last = open_time
        self._drop_open_at_or_before(open_time)
        return result

    def merge(self, candles: Sequence[CandleSource]) -> int:
        """Merge closed candles (e.g. REST backfill) by open time; returns how many were new.

        Given candles win over stored ones with the same open time; the window keeps the newest
        ``capacity`` candles.  Nothing is invented: holes stay holes (see ``gaps``).
        """
        if not candles:
            return 0
        incoming_times = np.fromiter((c.open_time for c in candles), dtype=np.int64, count=len(candles))
        incoming = np.array([[float(getattr(c, f)) for f in FIELDS] for c in candles]).T
        stored_times = self._times[self._start : self._end]
        all_times = np.concatenate([stored_times, incoming_times])
        all_values = np.concatenate([self._values[:, self._start : self._end], incoming], axis=1)
        order = np.argsort(all_times, kind="stable")
        sorted_times = all_times[order]
        keep_last = np.append(sorted_times[1:] != sorted_times[:-1], True)
        chosen = order[keep_last][-self.capacity :]
        new_count = int(np.count_nonzero(~np.isin(all_times[chosen], stored_times)))
        count = len(chosen)
        self._times[:count] = all_times[chosen]
        self._values[:, :count] = all_values[:, chosen]
        self._values[:, count:] = np.nan
        self._start, self._end = 0, count
        self._last = int(self._times[count - 1])
        self._drop_open_at_or_before(self._last)
        return new_count

    def gaps(self) -> list[tuple[int, int]]:
        """Missing stretches inside the window as ``(first_missing, last_missing)`` open times."""
        times = self.open_times
        found: list[tuple[int, int]] = []
        if self._monthly:
            for previous, current in zip(times[:-1].tolist(), times[1:].tolist(), strict=True):
                expected = next_candle_open(previous, self.interval)
                if current > expected:
                    found.append((expected, prev_candle_open(current, self.interval)))
            return found
        steps = np.diff(times)
        for index in np.nonzero(steps != self._step)[0].tolist():
            found.append((int(times[index]) + self._step, int(times[index + 1]) - self._step))
        return found

    def clear(self) -> None:
        """Forget every candle (e.g. when the symbol is unsubscribed)."""
        self._start = self._end = 0
        self._last = _EMPTY
        self._open = None
        self.last_gap = None

    # -- internals ---------------------------------------------------------------------------

    def _write(self, index: int, open_time: int, candle: CandleSource) -> None:
        rows = self._rows
        self._times[index] = open_time
        rows[OPEN][index] = float(candle.open)
        rows[HIGH][index] = float(candle.high)
        rows[LOW][index] = float(candle.low)
        rows[CLOSE][index] = float(candle.close)
        rows[VOLUME][index] = float(candle.volume)
        rows[QUOTE_VOLUME][index] = float(candle.quote_volume)

    def _compact(self, start: int, end: int) -> tuple[int, int]:
        """Make room for one append: drop the oldest when full, move to the front when at 2N."""
        if end - start == self.capacity:
            start += 1
        if end == 2 * self.capacity:
            keep = end - start
            self._times[:keep] = self._times[start:end]
            self._values[:, :keep] = self._values[:, start:end]
            start, end = 0, keep
        return start, end

    def _drop_open_at_or_before(self, open_time: int) -> None:
        if self._open is not None and self._open.open_time <= open_time:
            self._open = None


def _floats(candle: CandleSource) -> npt.NDArray[np.float64]:
    return np.array([float(getattr(candle, name)) for name in FIELDS])
