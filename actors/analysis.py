"""SignalAnalyst actor: analyses signals (confidence, reasoning, decision) and, with auto-trading
on, hands `enter` decisions at or above AI_CONFIDENCE_THRESHOLD to the Executor.

A thin shell over `aitrader.analysis.SignalReview`: it wires the Store, EventHub, StreamShards and
Executor handles into the review's ports. The LLM analyzer is used when ENABLE_AI_ANALYSIS is on
and LLM_BASE_URL, LLM_MODEL and LLM_API_KEY are all set; otherwise the built-in rule analyzer.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import numpy as np
import ray

from aitrader.analysis import AnalysisPool, LLMAnalyzer, RuleAnalyzer, SignalReview, TokenBucket
from aitrader.analysis.types import Analyzer
from aitrader.config import Settings
from aitrader.models import SignalStatus
from aitrader.views import signal_view, trader_view

log = logging.getLogger("aitrader.analysis")
_CALL_TIMEOUT_S = 30.0
_RECOVER_LIMIT = 1000


def make_analyzer(settings: Settings) -> tuple[Analyzer, TokenBucket | None]:
    """The analyzer the settings ask for, with the LLM's rate limit (None for the built-in one)."""
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key is not None else ""
    if settings.enable_ai_analysis and settings.llm_base_url and settings.llm_model and key:
        analyzer = LLMAnalyzer(settings.llm_base_url, settings.llm_model, key, timeout_s=settings.llm_timeout_s)
        return analyzer, TokenBucket(settings.llm_rate_limit_per_min)
    return RuleAnalyzer(), None


@ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0, max_concurrency=100)
class SignalAnalyst:
    """`submit` a signal (fire-and-forget); `stats` for health. Re-queues unfinished signals on start."""

    def __init__(self, settings: Settings, store: Any, events: Any, shards: list[Any], executor: Any = None,
                 queue_size: int = 100) -> None:
        self._settings = settings
        self._store = store
        self._events = events
        self._shards = list(shards)
        self._executor = executor
        analyzer, bucket = make_analyzer(settings)
        self._pool = AnalysisPool(analyzer, rate_limit=bucket, max_concurrent=10, queue_size=queue_size)
        self._review = SignalReview(
            self._pool, update_signal=self._update_signal, publish=self._publish, fetch_candles=self._candles,
            open_position=self._open_position if executor is not None else None,
            threshold=settings.ai_confidence_threshold, auto_trading=settings.enable_auto_trading,
        )
        self._in_flight: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._started = False
        self._recovered = 0

    async def start(self) -> int:
        """Re-queue signals a crash left pending or analyzing (idempotent); return how many."""
        if self._started:
            return 0
        self._started = True
        for status in (SignalStatus.ANALYZING, SignalStatus.PENDING):
            try:
                signals = await asyncio.wait_for(self._store.call.remote(
                    "list_signals", user_id=self._settings.user_id, status=status, limit=_RECOVER_LIMIT),
                    _CALL_TIMEOUT_S)
            except Exception:
                log.exception("could not list %s signals to re-queue", status)
                continue
            for signal in signals:
                try:
                    trader = await asyncio.wait_for(self._store.call.remote("get_trader", signal.trader_id),
                                                    _CALL_TIMEOUT_S)
                except Exception:
                    log.warning("signal %s has no readable trader; left %s", signal.id, status)
                    continue
                if self._spawn(signal_view(signal, trader.name), trader_view(trader)):
                    self._recovered += 1
        return self._recovered

    async def submit(self, signal: dict[str, Any], trader: dict[str, Any]) -> None:
        """Analyse ``signal`` (a signal view) for ``trader`` (a trader view) in the background."""
        await self.start()
        self._spawn(signal, trader)

    async def stats(self) -> dict[str, Any]:
        return {**self._pool.stats(), **self._review.outcomes, "recovered": self._recovered,
                "analyzer": self._pool.analyzer.name, "reviewing": len(self._in_flight)}

    async def ping(self) -> bool:
        return True

    async def pid(self) -> int:
        return os.getpid()

    # -- wiring ---------------------------------------------------------------------------------

    def _spawn(self, signal: dict[str, Any], trader: dict[str, Any]) -> bool:
        if signal["id"] in self._in_flight:
            return False
        self._in_flight.add(signal["id"])
        task = asyncio.get_running_loop().create_task(self._run(signal, trader))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _run(self, signal: dict[str, Any], trader: dict[str, Any]) -> None:
        try:
            await self._review.review(signal, trader)
        except Exception:
            log.exception("review of signal %s failed; it stays as it was", signal.get("id"))
        finally:
            self._in_flight.discard(signal["id"])

    async def _update_signal(self, signal_id: str, changes: dict[str, Any], meta: dict[str, Any]) -> None:
        if meta:
            stored = await asyncio.wait_for(self._store.call.remote("get_signal", signal_id), _CALL_TIMEOUT_S)
            changes = {**changes, "meta": {**(stored.meta or {}), **meta}}
        await asyncio.wait_for(self._store.call.remote("update_signal", signal_id, **changes), _CALL_TIMEOUT_S)

    async def _publish(self, channel: str, type: str, data: dict[str, Any]) -> None:
        self._events.publish.remote(channel, type, data)

    async def _candles(self, symbol: str, timeframe: str) -> dict[str, Any] | None:
        refs = [shard.frame.remote(timeframe, [symbol]) for shard in self._shards]
        for ref in refs:
            try:
                frame = await asyncio.wait_for(ref, _CALL_TIMEOUT_S)
            except Exception:
                continue
            if symbol in frame.symbols:
                row = frame.symbols.index(symbol)
                return {name: np.array(getattr(frame, name)[row], dtype=np.float64)
                        for name in ("open", "high", "low", "close", "volume")}
        return None

    async def _open_position(self, signal: dict[str, Any], trader: dict[str, Any]) -> dict[str, Any] | None:
        result: dict[str, Any] | None = await asyncio.wait_for(
            self._executor.open_from_signal.remote(signal, trader), _CALL_TIMEOUT_S)
        return result
