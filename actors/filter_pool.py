"""FilterWorker actors and the FilterPool that spreads check batches over them.

A worker holds a `CheckRunner` (compiled-filter LRU, grouped evaluation) and a small frame
cache: frames come straight from the stream shards through the object store, one fetch per
(shard, timeframe, shard version) — the scheduler bumps a shard's version whenever one of its
candles closes, so fifty traders checked on the same candle share one fetch.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import ray

from aitrader.checks import CheckResult, CheckRunner, ShardFrame
from aitrader.scheduling import CheckTrader

#: Frames older than this are fetched again even if no candle close was seen (reconnect backfills).
FRAME_MAX_AGE_S = 5.0
FRAME_TIMEOUT_S = 10.0


def default_pool_size() -> int:
    """One worker per CPU Ray has, at least one."""
    return max(1, int(ray.available_resources().get("CPU", 1)))


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=8)
class FilterWorker:
    """Evaluates batches of trader checks on frames it fetches from the shards."""

    def __init__(self, worker_id: int = 0, cache_size: int = 256, time_budget_s: float = 2.0,
                 frame_cache_size: int = 64) -> None:
        self.worker_id = worker_id
        self.runner = CheckRunner(cache_size, time_budget_s)
        self._frames: OrderedDict[tuple[int, str, int], tuple[float, ShardFrame]] = OrderedDict()
        self._frame_cache_size = frame_cache_size
        self._fetching: dict[tuple[int, str, int], asyncio.Future[ShardFrame]] = {}
        self._counters = {"batches": 0, "checks": 0, "frame_fetches": 0, "frame_hits": 0}

    async def ping(self) -> int:
        return self.worker_id

    async def pid(self) -> int:
        import os

        return os.getpid()

    async def check(
        self, checks: list[CheckTrader], shards: dict[int, Any], versions: dict[int, int], routes: dict[str, list[int]]
    ) -> list[CheckResult]:
        """Run ``checks``; ``routes`` maps each trader to the shard indexes holding its symbols."""
        needed = {(index, timeframe) for check in checks for index in routes.get(check.trader_id, [])
                  for timeframe in check.timeframes}
        keys = sorted(needed)
        fetched = await asyncio.gather(
            *(self._frame(shards[index], index, timeframe, versions.get(index, 0)) for index, timeframe in keys),
            return_exceptions=True,
        )
        frames: dict[tuple[int, str], ShardFrame] = {}
        failures: dict[tuple[int, str], str] = {}
        for key, value in zip(keys, fetched, strict=True):
            if isinstance(value, BaseException):
                failures[key] = f"market data from shard {key[0]} is unavailable: {type(value).__name__}: {value}"
            else:
                frames[key] = value
        runnable, results = [], {}
        for check in checks:
            broken = [failures[(i, tf)] for i in routes.get(check.trader_id, []) for tf in check.timeframes
                      if (i, tf) in failures]
            if broken:
                results[check.trader_id] = CheckResult(check.trader_id, check.code_hash, [], 0.0, broken[0], "data")
            else:
                runnable.append(check)
        by_timeframe: dict[str, list[ShardFrame]] = {}
        for (_, timeframe), frame in sorted(frames.items()):
            by_timeframe.setdefault(timeframe, []).append(frame)
        for result in self.runner.run(runnable, by_timeframe):
            results[result.trader_id] = result
        self._counters["batches"] += 1
        self._counters["checks"] += len(checks)
        return [results[check.trader_id] for check in checks]

    async def stats(self) -> dict[str, int]:
        return {**self._counters, "filters_cached": len(self.runner.filters), "frames_cached": len(self._frames),
                "evaluations": self.runner.evaluations}

    async def _frame(self, shard: Any, index: int, timeframe: str, version: int) -> ShardFrame:
        key = (index, timeframe, version)
        cached = self._frames.get(key)
        if cached is not None and time.monotonic() - cached[0] < FRAME_MAX_AGE_S:
            self._counters["frame_hits"] += 1
            self._frames.move_to_end(key)
            return cached[1]
        if (pending := self._fetching.get(key)) is not None:
            self._counters["frame_hits"] += 1
            return await asyncio.shield(pending)
        future: asyncio.Future[ShardFrame] = asyncio.get_running_loop().create_future()
        self._fetching[key] = future
        try:
            frame = ShardFrame(await asyncio.wait_for(shard.frame.remote(timeframe), FRAME_TIMEOUT_S))
            self._counters["frame_fetches"] += 1
            self._frames[key] = (time.monotonic(), frame)
            for old in [k for k in self._frames if k[:2] == key[:2] and k[2] < version]:
                del self._frames[old]
            while len(self._frames) > self._frame_cache_size:
                self._frames.popitem(last=False)
            future.set_result(frame)
            return frame
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._fetching[key]


class FilterPool:
    """Worker handles with a count of batches in flight each; `acquire` picks the least busy.

    A worker whose process died for good is replaced through ``factory`` (workers restart on
    their own otherwise: ``max_restarts=-1``).
    """

    def __init__(self, workers: list[Any], factory: Callable[[int], Any] | None = None) -> None:
        if not workers:
            raise ValueError("a filter pool needs at least one worker")
        self.workers = list(workers)
        self.busy = [0] * len(workers)
        self.replaced = 0
        self._factory = factory

    def __len__(self) -> int:
        return len(self.workers)

    def acquire(self) -> tuple[int, Any]:
        index = min(range(len(self.workers)), key=self.busy.__getitem__)
        self.busy[index] += 1
        return index, self.workers[index]

    def release(self, index: int) -> None:
        self.busy[index] = max(0, self.busy[index] - 1)

    @property
    def in_flight(self) -> int:
        return sum(self.busy)

    def replace(self, index: int) -> None:
        """Swap in a new worker for one that died and will not come back."""
        if self._factory is not None:
            self.workers[index] = self._factory(index)
            self.replaced += 1


def create_workers(size: int | None = None, **options: Any) -> list[Any]:
    """Start ``size`` FilterWorkers (default: one per CPU Ray has)."""
    count = size if size is not None else default_pool_size()
    return [FilterWorker.remote(index, **options) for index in range(max(1, count))]  # type: ignore[attr-defined]
