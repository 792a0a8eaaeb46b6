"""Supervisor actor: builds the named actor graph, watches it, rebuilds what dies, keeps /status."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import ray
from ray.exceptions import ActorUnschedulableError, GetTimeoutError, RayActorError

from actors import NAMESPACE
from actors.graph import ActorSpec, EngineGraph, build_graph, export_actor_classes, load_actor_modules
from aitrader.config import Settings
from aitrader.engine_state import EXAMPLE_TRADER, build_status, feed_state

log = logging.getLogger("aitrader.supervisor")

WATCH_INTERVAL_S = 1.0
STATUS_INTERVAL_S = 2.0
HEARTBEAT_INTERVAL_S = 10.0
PING_TIMEOUT_S = 5.0
#: How long `Supervisor.handle` waits for the graph to be built.
HANDLE_WAIT_S = 60.0
#: The filter pool grows to full size `GROW_POOL_SETTLE_S` after the API was first told the engine is up (it
#: then loads its state and starts answering ``/health``), or `GROW_POOL_AFTER_S` after the engine runs if no
#: API asks.
GROW_POOL_SETTLE_S = 5.0
GROW_POOL_AFTER_S = 15.0


@ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0, max_concurrency=100)
class Supervisor:
    """Owns the engine: the actor graph, restarts, engine state and graceful shutdown."""

    def __init__(self, settings: Settings, feed: str, stream_url: str, api_url: str,
                 feed_note: str | None = None, clock_speed: float = 1.0, clock_anchor_ms: int | None = None) -> None:
        self.settings = settings
        self.feed = feed
        self.feed_note = feed_note
        self.stream_url, self.api_url = stream_url, api_url
        self.clock_speed, self.clock_anchor_ms = clock_speed, clock_anchor_ms
        self.graph: EngineGraph | None = None
        self.running = False
        self.restarts = 0
        self.errors = 0
        self._pids: dict[str, int] = {}
        self._status: dict[str, Any] = {}
        self._markets: list[dict[str, Any]] = []
        self._watcher: asyncio.Task[None] | None = None
        self._wired: asyncio.Event | None = None
        self._told_up: asyncio.Event | None = None
        self._grower: asyncio.Task[None] | None = None
        # Held while the pool grows by an actor, and while shutdown kills the graph's actors: a worker is
        # either created before the kill (and killed) or not at all.
        self._creating = threading.Lock()
        self._unwired: set[str] = set()
        # The actor classes load, and go to Ray, while the supervisor waits to be asked to start (`start`).
        threading.Thread(target=_prepare_graph, name="prepare-graph", daemon=True).start()

    async def ping(self) -> bool:
        return True

    async def pid(self) -> int:
        import os

        return os.getpid()

    async def start(self) -> AsyncIterator[str]:
        """Build and start the graph, yielding one progress line per step."""
        if self.graph is not None and self.running:
            yield "engine already running"
            return
        # In a thread: creating the actors (and any import not yet done) takes seconds on a busy
        # machine, and meanwhile the API asks this actor what is still starting.
        self.graph = await asyncio.to_thread(build_graph, self.settings, self.stream_url, self.api_url,
                                             self.clock_speed, self.clock_anchor_ms)
        self._unwired = {spec.name for spec in self.graph.specs()}
        # The handles exist from here on (``handles()`` answers), so the caller can deploy the API
        # while the actors' processes are still starting.
        yield f"created {len(self.graph.specs())} actors (store, event hub, stream shards, filter workers, " \
              "scheduler, executor, monitor); waiting for their processes to start"
        # Each actor is wired as soon as its own process is up: a shard starts streaming and
        # backfilling while the scheduler's process is still importing.
        await self._start_all()
        self._wired_event().set()
        yield f"actors started and wired; {len(self.graph.shards)} stream shard(s) streaming from {self.stream_url}"
        seeded = await self._seed_example_trader()
        if seeded:
            yield f"seeded an example trader ({EXAMPLE_TRADER['name']}) on an empty database"
        await self._sync_symbols()
        async for line in self._wait_for_backfill():
            yield line
        self.running = True
        await self._refresh_status()
        self._watcher = asyncio.get_running_loop().create_task(self._watch())
        self._grower = asyncio.get_running_loop().create_task(self._grow_pool())
        yield "engine running"

    async def wait_wired(self, timeout_s: float = 300.0) -> bool:
        """Whether every actor of the graph is up and wired, waiting up to ``timeout_s`` for it.

        A healthy engine has its actors created and connected, even if candles are still backfilling.
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wired_event().wait(), timeout_s)
        return self._wired_event().is_set()

    async def starting(self, wait_s: float = 0.0) -> list[str]:
        """What is still starting: the actors not yet up and wired, empty once all of them are.

        Waits up to ``wait_s`` for it to be empty. The API's ``/health`` answers 503 naming these
        until the list is empty, so the API can be deployed while the actors start.
        """
        if wait_s > 0:
            await self.wait_wired(wait_s)
        if self._wired_event().is_set():
            self._told_up_event().set()
            return []
        if self.graph is None:
            return ["the actor graph"]
        return sorted(self._unwired) or ["the wiring of the actors"]

    def _wired_event(self) -> asyncio.Event:
        # Created on first use, inside the actor's event loop.
        if self._wired is None:
            self._wired = asyncio.Event()
        return self._wired

    def _told_up_event(self) -> asyncio.Event:
        if self._told_up is None:
            self._told_up = asyncio.Event()
        return self._told_up

    async def status(self) -> dict[str, Any]:
        return self._status or {"running": self.running, "feed": self.feed, "feed_note": self.feed_note}

    async def markets(self) -> list[dict[str, Any]]:
        return self._markets

    async def handles(self) -> dict[str, Any]:
        """The named handles, for tests."""
        assert self.graph is not None, "the engine has not started"
        return self.graph.named()

    async def handle(self, name: str, wait_s: float = HANDLE_WAIT_S) -> Any:
        """The current handle of one actor of the graph (``store``, ``events``, ``executor`` ...).

        The API asks for each handle the first time it needs it, so it can be deployed before the
        graph exists (it waits up to ``wait_s`` for it), and a process only loads the actor classes
        it talks to (unpickling a handle imports its actor's module).
        """
        deadline = time.monotonic() + wait_s
        while self.graph is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.graph is None:
            raise RuntimeError(f"the engine's actors do not exist yet (asked for {name!r})")
        named = self.graph.named()
        if named.get(name) is None:
            raise KeyError(f"the engine has no actor {name!r}; it has {sorted(k for k, v in named.items() if v)}")
        return named[name]

    async def shutdown(self, timeout_s: float = 25.0) -> dict[str, Any]:
        """Stop taking checks, let in-flight work finish, flush the store, stop the actors."""
        deadline = time.monotonic() + timeout_s
        self.running = False
        for task in (self._watcher, self._grower):
            if task is not None:
                task.cancel()
        report: dict[str, Any] = {}
        if self.graph is None:
            return report
        graph = self.graph
        with contextlib.suppress(Exception):
            await asyncio.wait_for(graph.scheduler.pause.remote(), 5)
        with contextlib.suppress(Exception):
            report["in_flight_checks"] = await asyncio.wait_for(
                graph.scheduler.drain.remote(max(1.0, (deadline - time.monotonic()) / 3)), 10
            )
        for shard in graph.shards:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(shard.stop.remote(), 5)
        with contextlib.suppress(Exception):
            report["unflushed_writes"] = await asyncio.wait_for(graph.store.shutdown.remote(), 10)
        if graph.exchange is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(graph.exchange.stop.remote(), 5)
        with self._creating:
            handles = graph.all_handles()
        for handle in handles:
            with contextlib.suppress(Exception):
                ray.kill(handle, no_restart=True)
        self.graph = None
        self._wired_event().clear()
        return report

    # -- wiring and watching --------------------------------------------------------------------

    async def _start_all(self) -> None:
        """Wait for every actor's process and wire each one the moment it is up."""
        assert self.graph is not None

        async def start(spec: ActorSpec) -> None:
            self._pids[spec.name] = await asyncio.wait_for(spec.handle.pid.remote(), 300)
            await self._wire(spec, stream=False)
            self._unwired.discard(spec.name)

        await asyncio.gather(*(start(spec) for spec in self.graph.specs()))
        # The shards stream (and backfill) once everything is wired: before, that CPU only slowed
        # the start of the actors still coming up.
        await asyncio.gather(*(shard.start.remote() for shard in self.graph.shards))

    async def _wire(self, spec: ActorSpec, stream: bool = True) -> None:
        """(Re)connect an actor to its peers after it started or restarted; a shard starts
        streaming unless ``stream`` is False (the first start, `_start_all`)."""
        assert self.graph is not None
        graph = self.graph
        if spec.kind == "shard":
            # A restarted shard starts with the symbols it was created with: give back the ones
            # traders added since (the graph still counts them as streamed by this shard).
            await spec.handle.add_symbols.remote(graph.assigned_symbols(spec.handle))
            await spec.handle.subscribe.remote(scheduler=graph.scheduler, price_subscribers=graph.price_subscribers())
            if stream:
                await spec.handle.start.remote()
        elif spec.kind == "scheduler":
            # A restarted scheduler was built with the shard and worker handles of its first creation
            # (the filter pool grows after the engine starts).
            await spec.handle.set_shards.remote(list(graph.shards))
            await spec.handle.set_workers.remote(list(graph.workers))
            await spec.handle.start.remote()
        elif spec.kind == "analyst":
            await spec.handle.start.remote()
        elif spec.kind == "executor" and graph.monitor is not None:
            # The executor finds the monitor by name in the *job's* namespace, which is not
            # ``aitrader`` when the driver runs in another one (tests): hand it the handle.
            await spec.handle.set_monitor.remote(graph.monitor)

    async def _grow_pool(self) -> None:
        """Create the rest of the filter pool (`actors.graph.START_FILTER_WORKERS`) and hand it to the scheduler.

        Once start-up is over: `GROW_POOL_SETTLE_S` after the API was told the engine is up (`starting`), or
        `GROW_POOL_AFTER_S` without anyone asking, so on a small machine those processes do not slow the
        start of the API. Until then one worker runs every check.
        """
        try:
            await asyncio.wait_for(self._told_up_event().wait(), GROW_POOL_AFTER_S)
            await asyncio.sleep(GROW_POOL_SETTLE_S)
        except TimeoutError:
            pass
        graph = self.graph
        if graph is None:
            return

        def add_worker() -> ActorSpec | None:
            with self._creating:
                return graph.add_filter_worker() if self.running else None

        try:
            added: list[ActorSpec] = []
            while len(graph.workers) < graph.pool_size and (spec := await asyncio.to_thread(add_worker)):
                added.append(spec)
            for worker in added:
                self._pids[worker.name] = await asyncio.wait_for(worker.handle.pid.remote(), 300)
            if added:
                await graph.scheduler.set_workers.remote(list(graph.workers))
                log.info("filter pool grown to %d workers", len(graph.workers))
        except Exception as exc:  # the engine runs on with the workers it has
            self.errors += 1
            log.exception("growing the filter pool")
            await self._publish_log("WARNING", f"the filter pool could not grow: {exc}")

    async def _seed_example_trader(self) -> bool:
        # The Store validates and creates it, and answers plain records (`Store.traders`): this
        # process never loads the tables (SQLModel, SQLAlchemy), about half a CPU-second at start-up.
        assert self.graph is not None
        trader = await self.graph.store.seed_trader.remote({**EXAMPLE_TRADER, "user_id": self.settings.user_id})
        if trader is None:
            return False
        with contextlib.suppress(Exception):
            await self.graph.scheduler.upsert_trader.remote(trader.id)
        return True

    async def _sync_symbols(self) -> None:
        """Stream every symbol an active trader needs (new traders are picked up here too)."""
        assert self.graph is not None
        traders = await self.graph.store.traders.remote(self.settings.user_id, active_only=True)
        wanted = {s for t in traders for s in t.symbols}
        await self.graph.ensure_symbols(sorted(wanted))

    async def _wait_for_backfill(self, timeout_s: float = 60.0) -> AsyncIterator[str]:
        assert self.graph is not None
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            health = await asyncio.gather(*(s.health.remote() for s in self.graph.shards))
            connected = sum(1 for h in health if h["connected"])
            line = f"stream shards connected: {connected}/{len(health)}"
            if line != last:
                yield line
                last = line
            if connected == len(health) and all(h["last_message_age_s"] is not None for h in health):
                return
            await asyncio.sleep(0.5)
        yield "market data is not flowing yet; the engine starts anyway and marks the feed stale"

    async def _watch(self) -> None:
        last_status = last_beat = 0.0
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            try:
                await self._check_actors()
                now = time.monotonic()
                if now - last_status >= STATUS_INTERVAL_S:
                    await self._sync_symbols()
                    await self._refresh_status()
                    last_status = now
                if now - last_beat >= HEARTBEAT_INTERVAL_S and self.graph is not None:
                    self.graph.store.enqueue.remote("heartbeat", "supervisor", self.settings.user_id,
                                                    {"running": self.running, "feed": self._status.get("feed")})
                    last_beat = now
            except asyncio.CancelledError:
                raise
            except Exception:
                self.errors += 1
                log.exception("supervisor watch loop")

    async def _check_actors(self) -> None:
        assert self.graph is not None
        for spec in self.graph.specs():
            try:
                pid = await asyncio.wait_for(spec.handle.pid.remote(), PING_TIMEOUT_S)
            except (RayActorError, ActorUnschedulableError, GetTimeoutError, TimeoutError) as exc:
                # Unschedulable: pinned to a node that is gone. Stranded: the same, seen before Ray says so.
                stranded = isinstance(exc, ActorUnschedulableError) or self.graph.stranded(spec.name)
                if stranded or (isinstance(exc, RayActorError) and not _restarting(exc)):
                    log.error("actor %s is dead (%s); creating a new one", spec.name,
                              "its node is gone" if stranded else exc)
                    if stranded:
                        with contextlib.suppress(Exception):
                            ray.kill(spec.handle, no_restart=True)
                    self.graph.recreate(spec)
                    self.restarts += 1
                    if spec.kind == "shard" and self.graph.scheduler is not None:
                        with contextlib.suppress(Exception):
                            await self.graph.scheduler.set_shards.remote(list(self.graph.shards))
                    await self._publish_log("ERROR", f"actor {spec.name} died and was replaced")
                continue
            if self._pids.get(spec.name) not in (None, pid):
                self.restarts += 1
                log.warning("actor %s restarted (pid %s -> %s); re-wiring", spec.name, self._pids[spec.name], pid)
                await self._publish_log("WARNING", f"actor {spec.name} restarted; state rebuilt from storage")
                await self._wire(spec)
            self._pids[spec.name] = pid

    async def _refresh_status(self) -> None:
        assert self.graph is not None
        graph = self.graph
        shards = list(await asyncio.gather(*(s.health.remote() for s in graph.shards), return_exceptions=True))
        shard_health = [h for h in shards if isinstance(h, dict)]
        scheduler = await _safe(graph.scheduler.stats.remote(), {})
        executor = await _safe(graph.executor.health.remote(), {})
        storage = await _safe(graph.store.health.remote(), {})
        traders = await graph.store.traders.remote(self.settings.user_id)
        positions = await _safe(graph.monitor.snapshot.remote(), [])
        equity = executor.get("equity")
        counts = {
            "traders": len(traders),
            "active_traders": sum(1 for t in traders if t.active),
            "open_positions": len(positions),
            "signals": int(scheduler.get("signals_created", 0)),
        }
        self._status = build_status(
            settings=self.settings, running=self.running, feed=feed_state(self.feed, shard_health),
            feed_note=self.feed_note, shards=shard_health, scheduler=scheduler, counts=counts,
            positions=positions, equity=Decimal(str(equity)) if equity is not None else None,
            errors=self.errors + int(scheduler.get("errors", 0)), restarts=self.restarts,
            trades_executed=int(executor.get("orders_filled", executor.get("trades_executed", 0))),
            storage=storage,
        )
        self._markets = await graph.markets()
        await graph.events.publish.remote("engine", "engine", self._status)

    async def _publish_log(self, level: str, message: str) -> None:
        from datetime import UTC, datetime

        if self.graph is not None:
            data = {"time": datetime.now(UTC).isoformat(), "level": level, "logger": "aitrader.supervisor",
                    "message": message}
            with contextlib.suppress(Exception):
                await self.graph.events.publish.remote("logs", "log", data)


def _restarting(exc: RayActorError) -> bool:
    """Whether Ray is restarting the actor (it will come back) rather than giving up on it."""
    text = str(exc)
    return "restarting" in text.lower() or "ActorUnavailableError" in type(exc).__name__


def _prepare_graph() -> None:
    with contextlib.suppress(Exception):  # `build_graph` imports and exports again, and reports any error
        load_actor_modules()
        export_actor_classes()


async def _safe(ref: Any, default: Any) -> Any:
    try:
        return await asyncio.wait_for(ref, 10)
    except Exception:
        return default


def get_supervisor() -> Any:
    return ray.get_actor("supervisor", namespace=NAMESPACE)
