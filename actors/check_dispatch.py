"""Sending checks to the filter workers: batches, frames, routes, and worker-call failures.

Not an actor: the Scheduler actor holds one `CheckDispatcher` and keeps the schedule and the
signals; this part knows the workers and the shards.  Dispatch follows `aitrader.batching`:
each dispatch takes every runnable queued check, sends each worker one batch with the traders
of a filter kept together, and passes each shard frame's reference to every batch that reads it
as a top-level argument (Ray hands the worker the frame once it is ready, with no borrowed
reference to resolve: passed nested, each batch paid an extra round trip to this process per
frame).  A shard puts its frame in the object store as it reports candle closes and sends the
reference with the notice, so the checks those closes trigger go out at once; a frame no
notice brought (another timeframe, an interval check, a notice without frames) is requested
from its shard once per candle close.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import ray

from actors.filter_pool import FilterPool, FilterWorker
from aitrader.batching import FrameRefs, plan_batches
from aitrader.checks import CheckResult, decode_results, encode_batch
from aitrader.dispatch import PushedFrames, ShardRoutes, StageTimes
from aitrader.scheduling import CheckTrader, ClosedCandle

BATCH_TIMEOUT_S = 120.0

#: A batch ready to send: its checks, the worker's pool index and handle.
Batch = tuple[list[CheckTrader], int, Any]


@dataclass
class Sending:
    """A batch on its way: the reply's reference, or the error sending it raised."""

    batch: Batch
    sent_s: float
    keys: list[tuple[int, str]] = field(default_factory=list)
    reply: Any = None
    error: Exception | None = None


class CheckDispatcher:
    """Batches checks over the worker pool and fetches their frames from the shards.

    A worker gets at most ``max_batch`` checks per call and ``batches_per_worker`` calls at a
    time (one by default: checks that arrive while a worker is busy wait and go in its next,
    larger batch, instead of splitting into many small batches that each pay the per-batch
    costs again), and a dispatch is spread over workers only with ``min_filters_per_batch``
    distinct filters per batch (1: over every free worker).  ``note_error(kind, message)`` hears about failed worker calls; ``wall`` is the
    clock of the checks' trigger times.
    """

    def __init__(self, workers: list[Any], shards: list[Any], note_error: Callable[[str, str], None],
                 wall: Callable[[], float], *, max_batch: int = 256, batches_per_worker: int = 1,
                 min_filters_per_batch: int = 1) -> None:
        self.pool = FilterPool(list(workers), factory=lambda index: FilterWorker.remote(index))  # type: ignore[attr-defined]
        self.shards = list(shards)
        self.routes = ShardRoutes()
        self.stages = StageTimes()
        self._versions: dict[int, int] = dict.fromkeys(range(len(self.shards)), 0)
        self._frames = FrameRefs(lambda index, interval: self.shards[index].frame.remote(interval))
        self._pushed: PushedFrames[Any] = PushedFrames()
        self._note_error, self._wall = note_error, wall
        self._max_batch, self._batches_per_worker = max_batch, batches_per_worker
        self._min_filters_per_batch = max(1, min_filters_per_batch)
        self.batches = 0

    def set_workers(self, workers: list[Any]) -> None:
        """Spread batches over these filter workers from now on (`FilterPool.set_workers`)."""
        self.pool.set_workers(workers)

    # -- shards -----------------------------------------------------------------------------------

    async def set_shards(self, shards: list[Any]) -> None:
        """Use these shard handles from now on; every frame is fetched afresh."""
        self.shards = list(shards)
        for index in range(len(self.shards)):
            self._versions[index] = self._versions.get(index, 0) + 1
        await self.refresh_routes()

    async def refresh_routes(self) -> None:
        """Ask every shard which symbols it carries."""
        replies = await asyncio.gather(
            *(asyncio.wait_for(shard.symbols.remote(), 10.0) for shard in self.shards), return_exceptions=True
        )
        for index, symbols in enumerate(replies):
            if not isinstance(symbols, BaseException):
                self.routes.assign(symbols, index)

    def candles_closed(self, closed: Iterable[ClosedCandle], prefetch: bool, frames: dict[str, Any] | None = None) -> None:
        """New candles make the shards' frames new.  ``frames`` (interval -> reference) came with
        the notice from the shard of these closes; with ``prefetch``, ask for the others now,
        while the checks they trigger are being dispatched."""
        keys = {(shard, interval) for symbol, interval, _ in closed
                if (shard := self.routes.shard_of(symbol)) is not None}
        shards = {shard for shard, _ in keys}
        for shard in shards:
            self._versions[shard] += 1
        if frames and len(shards) == 1:  # one notice comes from one shard
            (shard,) = shards
            for interval, ref in frames.items():
                self._pushed.offer(shard, interval, self._versions[shard], ref)
        if prefetch:
            for shard, interval in keys:
                self._frame(shard, interval)

    # -- batches ----------------------------------------------------------------------------------

    def free_slots(self) -> int:
        """How many more batches the workers take now."""
        return len(self.pool) * self._batches_per_worker - self.pool.in_flight

    def capacity(self) -> int:
        """How many checks to take from the queue for the free slots."""
        return self._max_batch * self.free_slots()

    def plan(self, checks: list[CheckTrader]) -> list[Batch]:
        """Split ``checks`` into batches and reserve a worker for each: over every free worker,
        but with at least ``min_filters_per_batch`` filters in each (a batch has a fixed cost,
        a Ray call to a worker and back; few filters evaluate faster in one batch than split)."""
        spread = max(1, len({c.code_hash for c in checks}) // self._min_filters_per_batch)
        batches = plan_batches(checks, min(self.free_slots(), len(self.pool), spread), self._max_batch)
        return [(batch, *self.pool.acquire()) for batch in batches]

    def send(self, batch: Batch) -> Sending:
        """Send one batch now (a call that cannot be made is reported by `collect`)."""
        checks, _, worker = batch
        self.batches += 1
        sending = Sending(batch, self._wall())
        try:
            routes = {c.trader_id: self.routes.route(c.symbols) for c in checks}
            sending.keys = sorted({(i, tf) for c in checks for i in routes[c.trader_id] for tf in c.timeframes})
            refs = [self._frame(i, tf) for i, tf in sending.keys]
            sending.reply = worker.check.remote(
                encode_batch(checks), routes, sending.keys, [ref.hex() for ref in refs], *refs
            )
        except Exception as exc:
            sending.error = exc
        return sending

    async def collect(self, sending: Sending) -> tuple[list[CheckResult] | None, float, float]:
        """A sent batch's results (None when the call failed), and the wall times (s) of sending
        it and of the reply."""
        _, index, worker = sending.batch
        try:
            if sending.error is not None:
                raise sending.error
            results = decode_results(await asyncio.wait_for(sending.reply, BATCH_TIMEOUT_S))
            return results, sending.sent_s, self._wall()
        except ray.exceptions.RayActorError as exc:
            self._forget_frames(sending.keys)
            if exc.actor_id not in (None, worker._actor_id.hex()):  # a shard died before sending its frame
                self._note_error("data", f"market data of a stream shard is unavailable: {exc}")
            elif isinstance(exc, ray.exceptions.ActorDiedError):
                self.pool.replace(index)
                self._note_error("worker", f"filter worker {index} died and was replaced: {exc}")
            else:
                self._note_error("worker", f"filter worker {index} is unavailable: {exc}")
        except Exception as exc:  # the worker failed, or a shard's frame did: ask the shards again
            self._forget_frames(sending.keys)
            self._note_error("worker", f"filter worker {index} failed a batch: {type(exc).__name__}: {exc}")
        finally:
            self.pool.release(index)
        return None, sending.sent_s, sending.sent_s

    async def run(self, batch: Batch) -> tuple[list[CheckResult] | None, float, float]:
        """Send one batch and wait for it: `send`, then `collect`."""
        return await self.collect(self.send(batch))

    def stats(self, reset: bool = False) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "workers": len(self.pool),
            "workers_replaced": self.pool.replaced,
            "shards": len(self.shards),
            "frame_requests": self._frames.requests,
            "frame_reuses": self._frames.reuses,
            "frames_pushed": self._pushed.pushed,
            "pushed_frame_uses": self._pushed.used,
            **self.stages.summary(reset),
        }

    def _frame(self, shard: int, interval: str) -> Any:
        """The current frame reference of ``shard`` and ``interval``: pushed, or requested."""
        ref = self._pushed.get(shard, interval, self._versions[shard])
        return ref if ref is not None else self._frames.get(shard, interval, self._versions[shard])

    def _forget_frames(self, keys: list[tuple[int, str]]) -> None:
        for shard, interval in keys:  # the next batch asks the shards again
            self._pushed.forget(shard, interval)
            self._frames.forget(shard, interval)
