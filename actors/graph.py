"""The engine's actor graph: which actors exist, how each is created, and the named handles."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray

from actors import NAMESPACE
from actors.stream import StreamShard, shard_symbols
from aitrader.config import Settings

#: Symbols every engine streams for the Markets panel, before any trader asks for more.
WATCHLIST = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "AVAXUSDT",
             "LINKUSDT", "DOTUSDT"]
SPARKLINE_BARS = 30
#: Binance allows 1024 streams per connection; a shard carries at most this many, a safety margin
#: under it (a symbol is one kline stream per interval plus its ticker).
STREAMS_PER_SHARD = 800
#: Filter workers created with the graph. The rest of the pool (`default_pool_size`) is created once the
#: engine runs (`EngineGraph.add_filter_worker`): one worker runs every check, and each more is a process
#: whose start (a CPU-second on a busy machine) the engine's start would otherwise wait for.
START_FILTER_WORKERS = 1


@dataclass
class ActorSpec:
    """One actor of the graph: its name, kind, handle and how to create it again."""

    name: str
    kind: str
    factory: Callable[[], Any]
    handle: Any = None

    def create(self) -> Any:
        self.handle = self.factory()
        return self.handle


def _named(cls: Any, name: str, **options: Any) -> Any:
    return cls.options(name=name, namespace=NAMESPACE, get_if_exists=True, **options)


@dataclass
class EngineGraph:
    """Handles to every engine actor, created in dependency order."""

    settings: Settings
    intervals: list[str]
    stream_url: str
    api_url: str
    store: Any = None
    events: Any = None
    executor: Any = None
    monitor: Any = None
    scheduler: Any = None
    analyst: Any = None
    exchange: Any = None
    workers: list[Any] = field(default_factory=list)
    #: The size the filter pool grows to once the engine runs.
    pool_size: int = 1
    shards: list[Any] = field(default_factory=list)
    _specs: list[ActorSpec] = field(default_factory=list)
    _symbol_shard: dict[str, int] = field(default_factory=dict)
    _pinned: dict[str, str | None] = field(default_factory=dict)

    def place(self, name: str, index: int) -> Any:
        """The scheduling strategy of the ``index``-th shard, remembering the node it pins to."""
        strategy = _spread(index)
        self._pinned[name] = getattr(strategy, "node_id", None)
        return strategy

    def stranded(self, name: str) -> bool:
        """Whether this actor is pinned to a node that is no longer alive (it cannot restart)."""
        node = self._pinned.get(name)
        return node is not None and node not in {n["NodeID"] for n in ray.nodes() if n.get("Alive")}

    def specs(self) -> list[ActorSpec]:
        return list(self._specs)

    def add(self, name: str, kind: str, factory: Callable[[], Any]) -> Any:
        spec = ActorSpec(name, kind, factory)
        self._specs.append(spec)
        return spec.create()

    def recreate(self, spec: ActorSpec) -> None:
        """Replace a dead actor under the same name and refresh every reference to it."""
        old = spec.handle
        new = spec.create()
        for attribute in ("store", "events", "executor", "monitor", "scheduler", "analyst", "exchange"):
            if getattr(self, attribute) is old:
                setattr(self, attribute, new)
        for group in (self.workers, self.shards):
            for index, handle in enumerate(group):
                if handle is old:
                    group[index] = new

    def add_filter_worker(self) -> ActorSpec:
        """Create the next filter worker of the pool (``filter-worker-<index>``) and return its spec."""
        from actors.filter_pool import FilterWorker

        index = len(self.workers)
        name = f"filter-worker-{index}"
        self.workers.append(self.add(name, "worker", lambda: _named(FilterWorker, name).remote(index)))
        return self._specs[-1]

    def all_handles(self) -> list[Any]:
        return [spec.handle for spec in self._specs]

    def named(self) -> dict[str, Any]:
        return {
            "store": self.store, "events": self.events, "executor": self.executor, "monitor": self.monitor,
            "scheduler": self.scheduler, "analyst": self.analyst, "shards": list(self.shards),
            "workers": list(self.workers),
        }

    def assigned_symbols(self, shard: Any) -> list[str]:
        """Every symbol this shard streams, including those added after it was created."""
        index = next((i for i, h in enumerate(self.shards) if h is shard), None)
        return [symbol for symbol, at in self._symbol_shard.items() if at == index]

    def price_subscribers(self) -> list[Any]:
        return [h for h in (self.monitor, self.executor) if h is not None]

    async def ensure_symbols(self, symbols: list[str]) -> list[str]:
        """Stream these symbols too, on the least-loaded shard; returns those newly added."""
        added: list[str] = []
        for symbol in symbols:
            if symbol in self._symbol_shard:
                continue
            counts = [0] * len(self.shards)
            for index in self._symbol_shard.values():
                counts[index] += 1
            target = counts.index(min(counts))
            await self.shards[target].add_symbols.remote([symbol])
            self._symbol_shard[symbol] = target
            added.append(symbol)
        return added

    async def markets(self) -> list[dict[str, Any]]:
        """Ticker and recent closes of every streamed symbol (the Markets panel)."""
        results = await asyncio.gather(*(s.markets.remote(self.intervals[0], SPARKLINE_BARS) for s in self.shards),
                                       return_exceptions=True)
        return [row for rows in results if not isinstance(rows, BaseException) for row in rows]


#: The modules `build_graph` takes actor classes from, besides ``actors.stream`` (imported above).
ACTOR_MODULES = ("actors.events", "actors.store", "actors.executor", "actors.monitor", "actors.filter_pool",
                 "actors.scheduler")


#: The actor classes `build_graph` creates (the analyst's only with AI analysis, so not exported ahead).
ACTOR_CLASSES = (("actors.events", "EventHub"), ("actors.store", "Store"), ("actors.executor", "Executor"),
                 ("actors.monitor", "Monitor"), ("actors.filter_pool", "FilterWorker"),
                 ("actors.stream", "StreamShard"), ("actors.scheduler", "Scheduler"))


def load_actor_modules() -> None:
    """Import the modules of the graph's actor classes, as `build_graph` will.

    The supervisor does this while ``aitrader up`` has it wait for Serve's controller, so building the
    graph later is only creating the actors (imports are most of a second of CPU on a busy machine).
    """
    import importlib

    for module in ACTOR_MODULES:
        importlib.import_module(module)


def export_actor_classes() -> None:
    """Hand the graph's actor classes to Ray ahead of `build_graph`, as creating the first actor of a
    class would: Ray pickles the class and disassembles its code (a collision check), ~0.06 CPU-s a
    class. The supervisor does it while it waits to be asked to start, so building the graph (on
    cores the starting actors keep busy) is only submitting them: 1 s instead of 5-8 s on 2 busy
    cores, and the last actors' processes start seconds earlier. The same steps as Ray 2.60's
    `ActorClass._remote` takes before it creates an actor of a class not yet exported in this job.
    """
    import importlib

    if not ray.is_initialized():  # nothing to export to (the supervisor's plain class in unit tests)
        return
    worker = ray._private.worker.global_worker
    for module, name in ACTOR_CLASSES:
        meta = getattr(importlib.import_module(module), name).__ray_metadata__
        if meta.is_cross_language or meta.last_export_cluster_and_job == worker.current_cluster_and_job:
            continue
        worker.function_actor_manager.export_actor_class(
            meta.modified_class, meta.actor_creation_function_descriptor, meta.method_meta.methods.keys())
        meta.last_export_cluster_and_job = worker.current_cluster_and_job


def build_graph(settings: Settings, stream_url: str, api_url: str, clock_speed: float = 1.0,
                clock_anchor_ms: int | None = None, watchlist: list[str] | None = None) -> EngineGraph:
    """Create every actor of the engine under its name in the ``aitrader`` namespace.

    Each actor's module is imported just before the actor is created: creating an actor only
    submits it, so its process starts while this one imports the next module (several take a
    second or more of CPU to import). The slowest to start come first; the scheduler, which
    takes the others' handles, last.
    """
    # The actors read the market from wherever the engine does (Binance or the local exchange).
    settings = settings.model_copy(update={"binance_api_url": api_url, "binance_stream_url": stream_url})
    intervals = ["1m", "5m", "15m", "1h"]
    graph = EngineGraph(settings=settings, intervals=intervals, stream_url=stream_url, api_url=api_url)
    from actors.events import EventHub

    graph.events = graph.add("events", "events", lambda: _named(EventHub, "events").remote())

    from actors.store import Store

    graph.store = graph.add("store", "store", lambda: _named(Store, "store").remote(settings))

    from actors.executor import Executor

    graph.executor = graph.add("executor", "executor", lambda: _named(Executor, "executor").remote(
        settings, graph.store, graph.events, "monitor"))

    from actors.monitor import Monitor

    graph.monitor = graph.add("monitor", "monitor", lambda: _named(Monitor, "monitor").remote(
        settings, graph.store, graph.events, graph.executor))

    from actors.filter_pool import default_pool_size

    graph.pool_size = default_pool_size()
    for _ in range(min(START_FILTER_WORKERS, graph.pool_size)):
        graph.add_filter_worker()

    # Shards near the end: once wired they stream and backfill, which is CPU the actors still
    # starting would otherwise wait for.
    symbols = list(dict.fromkeys((watchlist if watchlist is not None else WATCHLIST)[: settings.max_symbols]))
    count = shard_count(max(settings.max_symbols, len(symbols)), len(intervals), _alive_nodes())
    for index, bucket in enumerate(shard_symbols(symbols, count)):
        name = f"shard-{index}"
        # On a cluster the shards (the network-heavy actors) go round-robin over the nodes; a
        # shard whose node is removed is created again on another one by the supervisor.
        shard = graph.add(name, "shard", lambda n=name, i=index, b=bucket: _named(
            StreamShard, n, scheduling_strategy=graph.place(n, i)).remote(i, stream_url, api_url, b, intervals,
                                                                         graph.events))
        graph.shards.append(shard)
        graph._symbol_shard.update({s: index for s in bucket})
    if settings.enable_ai_analysis:
        from actors.analysis import SignalAnalyst

        graph.analyst = graph.add("analyst", "analyst", lambda: _named(SignalAnalyst, "analyst").remote(
            settings, graph.store, graph.events, graph.shards, graph.executor))

    from actors.scheduler import Scheduler

    graph.scheduler = graph.add("scheduler", "scheduler", lambda: _named(Scheduler, "scheduler").remote(
        settings, graph.store, graph.events, graph.workers, graph.shards, graph.executor,
        clock_speed=clock_speed, clock_anchor_ms=clock_anchor_ms, analyst=graph.analyst))
    return graph


def shard_count(symbols: int, intervals: int, nodes: int = 1) -> int:
    """How many stream shards carry ``symbols`` symbols of ``intervals`` kline intervals each.

    As few as `STREAMS_PER_SHARD` allows (each shard is a process whose start-up is CPU the rest of
    the engine waits for: one shard for 100 symbols), and on a cluster at least one per node, so
    losing a node loses only part of the market data while its shard is created again elsewhere.
    """
    per_shard = max(1, STREAMS_PER_SHARD // (intervals + 1))
    return max(1, -(-symbols // per_shard), nodes)


def _alive_nodes() -> int:
    return sum(1 for node in ray.nodes() if node.get("Alive"))


def _spread(index: int) -> Any:
    """A node affinity putting the ``index``-th shard on the ``index``-th alive node.

    Hard, because Ray 2.60 does not honour a *soft* affinity (nor ``SPREAD``) for zero-CPU
    actors: on a 3-node ``Cluster`` they landed together. When that node goes away the shard
    cannot restart there and dies; the supervisor then creates it again under the same name,
    placed over the nodes still alive, and hands the new handle to the scheduler. Worker nodes
    come first: the head already carries the supervisor, Serve and the API.
    """
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    alive = [n for n in ray.nodes() if n.get("Alive")]
    nodes = [n["NodeID"] for n in sorted(alive, key=lambda n: (_is_head(n), n["NodeID"]))]
    if len(nodes) < 2:
        return "DEFAULT"
    return NodeAffinitySchedulingStrategy(node_id=nodes[index % len(nodes)], soft=False)


def _is_head(node: dict[str, Any]) -> bool:
    return any(key.startswith("node:__internal_head__") for key in node.get("Resources", {}))


def ray_available_cpus() -> int:
    return max(1, int(ray.available_resources().get("CPU", 1)))
