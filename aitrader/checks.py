"""Running trader checks on market frames: the filter cache and batched, shared evaluation.

A FilterWorker actor holds a `CheckRunner`; it fetches one frame per (shard, timeframe) and
hands the batch over.  A filter is evaluated once per shard frame, over all of the frame's
symbols and in place (a filter is per symbol, so the rows a trader watches are exact), and the
per-symbol outcome is kept on the frame for every later trader of that filter; each trader then
gets its own small `CheckResult` by row look-ups.  Errors never escape: a bad or slow filter
becomes an error result.
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


class TimeframeOutcome(msgspec.Struct, frozen=True, array_like=True):
    """What one timeframe of a check found: matches with their conditions, closes and candle times."""

    timeframe: str
    matched: list[str]
    conditions: dict[str, list[str]]
    last_close: dict[str, float]
    candle_times: dict[str, int]
    missing: list[str]


class CheckResult(msgspec.Struct, frozen=True, array_like=True):
    """Event: a check finished; ``error_kind`` is compile, runtime, timeout, resource or data.

    ``elapsed_ms`` is the evaluation of the check's batch, ``started_s`` the wall time (s) the
    worker began it, its frames at hand."""

    trader_id: str
    code_hash: str
    outcomes: list[TimeframeOutcome]
    elapsed_ms: float
    error: str | None = None
    error_kind: str | None = None
    started_s: float = 0.0


_ENCODER = msgspec.msgpack.Encoder()
_RESULTS = msgspec.msgpack.Decoder(list[CheckResult])
_CHECKS = msgspec.msgpack.Decoder(list[CheckTrader])


def encode_batch(items: Sequence[CheckTrader] | Sequence[CheckResult]) -> bytes:
    """A batch of checks, or its results, as msgpack: what travels between the scheduler and a
    worker (a tenth of the time Ray's pickling of the structs takes, each way)."""
    return _ENCODER.encode(items)


def decode_results(data: bytes) -> list[CheckResult]:
    return _RESULTS.decode(data)


def decode_checks(data: bytes) -> list[CheckTrader]:
    return _CHECKS.decode(data)


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


class FilterMatches(msgspec.Struct, frozen=True):
    """One filter's result on one shard frame: matched symbols with their conditions and closes."""

    conditions: dict[str, list[str]]
    last_close: dict[str, float]


class CheckFailed(Exception):
    """A filter could not be evaluated on a frame; ``kind`` is compile, runtime, timeout or resource."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message


class ShardFrame:
    """One shard's frame of one interval: a symbol -> row index, the open time of each symbol's
    newest closed candle, and the outcome of every filter already evaluated on it (a frame never
    changes, so an outcome stays valid for as long as the frame is kept)."""

    __slots__ = ("frame", "rows", "candle_times", "outcomes")

    def __init__(self, frame: MarketFrame) -> None:
        self.frame = frame
        self.rows = {symbol: row for row, symbol in enumerate(frame.symbols)}
        self.candle_times = {
            symbol: time_ for symbol, time_ in zip(frame.symbols, frame.last_open_time.tolist(), strict=True)
            if time_ >= 0
        }
        self.outcomes: dict[str, FilterMatches | CheckFailed] = {}


def _evaluate(compiled: CompiledFilter, frame: MarketFrame, time_budget_s: float) -> FilterMatches | CheckFailed:
    view = FilterFrame.from_arrays(frame.symbols, frame.open, frame.high, frame.low, frame.close, frame.volume)
    try:
        result = compiled.evaluate(view, time_budget_s=time_budget_s)
    except FilterTimeout as exc:
        return CheckFailed("timeout", f"the filter ran past its {time_budget_s:g} s budget: {exc}")
    except FilterResourceError as exc:
        return CheckFailed("resource", f"the filter needed too much memory: {exc}")
    except FilterRuntimeError as exc:
        return CheckFailed("runtime", f"the filter failed on market data: {exc}")
    except Exception as exc:  # a bug in a helper must not take the worker down
        return CheckFailed("runtime", f"the filter failed: {type(exc).__name__}: {exc}")
    rows = {symbol: row for row, symbol in enumerate(frame.symbols)}
    closes = frame.close[:, -1]
    matched = [symbol for symbol in result.matched if frame.last_open_time[rows[symbol]] >= 0]
    return FilterMatches(
        {symbol: result.conditions.get(symbol, []) for symbol in matched},
        {symbol: float(closes[rows[symbol]]) for symbol in matched},
    )


def _locate(
    located: dict[str, tuple[Sequence[ShardFrame], dict[str, int]]], timeframe: str,
    frames: Mapping[str, Sequence[ShardFrame]],
) -> tuple[Sequence[ShardFrame], dict[str, int]]:
    """The frames of ``timeframe`` and, per symbol, the index of the first one holding it (kept
    in ``located`` for the rest of the batch)."""
    shards = frames.get(timeframe, ())
    frame_of: dict[str, int] = {}
    for index, shard in enumerate(shards):
        for symbol in shard.rows:
            frame_of.setdefault(symbol, index)
    located[timeframe] = (shards, frame_of)
    return located[timeframe]


def assemble(symbols: Sequence[str], frames: Sequence[ShardFrame]) -> tuple[FilterFrame, np.ndarray, list[str]]:
    """The filter frame of ``symbols`` gathered (copied) from several shard frames, their last
    candle open times, and the symbols no frame holds (or that have no closed candle yet)."""
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
    """Evaluates batches of checks against shard frames, each filter once per frame."""

    def __init__(self, cache_size: int = 256, time_budget_s: float = DEFAULT_TIME_BUDGET_S) -> None:
        self.filters = FilterCache(cache_size)
        self.time_budget_s = time_budget_s
        self.evaluations = 0

    def run(
        self, checks: Sequence[CheckTrader], frames: Mapping[str, Sequence[ShardFrame]], started_s: float = 0.0
    ) -> list[CheckResult]:
        """Results in the order of ``checks``; ``frames`` maps a timeframe to its shard frames
        (``started_s``, when the worker began the batch, is passed on in the results)."""
        started = time.perf_counter()
        outcomes: list[list[TimeframeOutcome] | CheckFailed] = []
        located: dict[str, tuple[Sequence[ShardFrame], dict[str, int]]] = {}  # per timeframe
        for check in checks:
            try:
                compiled = self.filters.get(check.code_hash, check.code)
                outcomes.append([self._outcome(compiled, check.symbols, timeframe,
                                               located.get(timeframe) or _locate(located, timeframe, frames))
                                 for timeframe in check.timeframes])
            except FilterError as exc:
                outcomes.append(CheckFailed("compile", f"the filter does not compile: {exc}"))
            except CheckFailed as failed:
                outcomes.append(failed)
        elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
        return [
            CheckResult(check.trader_id, check.code_hash, [], elapsed_ms, outcome.message, outcome.kind, started_s)
            if isinstance(outcome, CheckFailed)
            else CheckResult(check.trader_id, check.code_hash, outcome, elapsed_ms, started_s=started_s)
            for check, outcome in zip(checks, outcomes, strict=True)
        ]

    def _outcome(
        self, compiled: CompiledFilter, symbols: Sequence[str], timeframe: str,
        located: tuple[Sequence[ShardFrame], dict[str, int]],
    ) -> TimeframeOutcome:
        frames, frame_of = located
        matched: list[str] = []
        conditions: dict[str, list[str]] = {}
        last_close: dict[str, float] = {}
        candle_times: dict[str, int] = {}
        missing: list[str] = []
        found: dict[int, FilterMatches] = {}  # per shard frame, evaluated when first needed
        for symbol in symbols:
            index = frame_of.get(symbol, -1)
            candle_time = frames[index].candle_times.get(symbol, -1) if index >= 0 else -1
            if candle_time < 0:
                missing.append(symbol)
                continue
            candle_times[symbol] = candle_time
            matches = found.get(index)
            if matches is None:
                matches = found[index] = self._matches(compiled, frames[index])
            held = matches.conditions.get(symbol)
            if held is not None:
                matched.append(symbol)
                conditions[symbol] = list(held)
                last_close[symbol] = matches.last_close[symbol]
        return TimeframeOutcome(timeframe, matched, conditions, last_close, candle_times, missing)

    def _matches(self, compiled: CompiledFilter, shard: ShardFrame) -> FilterMatches:
        """``compiled`` on every symbol of ``shard``, evaluated the first time only."""
        found = shard.outcomes.get(compiled.code_hash)
        if found is None:
            self.evaluations += 1
            found = shard.outcomes[compiled.code_hash] = _evaluate(compiled, shard.frame, self.time_budget_s)
        if isinstance(found, CheckFailed):
            raise found
        return found
