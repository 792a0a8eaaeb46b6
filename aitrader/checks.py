"""Running trader checks on market frames: the filter cache and batched, grouped evaluation.

A FilterWorker actor holds a `CheckRunner`; it fetches one frame per (shard, timeframe) and
hands the batch over.  Traders in a batch that share a filter and timeframe are evaluated once
over the union of their symbols (a filter is per symbol, so slicing the result is exact), then
each gets its own small `CheckResult`.  Errors never escape: a bad or slow filter becomes an
error result.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence

import msgspec
import numpy as np

from aitrader.filters import (
    CompiledFilter,
    FilterError,
    FilterResourceError,
    FilterRuntimeError,
    FilterTimeout,
    compile_filter,
)
from aitrader.filters import MarketFrame as FilterFrame
from aitrader.market import MarketFrame
from aitrader.scheduling import CheckTrader

DEFAULT_TIME_BUDGET_S = 2.0


class TimeframeOutcome(msgspec.Struct, frozen=True):
    """What one timeframe of a check found: matches with their conditions, closes and candle times."""

    timeframe: str
    matched: list[str]
    conditions: dict[str, list[str]]
    last_close: dict[str, float]
    candle_times: dict[str, int]
    missing: list[str]


class CheckResult(msgspec.Struct, frozen=True):
    """Event: a check finished; ``error_kind`` is compile, runtime, timeout, resource or data."""

    trader_id: str
    code_hash: str
    outcomes: list[TimeframeOutcome]
    elapsed_ms: float
    error: str | None = None
    error_kind: str | None = None


class FilterCache:
    """Compiled filters by code hash, least recently used evicted; compile errors are cached too."""

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, CompiledFilter | FilterError] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, code_hash: str, code: str) -> CompiledFilter:
        """The compiled filter; raises its `FilterError` if the code does not compile."""
        entry = self._entries.get(code_hash)
        if entry is None:
            self.misses += 1
            try:
                entry = compile_filter(code)
            except FilterError as exc:
                entry = exc
            self._entries[code_hash] = entry
            if len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        else:
            self.hits += 1
            self._entries.move_to_end(code_hash)
        if isinstance(entry, FilterError):
            raise entry
        return entry

    def __len__(self) -> int:
        return len(self._entries)


class ShardFrame:
    """One shard's frame of one interval, with a symbol -> row index."""

    __slots__ = ("frame", "rows")

    def __init__(self, frame: MarketFrame) -> None:
        self.frame = frame
        self.rows = {symbol: row for row, symbol in enumerate(frame.symbols)}


def assemble(symbols: Sequence[str], frames: Sequence[ShardFrame]) -> tuple[FilterFrame, np.ndarray, list[str]]:
    """The filter frame of ``symbols`` gathered from several shard frames, their last candle open
    times, and the symbols no frame holds (or that have no closed candle yet)."""
    parts: list[tuple[ShardFrame, list[int], list[str]]] = []
    missing: list[str] = []
    remaining = list(symbols)
    for shard in frames:
        rows, names, left = [], [], []
        for symbol in remaining:
            row = shard.rows.get(symbol)
            if row is None:
                left.append(symbol)
            elif shard.frame.last_open_time[row] < 0:
                missing.append(symbol)
            else:
                rows.append(row)
                names.append(symbol)
        if rows:
            parts.append((shard, rows, names))
        remaining = left
    missing.extend(remaining)
    names = [name for _, _, part_names in parts for name in part_names]

    def gather(series: str) -> np.ndarray:
        if not parts:
            return np.empty((0, 0))
        return np.concatenate([getattr(shard.frame, series)[rows] for shard, rows, _ in parts])

    open_times = (
        np.concatenate([shard.frame.last_open_time[rows] for shard, rows, _ in parts])
        if parts else np.empty(0, dtype=np.int64)
    )
    frame = FilterFrame.from_arrays(
        names, gather("open"), gather("high"), gather("low"), gather("close"), gather("volume")
    )
    return frame, open_times, missing


class CheckRunner:
    """Evaluates batches of checks against frames, sharing work between traders with one filter."""

    def __init__(self, cache_size: int = 256, time_budget_s: float = DEFAULT_TIME_BUDGET_S) -> None:
        self.filters = FilterCache(cache_size)
        self.time_budget_s = time_budget_s
        self.evaluations = 0

    def run(
        self, checks: Sequence[CheckTrader], frames: Mapping[str, Sequence[ShardFrame]]
    ) -> list[CheckResult]:
        """Results in the order of ``checks``; ``frames`` maps a timeframe to its shard frames."""
        started = time.perf_counter()
        groups: dict[tuple[str, str], list[CheckTrader]] = {}
        for check in checks:
            for timeframe in check.timeframes:
                groups.setdefault((check.code_hash, timeframe), []).append(check)
        outcomes: dict[str, list[TimeframeOutcome]] = {check.trader_id: [] for check in checks}
        errors: dict[str, tuple[str, str]] = {}
        for (code_hash, timeframe), members in groups.items():
            symbols = list(dict.fromkeys(s for check in members for s in check.symbols))
            try:
                shared = self._evaluate(code_hash, members[0].code, timeframe, symbols, frames.get(timeframe, ()))
            except _CheckFailed as failed:
                for check in members:
                    errors.setdefault(check.trader_id, (failed.kind, failed.message))
                continue
            for check in members:
                outcomes[check.trader_id].append(_slice(shared, check.symbols))
        elapsed_ms = (time.perf_counter() - started) * 1000
        results = []
        for check in checks:
            kind, message = errors.get(check.trader_id, (None, None))
            results.append(CheckResult(check.trader_id, check.code_hash, outcomes[check.trader_id],
                                       round(elapsed_ms, 3), message, kind))
        return results

    def _evaluate(
        self, code_hash: str, code: str, timeframe: str, symbols: list[str], frames: Sequence[ShardFrame]
    ) -> TimeframeOutcome:
        try:
            compiled = self.filters.get(code_hash, code)
        except FilterError as exc:
            raise _CheckFailed("compile", f"the filter does not compile: {exc}") from exc
        frame, open_times, missing = assemble(symbols, frames)
        if not frame.symbols:
            return TimeframeOutcome(timeframe, [], {}, {}, {}, missing)
        self.evaluations += 1
        try:
            result = compiled.evaluate(frame, time_budget_s=self.time_budget_s)
        except FilterTimeout as exc:
            raise _CheckFailed("timeout", f"the filter ran past its {self.time_budget_s:g} s budget: {exc}") from exc
        except FilterResourceError as exc:
            raise _CheckFailed("resource", f"the filter needed too much memory: {exc}") from exc
        except FilterRuntimeError as exc:
            raise _CheckFailed("runtime", f"the filter failed on market data: {exc}") from exc
        except Exception as exc:  # a bug in a helper must not take the worker down
            raise _CheckFailed("runtime", f"the filter failed: {type(exc).__name__}: {exc}") from exc
        rows = {symbol: row for row, symbol in enumerate(frame.symbols)}
        closes = frame.close[:, -1]
        return TimeframeOutcome(
            timeframe,
            result.matched,
            {symbol: result.conditions.get(symbol, []) for symbol in result.matched},
            {symbol: float(closes[rows[symbol]]) for symbol in result.matched},
            {symbol: int(open_times[row]) for symbol, row in rows.items()},
            missing,
        )


class _CheckFailed(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


def _slice(shared: TimeframeOutcome, symbols: Sequence[str]) -> TimeframeOutcome:
    mine = set(symbols)
    if mine.issuperset(shared.candle_times) and mine.issuperset(shared.missing):
        return shared
    matched = [s for s in shared.matched if s in mine]
    return TimeframeOutcome(
        shared.timeframe,
        matched,
        {s: shared.conditions[s] for s in matched},
        {s: shared.last_close[s] for s in matched},
        {s: t for s, t in shared.candle_times.items() if s in mine},
        [s for s in shared.missing if s in mine],
    )
