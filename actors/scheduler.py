"""Scheduler actor: queues trader checks (candle closes, interval watchdogs), runs them on the
filter pool, and turns matches into signals (Store + EventHub, and the Executor when trading).

The schedule itself is `aitrader.scheduling.CheckScheduler`; this shell wires handles, runs
three loops (dispatch, interval tick, shard health poll) and rebuilds its traders from storage
on start — every public method starts it lazily, so a restarted actor resumes on its own.
Sending checks to the workers (batches, frames, routes) is `actors.check_dispatch`.

That, the filter compiler and the tables are imported by the scheduler itself (in its
constructor or where they are used), not by this module: Ray imports an actor's module in every
process that receives a handle to it (each stream shard, the supervisor, the API replica).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import ray

from aitrader.scheduling import CheckScheduler, CheckTrader, ClosedCandle, MarketClock, TraderPlan
from aitrader.views import signal_view

if TYPE_CHECKING:
    from actors.check_dispatch import Sending
    from aitrader.checks import CheckResult
    from aitrader.config import Settings
    from aitrader.models import Signal
    from aitrader.trader_records import TraderRecord

log = logging.getLogger("aitrader.scheduler")

CALL_TIMEOUT_S = 30.0


@ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0, max_concurrency=1000)
class Scheduler:
    """Owns every trader's schedule; the only one that starts checks and creates signals.

    ``shards`` is the list of StreamShard handles (their index is the shard id the scheduler
    uses); ``pool_workers`` the FilterWorker handles.  Market time runs at ``clock_speed`` from
    ``clock_anchor_ms`` (the local exchange's ``--speed``/``--anchor-ms``); ``max_batch``,
    ``batches_per_worker`` and ``min_filters_per_batch`` are `CheckDispatcher`'s.
    """

    def __init__(
        self,
        settings: Settings,
        store: Any,
        events: Any,
        pool_workers: list[Any],
        shards: list[Any],
        executor: Any = None,
        clock_speed: float = 1.0,
        clock_anchor_ms: int | None = None,
        *,
        max_batch: int = 256,
        batches_per_worker: int = 1,
        min_filters_per_batch: int = 1,
        max_queue: int = 1000,
        tick_s: float = 0.25,
        health_poll_s: float = 3.0,
        stale_after_s: float = 90.0,
        subscribe_shards: bool = True,
        analyst: Any = None,
    ) -> None:
        from actors.check_dispatch import CheckDispatcher

        self.settings = settings
        self._store, self._events, self._executor = store, events, executor
        self._analyst = analyst  # with ENABLE_AI_ANALYSIS, signals go to the analyst, which decides entries
        self.core = CheckScheduler(MarketClock(clock_speed, clock_anchor_ms), max_queue=max_queue)
        self.dispatch = CheckDispatcher(pool_workers, shards, self._note_error, self.core.clock.wall_s,
                                        max_batch=max_batch, batches_per_worker=batches_per_worker,
                                        min_filters_per_batch=min_filters_per_batch)
        # Plain records from the Store (`Store.traders`): unpickling `Trader` rows would load the
        # tables, which the scheduler needs only once it stores a signal.
        self._traders: dict[str, TraderRecord] = {}
        self._stale_symbols: set[str] = set()
        self._tick_s, self._health_poll_s, self._stale_after_s = tick_s, health_poll_s, stale_after_s
        self._subscribe = subscribe_shards
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._checks_in_flight = 0
        self._tasks: list[asyncio.Task[Any]] = []
        self._started: asyncio.Task[int] | None = None
        self._reported: set[tuple[str, str, str]] = set()
        self._counters: dict[str, Any] = {
            "signals_created": 0, "signals_existing": 0, "signal_errors": 0,
            "error_kinds": {}, "rejected_traders": 0, "last_error": None,
        }

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> int:
        """Load active traders from storage and start the loops (idempotent); returns the trader count."""
        if self._started is None:
            self._started = asyncio.get_running_loop().create_task(self._start())
        return await asyncio.shield(self._started)

    async def set_shards(self, shards: list[Any]) -> int:
        """Use these shard handles from now on (the supervisor replaced a dead shard); frames are
        fetched afresh from them. Returns the number of shards."""
        await self.dispatch.set_shards(shards)
        return len(shards)

    async def set_workers(self, workers: list[Any]) -> int:
        """Run checks on these FilterWorker handles from now on (the supervisor grows the pool once the
        engine has started, and hands a restarted scheduler the current pool). Returns the pool size."""
        self.dispatch.set_workers(workers)
        self._wake.set()
        return len(workers)

    async def ping(self) -> bool:
        await self.start()
        return True

    async def pid(self) -> int:
        import os

        return os.getpid()

    async def pause(self) -> None:
        """Stop taking checks (graceful shutdown); checks in flight finish."""
        await self.start()
        self.core.pause()

    async def resume(self) -> None:
        await self.start()
        self.core.resume()
        self._wake.set()

    async def drain(self, timeout_s: float = 30.0) -> int:
        """Wait up to ``timeout_s`` for checks in flight (and, unless paused, queued) to finish;
        returns how many are still in flight."""
        await self.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._checks_in_flight or (not self.core.paused and self.core.queue_depth and self.dispatch.free_slots()):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._idle.clear()
            self._wake.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), min(remaining, 0.05))
        return self._checks_in_flight

    async def stats(self, reset_latency: bool = False) -> dict[str, Any]:
        await self.start()
        return {
            **self.core.stats(reset_latency),
            **self._counters,
            "error_kinds": dict(self._counters["error_kinds"]),
            "checks_in_flight": self._checks_in_flight,
            "stale_symbols": len(self._stale_symbols),
            **self.dispatch.stats(reset_latency),
        }

    # -- traders ----------------------------------------------------------------------------------

    async def upsert_trader(self, trader_id: str) -> dict[str, Any]:
        """Reload one trader from storage and (re)schedule it, or unschedule it if inactive or gone."""
        from aitrader.storage import NotFound

        await self.start()
        try:
            trader = await asyncio.wait_for(self._store.trader.remote(trader_id), CALL_TIMEOUT_S)
        except NotFound:  # deleted: a RayTaskError from the Store is also a NotFound
            self._forget(trader_id)
            return {"ok": True, "scheduled": False, "error": None}
        return self._schedule(trader)

    async def remove_trader(self, trader_id: str) -> bool:
        await self.start()
        return self._forget(trader_id)

    async def on_candles_closed(
        self, closed: list[ClosedCandle], frames: dict[str, Any] | None = None, noticed_s: float | None = None
    ) -> int:
        """Candle closes from a shard, with references to its frames of the closed intervals
        (interval -> ObjectRef, nested so they stay references) and the wall time it saw them:
        queue the traders watching them; returns how many were queued."""
        await self.start()
        queued = self.core.candles_closed(closed, noticed_s)
        self.dispatch.candles_closed(closed, prefetch=queued > 0, frames=frames)
        if queued:  # send them from here: waking the dispatch loop would cost a turn of the event loop
            self._dispatch_ready()
        return queued

    def _schedule(self, trader: TraderRecord) -> dict[str, Any]:
        from aitrader.filters import FilterError, compile_filter

        if not trader.active:
            self._forget(trader.id)
            return {"ok": True, "scheduled": False, "error": None}
        try:
            compiled = compile_filter(trader.signal_code)
        except FilterError as exc:
            self._forget(trader.id)
            self._counters["rejected_traders"] += 1
            self._log("WARNING", f"trader {trader.name!r} is not scheduled: its filter does not compile at {exc}")
            return {"ok": False, "scheduled": False, "error": str(exc)}
        if trader.id not in self._traders and len(self._traders) >= self.settings.max_active_traders:
            self._counters["rejected_traders"] += 1
            message = (f"trader {trader.name!r} is not scheduled: {self.settings.max_active_traders} traders are "
                       "active already (MAX_ACTIVE_TRADERS); deactivate one or raise the limit")
            self._log("WARNING", message)
            return {"ok": False, "scheduled": False, "error": message}
        self._traders[trader.id] = trader
        self.core.upsert(TraderPlan(trader.id, tuple(trader.symbols), tuple(trader.timeframes),
                                    max(60, trader.check_interval), trader.signal_code, compiled.code_hash))
        unknown = [s for s in trader.symbols if s not in self.dispatch.routes]
        if unknown and self.dispatch.routes:
            self._log("WARNING", f"trader {trader.name!r}: no stream shard carries {', '.join(unknown)}")
        return {"ok": True, "scheduled": True, "error": None}

    def _forget(self, trader_id: str) -> bool:
        self._traders.pop(trader_id, None)
        return self.core.remove(trader_id)

    # -- loops ------------------------------------------------------------------------------------

    async def _start(self) -> int:
        await self.dispatch.refresh_routes()
        traders = await asyncio.wait_for(self._store.traders.remote(self.settings.user_id, active_only=True),
                                         CALL_TIMEOUT_S)
        for trader in traders:
            self._schedule(trader)
        if self._subscribe:
            me = ray.get_runtime_context().current_actor
            for shard in self.dispatch.shards:
                shard.subscribe.remote(scheduler=me)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._dispatch_loop()), loop.create_task(self._tick_loop()),
                       loop.create_task(self._health_loop())]
        # A full collection walks every object the process holds (Ray's and the libraries' too)
        # and stalled checks for ~170 ms; what exists after start-up lives for good, so leave it
        # out of collections. Only the young generations are collected first: a full collection
        # here freed 5 objects for ~0.12 CPU-s.
        gc.collect(1)
        gc.freeze()
        log.info("scheduler started with %d traders, %d shards, %d workers",
                 len(self._traders), len(self.dispatch.shards), len(self.dispatch.pool))
        return len(self._traders)

    async def _dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            self._dispatch_ready()
            if not self._checks_in_flight:
                self._idle.set()

    def _dispatch_ready(self) -> None:
        """Send the runnable queued checks to the free workers now."""
        loop = asyncio.get_running_loop()
        while self.dispatch.free_slots() > 0:
            checks = self.core.take(self.dispatch.capacity())
            if not checks:
                break
            for batch in self.dispatch.plan(checks):  # workers reserved now: the next pass sees them busy
                self._checks_in_flight += len(batch[0])
                loop.create_task(self._run_batch(self.dispatch.send(batch)))

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            try:
                if self.core.tick():
                    self._wake.set()
            except Exception:
                log.exception("interval tick failed")

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self._health_poll_s)
            try:
                await self._poll_health()
            except Exception:
                log.exception("shard health poll failed")

    async def _poll_health(self) -> None:
        stale: set[str] = set()
        replies = await asyncio.gather(
            *(asyncio.wait_for(shard.health.remote(self._stale_after_s), 10.0) for shard in self.dispatch.shards),
            return_exceptions=True,
        )
        for index, health in enumerate(replies):
            if isinstance(health, BaseException):
                stale |= self.dispatch.routes.symbols_of(index)
                continue
            self.dispatch.routes.assign(health.get("symbols", []), index)
            stale |= set(health["symbols"]) if not health.get("connected") else set(health.get("stale_symbols", []))
        newly = stale - self._stale_symbols
        if newly:
            self._log("WARNING", f"market data stale for {len(newly)} symbols; their traders' checks pause")
        self._stale_symbols = stale
        if self.core.set_stale(stale):
            self._wake.set()

    # -- checks -----------------------------------------------------------------------------------

    async def _run_batch(self, sending: Sending) -> None:
        checks = sending.batch[0]
        try:
            results, dispatched_s, replied_s = await self.dispatch.collect(sending)
            if results is None:
                for check in checks:
                    self.core.finish(check, error=True)
            else:
                # Most checks match nothing: finish those at once, and only wait for the Store
                # on the ones with signals to store.
                storing = [self._complete_with_signals(check, result)
                           for check, result in zip(checks, results, strict=True)
                           if not self._complete(check, result)]
                if storing:
                    await asyncio.gather(*storing)
                started_s, elapsed_ms = (results[0].started_s, results[0].elapsed_ms) if results else (0.0, 0.0)
                self.dispatch.stages.record([c.triggered_s for c in checks], dispatched_s, started_s,
                                            elapsed_ms, replied_s, self.core.clock.wall_s())
        finally:
            self._checks_in_flight -= len(checks)
            self._wake.set()
            if not self._checks_in_flight:
                self._idle.set()

    def _complete(self, check: CheckTrader, result: CheckResult) -> bool:
        """Finish a check that needs no signal stored; False (and not finished) if it has some."""
        if result.error is not None:
            self._report_check_error(check, result)
            self.core.finish(check, error=True)
            return True
        if any(o.matched for o in result.outcomes) and check.trader_id in self._traders:
            return False
        self.core.finish(check, {(s, o.timeframe): t for o in result.outcomes for s, t in o.candle_times.items()})
        return True

    async def _complete_with_signals(self, check: CheckTrader, result: CheckResult) -> None:
        seen = {(s, o.timeframe): t for o in result.outcomes for s, t in o.candle_times.items()}
        try:
            trader = self._traders.get(check.trader_id)
            if trader is not None and self.core.plan(check.trader_id) is not None:
                for signal, ok in zip(*await self._store_signals(trader, result), strict=True):
                    if not ok:  # check that candle again on the next trigger
                        seen.pop((signal.symbol, signal.timeframe), None)
        finally:
            self.core.finish(check, seen)

    async def _store_signals(self, trader: TraderRecord, result: CheckResult) -> tuple[list[Signal], list[bool]]:
        from aitrader.signals import signals_from_result

        signals = signals_from_result(result, trader.user_id)
        if not signals:
            return [], []
        replies = await asyncio.gather(*(self._call("create_signal", s) for s in signals), return_exceptions=True)
        stored_ok: list[bool] = []
        for reply in replies:
            if isinstance(reply, BaseException):
                self._counters["signal_errors"] += 1
                self._counters["last_error"] = f"storing a signal failed: {reply}"
                stored_ok.append(False)
                continue
            stored_ok.append(True)
            stored, created = reply
            if not created:
                self._counters["signals_existing"] += 1
                continue
            self._counters["signals_created"] += 1
            view = signal_view(stored, trader.name)
            if self._events is not None:
                self._events.publish.remote("signals", "signal_created", view)
            if self._analyst is not None:
                self._analyst.submit.remote(view, trader.view)
            elif self._executor is not None and self.settings.enable_auto_trading and trader.auto_trade:
                self._executor.open_from_signal.remote(view, trader.view)
        return signals, stored_ok

    def _report_check_error(self, check: CheckTrader, result: CheckResult) -> None:
        kind = result.error_kind or "runtime"
        self._note_error(kind, f"trader {check.trader_id}: {result.error}")
        if (check.trader_id, check.code_hash, kind) not in self._reported:
            self._reported.add((check.trader_id, check.code_hash, kind))
            trader = self._traders.get(check.trader_id)
            name = trader.name if trader is not None else check.trader_id
            self._log("WARNING", f"trader {name!r}: {result.error}")

    def _note_error(self, kind: str, message: str) -> None:
        kinds = self._counters["error_kinds"]
        kinds[kind] = kinds.get(kind, 0) + 1
        self._counters["last_error"] = message

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.wait_for(self._store.call.remote(method, *args, **kwargs), CALL_TIMEOUT_S)

    def _log(self, level: str, message: str) -> None:
        log.log(logging.getLevelName(level), message)
        if self._events is not None:
            data = {"time": datetime.now(UTC).isoformat(), "level": level, "logger": "aitrader.scheduler",
                    "message": message}
            self._events.publish.remote("logs", "log", data)
