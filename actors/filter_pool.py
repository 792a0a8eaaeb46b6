"""FilterWorker actors and the FilterPool that spreads check batches over them.

A worker holds a `CheckRunner` (compiled-filter LRU by code hash, each filter evaluated once
per shard frame).  It does not fetch frames itself: each shard puts its frame in the object
store with its candle-close notice (or, for a frame no notice brought, the scheduler requests
it once), and the scheduler passes the object reference, as a top-level argument, to every
batch that reads it, so all workers share one frame and Ray hands it to them once it is ready
(numpy arrays are read from the object store without copying).  A worker keeps the last few
frames it was given, by object id, with the filter outcomes already computed on them.  Checks
come in and results go back as msgpack bytes (`aitrader.checks.encode_batch`).

A worker is a plain (threaded) actor running one call at a time: Ray runs its methods on the
thread that executes tasks, where an async actor hands every call over to its event-loop
thread and waits for it there, one more thread to wake per batch.  The filter budgets are
checked between operations (`aitrader.filters`), not by signals, so they hold on any thread.

The evaluation core (`aitrader.checks`: numpy, the filter compiler) is imported by the worker
itself, not by this module: Ray imports an actor's module in every process that receives a
handle to it (the scheduler, the supervisor, the API replica), and those never evaluate.
"""

from __future__ import annotations

import gc
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ray

if TYPE_CHECKING:
    from aitrader.checks import ShardFrame


def default_pool_size() -> int:
    """One worker per CPU Ray has, at least one."""
    return max(1, int(ray.available_resources().get("CPU", 1)))


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class FilterWorker:
    """Evaluates batches of trader checks on the shard frames passed in with them."""

    def __init__(self, worker_id: int = 0, cache_size: int = 256, time_budget_s: float = 2.0,
                 frame_cache_size: int = 16) -> None:
        from aitrader.checks import CheckRunner

        self.worker_id = worker_id
        gc.freeze()  # what start-up built lives for good: keep it out of full collections
        self.runner = CheckRunner(cache_size, time_budget_s)
        self._frames: OrderedDict[str, ShardFrame] = OrderedDict()
        self._frame_cache_size = frame_cache_size
        self._counters = {"batches": 0, "checks": 0, "frame_fetches": 0, "frame_hits": 0}

    def ping(self) -> int:
        return self.worker_id

    def pid(self) -> int:
        import os

        return os.getpid()

    def check(
        self, batch: bytes, routes: dict[str, list[int]], keys: list[tuple[int, str]],
        frame_ids: list[str], *frames: Any,
    ) -> bytes:
        """Run the checks of ``batch`` (`encode_batch`), returning their results the same way;
        ``frames[n]`` is the frame of (shard index, timeframe) ``keys[n]``, ``frame_ids[n]``
        its object id, and ``routes`` maps each trader to the shard indexes holding its symbols."""
        from aitrader.checks import CheckResult, decode_checks, encode_batch

        started_s = time.time()  # wall time, as the scheduler's trigger times
        checks = decode_checks(batch)
        resolved: dict[tuple[int, str], ShardFrame] = {}
        for key, frame_id, frame in zip(keys, frame_ids, frames, strict=True):
            resolved[key] = self._frame(frame_id, frame)
        runnable, results = [], {}
        for check in checks:
            needed = [(i, tf) for i in routes.get(check.trader_id, []) for tf in check.timeframes]
            broken = [f"no frame of shard {key[0]} was sent" for key in needed if key not in resolved]
            if broken:
                results[check.trader_id] = CheckResult(check.trader_id, check.code_hash, [], 0.0, broken[0], "data")
            else:
                runnable.append(check)
        by_timeframe: dict[str, list[ShardFrame]] = {}
        for (_, timeframe), shard_frame in sorted(resolved.items()):
            by_timeframe.setdefault(timeframe, []).append(shard_frame)
        for result in self.runner.run(runnable, by_timeframe, started_s):
            results[result.trader_id] = result
        self._counters["batches"] += 1
        self._counters["checks"] += len(checks)
        return encode_batch([results[check.trader_id] for check in checks])

    def stats(self) -> dict[str, int]:
        return {**self._counters, "filters_cached": len(self.runner.filters), "frames_cached": len(self._frames),
                "evaluations": self.runner.evaluations}

    def _frame(self, frame_id: str, frame: Any) -> ShardFrame:
        from aitrader.checks import ShardFrame

        cached = self._frames.get(frame_id)
        if cached is not None:
            self._counters["frame_hits"] += 1
            self._frames.move_to_end(frame_id)
            return cached
        shard_frame = ShardFrame(frame)
        self._counters["frame_fetches"] += 1
        self._frames[frame_id] = shard_frame
        while len(self._frames) > self._frame_cache_size:
            self._frames.popitem(last=False)
        return shard_frame


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
        if index < len(self.busy):
            self.busy[index] = max(0, self.busy[index] - 1)

    def set_workers(self, workers: list[Any]) -> None:
        """Use these workers from now on (the pool grew once the engine started); a worker that
        keeps its index keeps its count of batches in flight."""
        if not workers:
            raise ValueError("a filter pool needs at least one worker")
        self.busy = [self.busy[i] if i < len(self.busy) else 0 for i in range(len(workers))]
        self.workers = list(workers)

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
