"""One event pump per replica: long-polls the EventHub, updates `ReplicaState`, fans out to `/ws`.

Each WebSocket client has a bounded queue; the pump only ever does ``put_nowait``, so a client
that cannot keep up is closed (1013, with a reason) instead of slowing anyone else down.
Resuming by ``seq`` reads the backlog straight from the hub, then joins the live stream; a
client that fell off the hub's ring is told to ``resync``.

Seqs are only comparable within one run of the hub: ``subscribed`` carries the hub's ``run_id``,
a client resuming with the ``run_id`` of another run is told to ``resync`` (no replay), and when
the pump sees the hub answer with a new run id (the engine or just the hub restarted) it starts
over in the new series, refreshes the replica state and tells every client to ``resync``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from aitrader.events import CHANNELS, Event
from serve.backend import EngineBackend
from serve.metrics import ApiMetrics
from serve.state import ReplicaState

log = logging.getLogger("aitrader.serve.ws")

BACKLOG_LIMIT = 1000
_encode = msgspec.json.Encoder(decimal_format="string").encode


def encode(message: dict[str, Any]) -> str:
    return _encode(message).decode()


class Subscriber:
    """One WebSocket client: its channels, its bounded queue and the last seq it was sent."""

    def __init__(self, send_text: Callable[[str], Awaitable[None]], close: Callable[[int, str], Awaitable[None]],
                 queue_size: int) -> None:
        self.send_text = send_text
        self.close = close
        self.channels: set[str] = set()
        self.queue: asyncio.Queue[tuple[int, str, str]] = asyncio.Queue(maxsize=queue_size)
        self.cursor = -1
        self.lock = asyncio.Lock()
        self.closed = False
        self.sender: asyncio.Task[None] | None = None

    def offer(self, seq: int, channel: str, text: str) -> bool:
        """Queue an event if this client wants its channel; False if the queue is full."""
        if channel not in self.channels:
            return True
        try:
            self.queue.put_nowait((seq, channel, text))
        except asyncio.QueueFull:
            return False
        return True

    async def send(self, message: dict[str, Any]) -> None:
        async with self.lock:
            await self.send_text(encode(message))

    async def run_sender(self) -> None:
        """Send queued events in order, skipping ones already sent by a backlog read."""
        while True:
            seq, channel, text = await self.queue.get()
            async with self.lock:
                if seq > self.cursor and channel in self.channels:
                    await self.send_text(text)
                    self.cursor = seq


class EventFanout:
    """The replica's single reader of the EventHub and its WebSocket clients."""

    def __init__(
        self,
        backend: EngineBackend,
        state: ReplicaState,
        metrics: ApiMetrics,
        *,
        poll_timeout_s: float = 10.0,
        queue_size: int = 1000,
        on_fell_off: Callable[[], None] | None = None,
    ) -> None:
        self.backend = backend
        self.state = state
        self.metrics = metrics
        self.poll_timeout_s = poll_timeout_s
        self.queue_size = queue_size
        self.on_fell_off = on_fell_off
        self.seq: int | None = None
        self.run_id: str | None = None
        self.subscribers: set[Subscriber] = set()

    # ---- the pump ---------------------------------------------------------------------------
    async def run(self) -> None:
        """Long-poll the hub forever; errors back off and retry, never end the loop."""
        delay = 0.1
        while True:
            try:
                if self.seq is None:
                    self.seq = await self.backend.last_seq()
                batch = await self.backend.events_since(self.seq, None, self.poll_timeout_s, BACKLOG_LIMIT)
                delay = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # hub restarting or unreachable: keep trying
                log.warning("event hub read failed (%s); retrying in %.1f s", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if batch.run_id and batch.run_id != self.run_id:
                known, self.run_id = self.run_id, batch.run_id
                if known is not None:  # a new seq series: read it from its start, not after our seq
                    log.warning("the event hub started a new run (%s, was %s)", batch.run_id, known)
                    self._fell_off(batch.oldest_seq, "the engine's event hub restarted")
                    self.seq = batch.oldest_seq - 1
                    continue
            if batch.fell_off:
                self._fell_off(batch.oldest_seq, "the API fell behind the engine")
            for event in batch.events:
                self.dispatch(event)
            self.seq = batch.last_seq

    def dispatch(self, event: Event) -> None:
        """Apply one event to the state and queue it for every subscribed client."""
        self.state.apply(event)
        if event.type == "engine":
            self.metrics.engine_status(event.data)
        elif event.type == "order_update":
            self.metrics.order_event(event.data)
        text = encode(event.to_message())
        for sub in list(self.subscribers):
            if not sub.offer(event.seq, event.channel, text):
                self.evict(sub, 1013, f"client too slow: more than {self.queue_size} events pending; "
                                      "reconnect and resume with since=<last seq>")

    def _fell_off(self, oldest: int, reason: str) -> None:
        log.warning("%s; telling clients to resync", reason)
        if self.on_fell_off is not None:
            self.on_fell_off()
        for sub in list(self.subscribers):
            sub.cursor = oldest - 1
            asyncio.get_running_loop().create_task(self._try_send(sub, _resync(reason, self.run_id)))

    # ---- clients ----------------------------------------------------------------------------
    def attach(self, sub: Subscriber) -> None:
        self.subscribers.add(sub)
        sub.sender = asyncio.get_running_loop().create_task(self._guarded_sender(sub))
        self.metrics.ws_clients.set(len(self.subscribers))

    def detach(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        if sub.sender is not None:
            sub.sender.cancel()
        self.metrics.ws_clients.set(len(self.subscribers))

    def evict(self, sub: Subscriber, code: int, reason: str) -> None:
        if sub.closed:
            return
        sub.closed = True
        self.detach(sub)
        self.metrics.ws_slow_closes.inc()
        asyncio.get_running_loop().create_task(self._close(sub, code, reason))

    async def _close(self, sub: Subscriber, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await sub.close(code, reason)

    async def _try_send(self, sub: Subscriber, message: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):
            await sub.send(message)

    async def _guarded_sender(self, sub: Subscriber) -> None:
        try:
            await sub.run_sender()
        except asyncio.CancelledError:
            raise
        except Exception:  # the socket went away; the receive loop will notice and detach
            self.subscribers.discard(sub)

    async def subscribe(self, sub: Subscriber, channels: frozenset[str], since: int | None,
                        run_id: str | None = None) -> None:
        """Add channels, confirm, then replay the backlog after ``since`` (or tell the client to resync).

        ``run_id`` is the hub run ``since`` belongs to (from an earlier ``subscribed``); from
        another run nothing is replayed: the client is told to resync.
        """
        async with sub.lock:
            sub.channels |= channels or CHANNELS
            last = self.seq if self.seq is not None else await self.backend.last_seq()
            run = await self._current_run(last)
            await sub.send_text(encode({"type": "subscribed", "data": {"channels": sorted(sub.channels)},
                                        "last_seq": last, "run_id": run}))
            if since is None:
                return
            if run_id is not None and run_id != run:
                sub.cursor = max(sub.cursor, last)
                await sub.send_text(encode(_resync(f"seq {since} is from another engine run ({run_id}, this is "
                                                   f"{run}); re-fetch the snapshot", run)))
                return
            await self._replay(sub, since)

    async def _current_run(self, seq: int) -> str:
        """The hub's run id: the pump's, or asked of the hub before the pump's first read."""
        if self.run_id is not None:
            return self.run_id
        return (await self.backend.events_since(seq, [], 0.0, 1)).run_id

    async def unsubscribe(self, sub: Subscriber, channels: frozenset[str]) -> None:
        async with sub.lock:
            sub.channels -= channels or CHANNELS
            await sub.send_text(encode({"type": "unsubscribed", "data": {"channels": sorted(sub.channels)}}))

    async def _replay(self, sub: Subscriber, since: int) -> None:
        seq = since
        while True:
            batch = await self.backend.events_since(seq, sorted(sub.channels), 0.0, BACKLOG_LIMIT)
            if batch.fell_off or since > batch.last_seq:
                sub.cursor = batch.last_seq
                reason = (f"events after seq {since} are no longer kept (oldest is {batch.oldest_seq})"
                          if batch.fell_off else f"seq {since} is from an earlier engine run")
                await sub.send_text(encode(_resync(reason + "; re-fetch the snapshot", batch.run_id)))
                return
            for event in batch.events:
                if event.seq > sub.cursor:
                    await sub.send_text(encode(event.to_message()))
            sub.cursor = max(sub.cursor, batch.last_seq)
            if len(batch.events) < BACKLOG_LIMIT:
                return
            seq = batch.last_seq


def _resync(reason: str, run_id: str | None) -> dict[str, Any]:
    return {"type": "resync", "data": {"reason": reason, "run_id": run_id}}
