"""`RayBackend` asks the supervisor for each actor's handle on first use; no Ray is started.

The handles are small stand-ins with Ray's calling shape (``handle.method.remote(...)`` gives an
awaitable), and the supervisor is the real class under its ``@ray.remote`` shell.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from ray.exceptions import ActorDiedError

from actors.supervisor import Supervisor
from aitrader.config import Settings
from serve.backend import RayBackend
from serve.errors import EngineUnavailable


class Method:
    def __init__(self, actor: Actor, name: str) -> None:
        self.actor, self.name = actor, name

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        self.actor.calls.append((self.name, args, kwargs))

        async def answer() -> Any:
            if self.actor.dead:
                raise ActorDiedError()
            return self.actor.answers.get(self.name, self.actor.label)

        return answer()


class Actor:
    """An actor handle's calling shape: ``actor.method.remote(*args)`` is awaitable."""

    def __init__(self, label: str, **answers: Any) -> None:
        self.label, self.answers = label, answers
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.dead = False

    def __getattr__(self, name: str) -> Method:
        return Method(self, name)


class FakeSupervisor:
    """Hands out the current handle of each actor, counting the asks."""

    def __init__(self, actors: dict[str, Actor]) -> None:
        self.actors = actors
        self.asked: list[str] = []
        self.handle = SimpleNamespace(remote=self._handle)
        self.starting = SimpleNamespace(remote=self._starting)

    def _handle(self, name: str) -> Any:
        self.asked.append(name)

        async def answer() -> Actor:
            return self.actors[name]

        return answer()

    def _starting(self, wait_s: float) -> Any:
        async def answer() -> list[str]:
            return ["scheduler"]

        return answer()


def test_each_handle_is_asked_of_the_supervisor_once_when_first_needed() -> None:
    store, events = Actor("store", call=["trader"]), Actor("events", last_seq=7)
    supervisor = FakeSupervisor({"store": store, "events": events, "executor": Actor("executor")})
    backend = RayBackend(supervisor=supervisor)

    async def scenario() -> tuple[list[str], Any, Any, Any, list[str]]:
        starting = await backend.starting(0.0)
        asked_before = list(supervisor.asked)
        first = await backend.store("list_traders", "alice", active_only=True)
        again = await backend.store("list_traders", "alice")
        seq = await backend.last_seq()
        return asked_before, first, again, seq, starting

    asked_before, first, again, seq, starting = asyncio.run(scenario())

    assert starting == ["scheduler"]
    assert asked_before == []  # /health's question needs no actor handle
    assert first == again == ["trader"]
    assert seq == 7
    assert supervisor.asked == ["store", "events"]
    assert store.calls[0] == ("call", ("list_traders", "alice"), {"active_only": True})


def test_a_handle_to_an_actor_that_died_for_good_is_asked_for_again() -> None:
    old, new = Actor("old executor"), Actor("new executor")
    supervisor = FakeSupervisor({"executor": old})
    backend = RayBackend(supervisor=supervisor)

    async def scenario() -> Any:
        await backend.submit_order({"symbol": "BTCUSDT"})
        old.dead = True
        supervisor.actors["executor"] = new  # the supervisor replaced it
        with pytest.raises(ActorDiedError):
            await backend.submit_order({"symbol": "BTCUSDT"})
        return await backend.submit_order({"symbol": "ETHUSDT"})

    answer = asyncio.run(scenario())

    assert answer == "new executor"
    assert supervisor.asked == ["executor", "executor"]


def test_handles_given_up_front_are_used_as_they_are() -> None:
    store, events = Actor("store"), Actor("events", last_seq=3)
    backend = RayBackend(store=store, events=events)

    async def scenario() -> tuple[int, list[str]]:
        await backend.trader_changed("t1")  # no scheduler given and no supervisor: nothing to tell
        with pytest.raises(EngineUnavailable, match="the executor is not running"):
            await backend.submit_order({})
        return await backend.last_seq(), await backend.starting(1.0)

    seq, starting = asyncio.run(scenario())

    assert (seq, starting) == (3, [])
    assert events.calls == [("last_seq", (), {})]


def test_without_a_supervisor_the_store_and_events_are_needed() -> None:
    with pytest.raises(ValueError, match="store and events"):
        RayBackend(store=Actor("store"))


def _plain_supervisor() -> Any:
    plain = Supervisor.__ray_metadata__.modified_class  # the class under the @ray.remote shell
    return plain(Settings(user_id="handles"), "local", "ws://127.0.0.1:1", "http://127.0.0.1:1")


def test_the_supervisor_hands_out_a_handle_once_its_graph_exists() -> None:
    supervisor = _plain_supervisor()
    store = object()
    graph = SimpleNamespace(named=lambda: {"store": store, "analyst": None})

    async def scenario() -> Any:
        asyncio.get_running_loop().call_later(0.1, setattr, supervisor, "graph", graph)
        return await supervisor.handle("store", wait_s=5.0)

    assert asyncio.run(scenario()) is store
    with pytest.raises(KeyError, match="no actor 'analyst'"):
        asyncio.run(supervisor.handle("analyst"))


def test_the_supervisor_says_so_when_its_graph_never_comes() -> None:
    supervisor = _plain_supervisor()

    with pytest.raises(RuntimeError, match="do not exist yet"):
        asyncio.run(supervisor.handle("store", wait_s=0.1))
