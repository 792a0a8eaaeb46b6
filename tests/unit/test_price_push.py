"""A stream shard's price pushes: over the subscriber's local socket when offered, else Ray calls (actors.price_push)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import actors.price_push as price_push
from actors.price_push import PricePush
from aitrader.local_channel import AsyncLocalServer, decode_prices, encode_count


class _Method:
    def __init__(self, answer: Any = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self._answer = answer

    def remote(self, *args: Any) -> Any:
        self.calls.append(args)
        if self._answer is None:
            return None
        future = asyncio.get_running_loop().create_future()
        future.set_result(self._answer)
        return future


class _RayOnly:
    """A handle of an actor that has no ``price_address`` (as the Executor)."""

    def __init__(self) -> None:
        self.on_prices = _Method()


class _WithSocket(_RayOnly):
    def __init__(self, node: str, path: str) -> None:
        super().__init__()
        self.price_address = _Method((node, path))


async def _settle(push: PricePush, until: Any, timeout_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not until():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.fixture
def node(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(price_push, "this_node", lambda: "node-a")
    return "node-a"


async def test_a_subscriber_without_a_socket_gets_every_push_as_a_ray_call(node: str) -> None:
    handle = _RayOnly()
    push = PricePush(handle)

    for i in range(3):
        push.send({"BTCUSDT": f"{100 + i}"}, i)
        await asyncio.sleep(0.01)

    assert handle.on_prices.calls == [({"BTCUSDT": "100"}, 0), ({"BTCUSDT": "101"}, 1), ({"BTCUSDT": "102"}, 2)]
    assert push.local == 0 and not push.connected


async def test_pushes_take_the_socket_once_connected_on_the_same_node(node: str) -> None:
    received: list[tuple[dict[str, str], int]] = []

    async def handler(message: bytes) -> bytes:
        received.append(decode_prices(message))
        return encode_count(0)

    server = await AsyncLocalServer.start(handler, name="monitor")
    try:
        handle = _WithSocket(node, server.path)
        push = PricePush(handle)
        push.send({"BTCUSDT": "100"}, 1)  # not connected yet: a Ray call, and a connect starts
        await _settle(push, lambda: push.connected)
        push.send({"BTCUSDT": "101"}, 2)
        push.send({"ETHUSDT": "50"}, 3)
        await _settle(push, lambda: len(received) == 2)

        assert handle.on_prices.calls == [({"BTCUSDT": "100"}, 1)]
        assert received == [({"BTCUSDT": "101"}, 2), ({"ETHUSDT": "50"}, 3)]
        assert push.local == 2
    finally:
        push.close()
        server.close()


async def test_a_subscriber_on_another_node_stays_on_ray_calls(node: str) -> None:
    server = await AsyncLocalServer.start(lambda message: asyncio.sleep(0, encode_count(0)), name="monitor")
    try:
        handle = _WithSocket("node-b", server.path)
        push = PricePush(handle)
        push.send({"BTCUSDT": "100"}, 1)
        await asyncio.sleep(0.1)
        push.send({"BTCUSDT": "101"}, 2)

        assert [args for args in handle.on_prices.calls] == [({"BTCUSDT": "100"}, 1), ({"BTCUSDT": "101"}, 2)]
        assert not push.connected and push.local == 0
    finally:
        server.close()


async def test_a_push_the_socket_lost_is_resent_by_ray_for_symbols_no_later_push_carried(node: str) -> None:
    # Arrange: the subscriber fails the first socket push (as a restarting Monitor would) and takes the second
    seen: list[dict[str, str]] = []

    async def handler(message: bytes) -> bytes:
        prices, _ = decode_prices(message)
        seen.append(prices)
        if len(seen) == 1:
            raise RuntimeError("restarting")
        return encode_count(0)

    server = await AsyncLocalServer.start(handler, name="monitor")
    try:
        handle = _WithSocket(node, server.path)
        push = PricePush(handle)
        push.send({"ETHUSDT": "49"}, 0)
        await _settle(push, lambda: push.connected)
        handle.on_prices.calls.clear()

        # Act: BTC and ETH go out and are lost; a later push carries BTC again before the loss is known
        push.send({"BTCUSDT": "100", "ETHUSDT": "50"}, 1)
        push.send({"BTCUSDT": "101"}, 2)
        await _settle(push, lambda: push.resent == 1)

        # Assert: only ETH is resent (BTC's newer price already went), never BTC's older one
        assert handle.on_prices.calls == [({"ETHUSDT": "50"}, 1)]
        assert seen == [{"BTCUSDT": "100", "ETHUSDT": "50"}, {"BTCUSDT": "101"}]
    finally:
        push.close()
        server.close()
