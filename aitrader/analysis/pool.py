"""`AnalysisPool`: runs analyses with a concurrency bound, a drop-oldest queue and a rate limit.

At most ``max_concurrent`` analyses run at once; requests beyond that wait in a queue of
``queue_size``, and when it is full the OLDEST waiting request is dropped (its future resolves
to a skip with ``dropped=True`` and the reasoning "dropped: analysis queue full"). The primary
analyzer (a language model) is rate limited by a token bucket: a request that finds no token
is analysed by the built-in analyzer at once, saying so, instead of waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aitrader.analysis.llm import fallen_back
from aitrader.analysis.rules import RuleAnalyzer
from aitrader.analysis.types import Analysis, AnalysisRequest, Analyzer, Decision

log = logging.getLogger("aitrader.analysis")

DROPPED_REASON = "dropped: analysis queue full"


class TokenBucket:
    """``rate_per_min`` tokens a minute, bursting up to ``capacity`` (default: one minute's worth)."""

    def __init__(self, rate_per_min: float, capacity: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_min <= 0:
            raise ValueError(f"rate_per_min must be positive, got {rate_per_min}")
        self.rate_per_s = rate_per_min / 60.0
        self.capacity = float(capacity if capacity is not None else rate_per_min)
        self.rate_per_min = rate_per_min
        self._clock = clock
        self._tokens = self.capacity
        self._updated = clock()

    def try_acquire(self) -> bool:
        """Take one token if there is one; never waits."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate_per_s)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class AnalysisPool:
    """Bounded, rate-limited execution of analyses; `submit` returns a future of the `Analysis`."""

    def __init__(
        self,
        analyzer: Analyzer,
        *,
        fallback: RuleAnalyzer | None = None,
        rate_limit: TokenBucket | None = None,
        max_concurrent: int = 10,
        queue_size: int = 100,
    ) -> None:
        if max_concurrent < 1 or queue_size < 1:
            raise ValueError("max_concurrent and queue_size must be at least 1")
        self.analyzer = analyzer
        self.fallback = fallback or RuleAnalyzer()
        self.rate_limit = rate_limit
        self.max_concurrent = max_concurrent
        self.queue_size = queue_size
        self._waiting: deque[tuple[AnalysisRequest, asyncio.Future[Analysis]]] = deque()
        self._slots = asyncio.Semaphore(max_concurrent)
        self._wake = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.counters = {"submitted": 0, "completed": 0, "dropped": 0, "rate_limited": 0, "failed": 0}

    @property
    def queued(self) -> int:
        return len(self._waiting)

    @property
    def in_flight(self) -> int:
        return len(self._running)

    def stats(self) -> dict[str, Any]:
        return {**self.counters, "queued": self.queued, "in_flight": self.in_flight,
                "max_concurrent": self.max_concurrent, "queue_size": self.queue_size}

    def submit(self, request: AnalysisRequest) -> asyncio.Future[Analysis]:
        """Queue one request (dropping the oldest waiting one if the queue is full)."""
        loop = asyncio.get_running_loop()
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = loop.create_task(self._dispatch())
        future: asyncio.Future[Analysis] = loop.create_future()
        self.counters["submitted"] += 1
        if len(self._waiting) >= self.queue_size:
            old_request, old_future = self._waiting.popleft()
            self.counters["dropped"] += 1
            log.warning("analysis queue full (%d): dropped %s %s", self.queue_size, old_request.symbol,
                        old_request.signal_id)
            if not old_future.done():
                old_future.set_result(dropped(self.analyzer.name))
        self._waiting.append((request, future))
        self._wake.set()
        return future

    async def close(self) -> None:
        """Stop dispatching and cancel running analyses."""
        tasks = [t for t in [self._dispatcher, *self._running] if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        while self._waiting:
            _, future = self._waiting.popleft()
            future.cancel()

    async def _dispatch(self) -> None:
        while True:
            while not self._waiting:
                self._wake.clear()
                await self._wake.wait()
            await self._slots.acquire()
            if not self._waiting:  # dropped requests cannot empty it, but stay safe
                self._slots.release()
                continue
            request, future = self._waiting.popleft()
            task = asyncio.get_running_loop().create_task(self._run(request, future))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, request: AnalysisRequest, future: asyncio.Future[Analysis]) -> None:
        try:
            analysis = await self._analyse(request)
            self.counters["completed"] += 1
            if not future.done():
                future.set_result(analysis)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as error:  # an analyzer bug must not leave the signal hanging
            self.counters["failed"] += 1
            log.exception("analysis of %s failed", request.symbol)
            built_in = await self.fallback.analyze(request)
            if not future.done():
                future.set_result(fallen_back(built_in, f"analysis failed ({type(error).__name__})"))
        finally:
            self._slots.release()

    async def _analyse(self, request: AnalysisRequest) -> Analysis:
        if self.analyzer is self.fallback or self.rate_limit is None or self.rate_limit.try_acquire():
            return await self.analyzer.analyze(request)
        self.counters["rate_limited"] += 1
        built_in = await self.fallback.analyze(request)
        return fallen_back(built_in, f"LLM rate limit reached ({self.rate_limit.rate_per_min:g}/min)")


def dropped(analyzer: str) -> Analysis:
    """The outcome of a request dropped from a full queue."""
    return Analysis(Decision.SKIP, 0, DROPPED_REASON, None, None, analyzer, dropped=True)
