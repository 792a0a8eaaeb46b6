"""Price pushes from a stream shard to one subscriber actor (the Monitor, the Executor).

A Ray call to an idle actor costs ~2 ms one way on a 2-core machine, a Unix socket ~0.15 ms, and
the price push is the first hop of every stop-loss close. So a subscriber that offers a socket
(`price_address`, the Monitor does) and runs on the shard's node gets its prices over that socket
(`aitrader.local_channel`); any other subscriber, and every push while the socket is not
connected, goes as the Ray call ``on_prices`` it always was.

A push the socket failed to deliver (the subscriber died or restarted) is sent again by Ray, for
the symbols no later push has carried since: the subscriber never sees a symbol's price go back
in time, and no update is silently lost. Applying a price twice is harmless (the Monitor closes
a position exactly once whatever prices it is told).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import ray

from aitrader.local_channel import AsyncLocalClient, LocalChannelError, encode_prices

log = logging.getLogger("aitrader.stream")

RECONNECT_S = 5.0


def this_node() -> str:
    return str(ray.get_runtime_context().get_node_id())


class PricePush:
    """Sends one subscriber its price pushes, over a local socket when it can."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self._client: AsyncLocalClient | None = None
        self._offers_socket = True  # until the subscriber turns out to have no `price_address`
        self._connect_at = 0.0
        self._connecting = False
        self._sent = 0
        self._last_push_of: dict[str, int] = {}  # symbol -> number of the last push that carried it
        self.local = 0
        self.resent = 0

    @property
    def connected(self) -> bool:
        return self._client is not None and not self._client.closed

    def send(self, prices: dict[str, str], event_time_ms: int) -> None:
        """Push now (never awaits): over the socket if connected, else as a Ray call."""
        self._sent += 1
        number = self._sent
        for symbol in prices:
            self._last_push_of[symbol] = number
        if self.connected:
            assert self._client is not None
            try:
                answer = self._client.send(encode_prices(prices, event_time_ms))
            except LocalChannelError:
                pass
            else:
                self.local += 1
                answer.add_done_callback(lambda done: self._delivered(done, number, prices, event_time_ms))
                return
        self.handle.on_prices.remote(prices, event_time_ms)
        self._maybe_connect()

    def _delivered(self, answer: asyncio.Future[bytes], number: int, prices: dict[str, str],
                   event_time_ms: int) -> None:
        if answer.cancelled() or answer.exception() is None:
            return
        # Lost with the socket: send by Ray what no later push has carried.
        stale = {s: p for s, p in prices.items() if self._last_push_of.get(s) == number}
        if stale:
            self.resent += 1
            self.handle.on_prices.remote(stale, event_time_ms)

    def _maybe_connect(self) -> None:
        if not self._offers_socket or self._connecting or time.monotonic() < self._connect_at:
            return
        self._connecting = True
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        try:
            address = self.handle.price_address
        except AttributeError:  # this subscriber only takes Ray calls
            self._offers_socket = False
            self._connecting = False
            return
        try:
            node, path = await asyncio.wait_for(address.remote(), 10)
            if node == this_node():
                self._client = await AsyncLocalClient.connect(path)
            else:
                self._offers_socket = False  # on another node: Ray calls it is (a restart makes a new PricePush)
        except Exception as error:  # restarting, or not answering yet: try again later
            log.info("price pushes go as Ray calls for now: %s", error)
        finally:
            self._connect_at = time.monotonic() + RECONNECT_S
            self._connecting = False

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
