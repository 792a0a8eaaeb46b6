"""Where a check's data lives and where its time goes: shard routes and per-stage latency.

`ShardRoutes` maps symbols to the stream shard carrying them and remembers each trader's set
of shards (a candle close re-checks the same traders with the same symbols, so the scheduler's
hot path should not recompute it).  `StageTimes` splits the candle-close-to-result latency of
dispatched batches into queue wait, the way to the worker, evaluation, the way back and
completion, so a slow p99 can
be traced to its stage instead of guessed at.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


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
