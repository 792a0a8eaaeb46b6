"""The supervisor grows the filter pool once ``/health`` has been told the engine is up, and hands the
scheduler the grown pool; a restarted scheduler gets it too (plain class, fake handles, no Ray started)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import actors.supervisor as module
from actors.graph import ActorSpec
from aitrader.config import Settings


@dataclass
class Call:
    """A fake actor method: ``.remote(...)`` records the call and returns an awaitable answer."""

    answer: Any = None
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def remote(self, *args: Any) -> Any:
        self.calls.append(args)

        async def reply() -> Any:
            return self.answer

        return reply()


class FakeActor:
    def __init__(self, pid: int = 0) -> None:
        self.pid = Call(pid)
        self.set_shards = Call()
        self.set_workers = Call()
        self.start = Call()


class FakeGraph:
    def __init__(self, pool_size: int) -> None:
        self.pool_size = pool_size
        self.workers: list[Any] = [FakeActor(100)]
        self.shards: list[Any] = []
        self.scheduler = FakeActor()
        self.monitor = None

    def add_filter_worker(self) -> ActorSpec:
        handle = FakeActor(100 + len(self.workers))
        self.workers.append(handle)
        return ActorSpec(f"filter-worker-{len(self.workers) - 1}", "worker", lambda: handle, handle)


def _supervisor(graph: FakeGraph) -> Any:
    supervisor = module.Supervisor.__ray_metadata__.modified_class(  # the class under the @ray.remote shell
        Settings(user_id="pool"), "local", "ws://127.0.0.1:1", "http://127.0.0.1:1")
    supervisor.graph = graph
    supervisor.running = True
    return supervisor


def test_the_pool_grows_once_health_has_been_told_the_engine_is_up(monkeypatch: Any) -> None:
    # Arrange
    monkeypatch.setattr(module, "GROW_POOL_SETTLE_S", 0.01)
    graph = FakeGraph(pool_size=2)
    supervisor = _supervisor(graph)

    async def scenario() -> tuple[int, int]:
        supervisor._wired_event().set()
        growing = asyncio.ensure_future(supervisor._grow_pool())
        await asyncio.sleep(0.05)
        before = len(graph.workers)
        assert await supervisor.starting() == []  # what /health asks
        await asyncio.wait_for(growing, 5.0)
        return before, len(graph.workers)

    # Act
    before, after = asyncio.run(scenario())

    # Assert
    assert (before, after) == (1, 2), "no worker is added before /health was told the engine is up"
    assert graph.scheduler.set_workers.calls == [(graph.workers,)]
    assert supervisor._pids == {"filter-worker-1": 101}


def test_without_anyone_asking_the_pool_grows_after_a_while(monkeypatch: Any) -> None:
    monkeypatch.setattr(module, "GROW_POOL_AFTER_S", 0.01)
    graph = FakeGraph(pool_size=3)
    supervisor = _supervisor(graph)

    asyncio.run(asyncio.wait_for(supervisor._grow_pool(), 5.0))

    assert len(graph.workers) == 3
    assert graph.scheduler.set_workers.calls == [(graph.workers,)]


def test_a_full_pool_does_not_bother_the_scheduler(monkeypatch: Any) -> None:
    monkeypatch.setattr(module, "GROW_POOL_AFTER_S", 0.01)
    graph = FakeGraph(pool_size=1)

    asyncio.run(asyncio.wait_for(_supervisor(graph)._grow_pool(), 5.0))

    assert graph.scheduler.set_workers.calls == []


def test_a_restarted_scheduler_is_handed_the_current_pool() -> None:
    graph = FakeGraph(pool_size=2)
    graph.add_filter_worker()
    supervisor = _supervisor(graph)
    spec = ActorSpec("scheduler", "scheduler", lambda: graph.scheduler, graph.scheduler)

    asyncio.run(supervisor._wire(spec))

    assert graph.scheduler.set_workers.calls == [(graph.workers,)]
    assert len(graph.scheduler.start.calls) == 1


def test_a_pool_does_not_grow_once_shutdown_began(monkeypatch: Any) -> None:
    monkeypatch.setattr(module, "GROW_POOL_AFTER_S", 0.01)
    graph = FakeGraph(pool_size=2)
    supervisor = _supervisor(graph)
    supervisor.running = False  # what shutdown sets first

    asyncio.run(asyncio.wait_for(supervisor._grow_pool(), 5.0))

    assert len(graph.workers) == 1
    assert graph.scheduler.set_workers.calls == []
