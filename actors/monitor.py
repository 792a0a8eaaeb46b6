"""Monitor actor: holds a `PositionBook`; price pushes trigger stop-loss, take-profit and trailing closes.

An async actor: `on_prices` only updates the book and sends the Executor a close for each trigger
(the call is submitted before `on_prices` returns; a task awaits its answer). Nothing else happens
on a price push: P&L marks are published from the background tick (every 0.25 s), at most every
``update_interval_ms`` per position, as one batched event call, and written to storage at most
every ``write_interval_s`` per position, as one batched Store message — so they never delay a close.
Ray does not keep an async actor's calls in order, so a push older (by event time) than the last
one applied to a symbol is dropped.
If the Executor dies mid-close, Ray retries the call on the restarted Executor
(``max_task_retries=-1``) and the close's idempotency makes that safe. A failed close is retried
with back-off by the book.
When the Executor runs on this machine, a close goes over its Unix socket
(`aitrader.local_channel`: ~0.15 ms where a Ray call to an idle actor costs ~2 ms); if that
fails for any reason, the same close is sent as the Ray call above. Price pushes may come the same
way (`price_address`): a stream shard on this machine can send them over this actor's own socket,
served in its event loop, instead of as Ray calls.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
import time
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import ray

from aitrader.events import Channel
from aitrader.local_channel import (
    AsyncLocalClient,
    AsyncLocalServer,
    IdleCollector,
    LocalChannelError,
    decode_prices,
    encode_count,
)
from aitrader.storage.wire import decode_view, encode_close_request
from aitrader.views import money

if TYPE_CHECKING:
    from aitrader.config import Settings
    from aitrader.trading.position_book import CloseRequest, PositionMarked

log = logging.getLogger("aitrader.monitor")
_TICK_S = 0.25
_CLOSE_TIMEOUT_S = 120.0
#: How often to try to (re)connect to the Executor's local channel while there is none.
_CHANNEL_RETRY_S = 5.0


@ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0)
class Monitor:
    """Watches open positions on every price push and asks the Executor to close triggered ones."""

    def __init__(
        self,
        settings: Settings,
        store: Any,
        events: Any,
        executor: Any,
        *,
        update_interval_ms: int = 1_000,
        write_interval_s: float = 10.0,
    ) -> None:
        self._store = store
        self._events = events
        self._executor = executor
        self._write_interval_s = write_interval_s
        self._written_at: dict[str, float] = {}
        # Loaded here, not with the module: Ray imports this module in every process holding a
        # Monitor handle (the shards, the supervisor), and the trading package brings the models.
        from aitrader.trading.position_book import PositionBook

        self._book = PositionBook(time.monotonic, update_interval_ms=update_interval_ms)
        self._closes: dict[str, asyncio.Task[None]] = {}
        self._price_times: dict[str, int] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._channel: AsyncLocalClient | None = None
        self._channel_at = 0.0
        self._price_server: asyncio.Task[AsyncLocalServer] | None = None
        self.closes_sent = 0
        self.close_failures = 0
        self.closes_local = 0  # answered over the Executor's local channel
        self.local_fallbacks = 0  # sent over it, then again as a Ray call after it failed
        self.last_event_time_ms = 0
        # As views (`Store.open_position_views`): unpickling `Position` rows would load the tables here.
        for view in ray.get(store.open_position_views.remote(settings.user_id), timeout=60):
            self._book.track(view)
        # Young generations only, as the scheduler does: a full collection walks every object the process
        # holds (~0.1 CPU-s of a CPU-bound engine start) and freed nothing in the Store's start-up.
        gc.collect(1)
        gc.freeze()  # start-up objects live for good: keep them out of collections on the price path
        # Collections from the tick, between pushes (on the event loop, nothing else runs then),
        # not inside a push whose allocations would trigger one. The lock is uncontended: the
        # event loop is what keeps a collection out of a push here.
        self._collector = IdleCollector(threading.Lock())
        gc.disable()

    # -- price pushes ---------------------------------------------------------------------------

    async def on_prices(self, prices: dict[str, str], event_time_ms: int = 0) -> int:
        """Mark positions to the pushed prices; start a close for each trigger. Returns closes started."""
        self._ensure_loop()
        self.last_event_time_ms = max(self.last_event_time_ms, event_time_ms)
        started = 0
        for symbol, text in prices.items():
            if event_time_ms and event_time_ms < self._price_times.get(symbol, 0):
                continue  # overtaken by a newer push: an async actor's calls may run out of order
            if event_time_ms:
                self._price_times[symbol] = event_time_ms
            try:
                price = Decimal(text)
            except (InvalidOperation, TypeError):
                log.warning("ignoring a bad price %r for %s", text, symbol)
                continue
            if not price.is_finite() or price <= 0:
                continue
            for request in self._book.on_price(symbol, price):
                self._start_close(request)
                started += 1
        return started

    def _start_close(self, request: CloseRequest) -> None:
        """Send the close now (not when a task first runs); a task awaits the Executor's answer."""
        self.closes_sent += 1
        local: asyncio.Future[bytes] | None = None
        ref: Any = None
        try:
            if self._channel is not None and not self._channel.closed:
                local = self._channel.send(
                    encode_close_request(request.position_id, request.reason, str(request.trigger_price)))
            else:
                ref = self._send_close(request)
        except Exception as error:  # the book retries with back-off
            self.close_failures += 1
            log.warning("sending the close of position %s failed, will retry: %s", request.position_id, error)
            self._book.close_failed(request.position_id)
            return
        self._closes[request.position_id] = asyncio.get_running_loop().create_task(self._close(request, local, ref))

    def _send_close(self, request: CloseRequest) -> Any:
        return self._executor.close_position.remote(request.position_id, request.reason, str(request.trigger_price))

    async def _answer(self, request: CloseRequest, local: asyncio.Future[bytes] | None, ref: Any) -> dict[str, Any]:
        """The Executor's answer: from the local channel, else (or if that failed) from the Ray call."""
        if local is not None:
            try:
                view = decode_view(await local)
            except LocalChannelError as error:
                self.local_fallbacks += 1
                log.warning("the local close of position %s failed, sending it as a Ray call: %s",
                            request.position_id, error)
            else:
                self.closes_local += 1
                return view
            ref = self._send_close(request)
        answer: dict[str, Any] = await ref
        return answer

    async def _close(self, request: CloseRequest, local: asyncio.Future[bytes] | None, ref: Any) -> None:
        try:
            view = await asyncio.wait_for(self._answer(request, local, ref), _CLOSE_TIMEOUT_S)
        except Exception as error:  # the book retries with back-off; the close is idempotent
            self.close_failures += 1
            log.warning("closing position %s failed, will retry: %s", request.position_id, error)
            self._book.close_failed(request.position_id)
        else:
            if view.get("status") != "open":
                self._book.closed(request.position_id)
                self._written_at.pop(request.position_id, None)
            else:
                self._book.close_failed(request.position_id)
        finally:
            self._closes.pop(request.position_id, None)

    def _publish_marks(self, marks: list[PositionMarked]) -> None:
        if not marks:
            return
        now = time.monotonic()
        events: list[tuple[str, str, dict[str, Any]]] = []
        writes: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        for mark in marks:
            data = {"id": mark.position_id, "symbol": mark.symbol, "current_price": money(mark.current_price),
                    "best_price": money(mark.best_price), "pnl": money(mark.pnl), "pnl_pct": money(mark.pnl_pct),
                    "status": "open", "event": "marked"}
            events.append((str(Channel.POSITIONS), "position_update", data))
            if mark.position_id in self._closes or self._book.is_closing(mark.position_id):
                continue  # the close writes the final figures; the Store also drops marks of closed positions
            if now - self._written_at.get(mark.position_id, float("-inf")) >= self._write_interval_s:
                self._written_at[mark.position_id] = now
                writes.append(("update_position", (mark.position_id,), {
                    "current_price": mark.current_price, "best_price": mark.best_price, "pnl": mark.pnl,
                    "pnl_pct": mark.pnl_pct}))
        self._events.publish_many.remote(events)
        if writes:
            self._store.enqueue_many.remote(writes)

    # -- background retries ---------------------------------------------------------------------

    def _ensure_loop(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.get_running_loop().create_task(self._tick_loop())
        if self._price_server is None:
            self._price_server = asyncio.get_running_loop().create_task(
                AsyncLocalServer.start(self._local_prices, name="monitor"))

    async def _local_prices(self, message: bytes) -> bytes:
        """A price push over the local channel (`encode_prices`); answers the closes started (`encode_count`)."""
        return encode_count(await self.on_prices(*decode_prices(message)))

    async def price_address(self) -> tuple[str, str]:
        """(Ray node id, Unix socket path) where a stream shard on this node pushes prices
        (`aitrader.local_channel.encode_prices`) without a Ray call (`actors.price_push`); a failed
        push may be sent again by Ray. Named apart from the Executor's `local_address` (closes, another
        message) so a shard tells a price socket from any other."""
        self._ensure_loop()
        assert self._price_server is not None
        server = await self._price_server
        return ray.get_runtime_context().get_node_id(), server.path

    async def _connect_executor(self) -> None:
        """Open the Executor's local channel if it runs on this node (asked again every few seconds)."""
        if (self._channel is not None and not self._channel.closed) or time.monotonic() < self._channel_at:
            return
        self._channel_at = time.monotonic() + _CHANNEL_RETRY_S
        try:
            node, path = await asyncio.wait_for(self._executor.local_address.remote(), 10)
            if node == ray.get_runtime_context().get_node_id():
                self._channel = await AsyncLocalClient.connect(path)
        except Exception as error:  # an Executor elsewhere, or restarting: closes go as Ray calls
            log.info("no local channel to the Executor, closes go as Ray calls: %s", error)

    async def _tick_loop(self) -> None:
        while True:
            await self._connect_executor()
            await asyncio.sleep(_TICK_S)
            try:
                for request in self._book.due_retries():
                    self._start_close(request)
                self._publish_marks(self._book.take_updates())
                self._collector.collect_if_due()
            except Exception:  # never let the retry loop die
                log.exception("monitor tick failed")

    # -- membership -----------------------------------------------------------------------------

    async def track(self, position: dict[str, Any]) -> None:
        """Watch a newly opened position (its `position_view`)."""
        self._ensure_loop()
        self._book.track(position)

    async def untrack(self, position_id: str) -> None:
        """Stop watching a position (closed by hand or by us)."""
        if position_id not in self._closes:
            self._book.closed(position_id)
            self._written_at.pop(position_id, None)

    async def ping(self) -> bool:
        self._ensure_loop()
        return True

    async def pid(self) -> int:
        return os.getpid()

    async def snapshot(self) -> list[dict[str, Any]]:
        """Every watched position with its latest price, P&L and close state."""
        return self._book.snapshot()

    async def stats(self) -> dict[str, Any]:
        return {"tracked": len(self._book), "closes_sent": self.closes_sent, "close_failures": self.close_failures,
                "closes_in_flight": len(self._closes), "last_event_time_ms": self.last_event_time_ms,
                "local_channel": self._channel is not None and not self._channel.closed,
                "closes_local": self.closes_local, "local_fallbacks": self.local_fallbacks,
                "gc_automatic": gc.isenabled(), "gc_collections": list(self._collector.collections)}
