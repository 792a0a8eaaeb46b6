"""What the supervisor says is still starting (``/health`` names it): its plain class, no Ray started."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from actors.supervisor import Supervisor
from aitrader.config import Settings


def _supervisor() -> Any:
    plain = Supervisor.__ray_metadata__.modified_class  # the class under the @ray.remote shell
    return plain(Settings(user_id="start"), "local", "ws://127.0.0.1:1", "http://127.0.0.1:1")


def test_before_the_graph_exists_the_graph_itself_is_starting() -> None:
    supervisor = _supervisor()

    assert asyncio.run(supervisor.starting()) == ["the actor graph"]


def test_the_actors_not_yet_wired_are_named_then_nothing_once_wired() -> None:
    supervisor = _supervisor()

    async def scenario() -> tuple[list[str], list[str], list[str]]:
        supervisor.graph = SimpleNamespace()
        supervisor._unwired = {"shard-0", "scheduler"}
        waiting = await supervisor.starting()
        supervisor._unwired.discard("shard-0")
        fewer = await supervisor.starting()
        supervisor._unwired.clear()
        asyncio.get_running_loop().call_later(0.05, supervisor._wired_event().set)
        return waiting, fewer, await supervisor.starting(wait_s=5.0)

    waiting, fewer, wired = asyncio.run(scenario())

    assert waiting == ["scheduler", "shard-0"]
    assert fewer == ["scheduler"]
    assert wired == []


def test_wired_but_not_yet_announced_is_still_starting() -> None:
    supervisor = _supervisor()
    supervisor.graph = SimpleNamespace()

    assert asyncio.run(supervisor.starting()) == ["the wiring of the actors"]


def test_the_supervisor_answers_while_it_builds_the_graph(monkeypatch: Any) -> None:
    import threading

    import actors.supervisor as module

    building = threading.Event()
    release = threading.Event()

    def slow_build(*_args: Any) -> Any:
        building.set()
        release.wait(5)
        return SimpleNamespace(specs=lambda: [], shards=[])

    monkeypatch.setattr(module, "build_graph", slow_build)
    supervisor = _supervisor()

    async def scenario() -> list[str]:
        first_line = asyncio.ensure_future(supervisor.start().__anext__())
        while not building.is_set():
            await asyncio.sleep(0.01)
        answer = await asyncio.wait_for(supervisor.starting(), 1.0)  # the event loop is not blocked
        release.set()
        await first_line
        return answer

    assert asyncio.run(scenario()) == ["the actor graph"]
