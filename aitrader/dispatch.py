"""Where a check's data lives and where its time goes: shard routes, pushed frames, stage times.

`ShardRoutes` maps symbols to the stream shard carrying them and remembers each trader's set
of shards (a candle close re-checks the same traders with the same symbols, so the scheduler's
hot path should not recompute it).  `PushedFrames` keeps the frame references shards send
with their candle-close notices, so a check needs no request to a shard.  `StageTimes` splits the candle-close-to-result latency of
dispatched batches into queue wait, the way to the worker, evaluation, the way back and
completion, so a slow p99 can
be traced to its stage instead of guessed at.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

Ref = TypeVar("Ref")

#: A pushed frame is used for at most this long (a reconnect backfills candles without a
#: notice); past it the shard is asked for its frame again.
PUSHED_FRAME_MAX_AGE_S = 5.0


class ShardRoutes:
    """Symbol -> shard index, and the sorted shard indexes of a set of symbols (cached)."""

    def __init__(self) -> None:
        self._shard_of: dict[str, int] = {}
        self._routes: dict[tuple[str, ...], list[int]] = {}

    def assign(self, symbols: Iterable[str], shard: int) -> None:
        """``symbols`` are carried by ``shard`` (a moved symbol invalidates the cached routes)."""
        for symbol in symbols:
            if self._shard_of.get(symbol) != shard:
                self._shard_of[symbol] = shard
                self._routes.clear()

    def shard_of(self, symbol: str) -> int | None:
        return self._shard_of.get(symbol)

    def symbols_of(self, shard: int) -> set[str]:
        return {symbol for symbol, index in self._shard_of.items() if index == shard}

    def route(self, symbols: tuple[str, ...]) -> list[int]:
        """The shards holding any of ``symbols``, ascending; symbols on no shard are left out."""
        route = self._routes.get(symbols)
        if route is None:
            route = self._routes[symbols] = sorted(
                {index for symbol in symbols if (index := self._shard_of.get(symbol)) is not None}
            )
        return route

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._shard_of

    def __bool__(self) -> bool:
        return bool(self._shard_of)


class PushedFrames(Generic[Ref]):
    """Frame references shards sent with their candle-close notices, one per (shard, interval).

    A reference is current for the candle-close ``version`` of its shard it came with, and for
    at most ``max_age_s``; `get` returns None otherwise (then the shard is asked).
    """

    def __init__(self, max_age_s: float = PUSHED_FRAME_MAX_AGE_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_age_s, self._clock = max_age_s, clock
        self._refs: dict[tuple[int, str], tuple[int, float, Ref]] = {}
        self.pushed = 0
        self.used = 0

    def offer(self, shard: int, interval: str, version: int, ref: Ref) -> None:
        """``ref`` is the frame of ``shard`` and ``interval`` as of candle-close ``version``."""
        self._refs[(shard, interval)] = (version, self._clock(), ref)
        self.pushed += 1

    def get(self, shard: int, interval: str, version: int) -> Ref | None:
        entry = self._refs.get((shard, interval))
        if entry is None or entry[0] != version or self._clock() - entry[1] >= self._max_age_s:
            return None
        self.used += 1
        return entry[2]

    def forget(self, shard: int, interval: str) -> None:
        self._refs.pop((shard, interval), None)


STAGES = ("wait", "send", "run", "back", "complete")


class StageTimes:
    """Per-batch latency by stage, in ms: ``wait`` (oldest trigger to dispatch), ``send``
    (dispatch to the worker starting: the frames becoming ready and the call's way there),
    ``run`` (evaluation in the worker), ``back`` (the result's way back) and ``complete``
    (result back to the checks finished: signals stored, schedule updated)."""

    def __init__(self) -> None:
        self._sums: dict[str, float] = {}
        self._maxima: dict[str, float] = {}
        self.batches = 0
        self._clear()

    def _clear(self) -> None:
        self._sums = dict.fromkeys(STAGES, 0.0)
        self._maxima = dict.fromkeys(STAGES, 0.0)
        self.batches = 0

    def record(self, triggered_s: Sequence[float], dispatched_s: float, started_s: float, run_ms: float,
               replied_s: float, completed_s: float) -> None:
        """One batch: its checks' trigger times, and the wall times (s) of its stages."""
        values = {
            "wait": (dispatched_s - min(triggered_s, default=dispatched_s)) * 1000,
            "send": (started_s - dispatched_s) * 1000,
            "run": run_ms,
            "back": (replied_s - started_s) * 1000 - run_ms,
            "complete": (completed_s - replied_s) * 1000,
        }
        self.batches += 1
        for stage, value in values.items():
            self._sums[stage] += value
            self._maxima[stage] = max(self._maxima[stage], value)

    def summary(self, reset: bool = False) -> dict[str, float]:
        """``avg_<stage>_ms`` and ``max_<stage>_ms`` over the batches since the last reset."""
        count = max(1, self.batches)
        summary = {f"avg_{stage}_ms": round(self._sums[stage] / count, 3) for stage in STAGES}
        summary |= {f"max_{stage}_ms": round(self._maxima[stage], 3) for stage in STAGES}
        if reset:
            self._clear()
        return summary
