"""StreamShard actor: one Binance stream connection for a shard of symbols.

It holds a `MarketFeed` (the core does the protocol, buffers, reconnects and backfills) and
fans the feed's events out without ever blocking its socket reader: candle closes to the
scheduler, prices to the monitor and executor, tickers and feed health to the event hub.
A candle-close notice carries references to the shard's frames of the closed intervals, put
in the object store right then, so the checks it triggers need no request back to the shard.

The feed client (httpx, websockets, numpy buffers) is imported by the shard itself, not by this
module: Ray imports an actor's module in every process that receives a handle to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from typing import TYPE_CHECKING, Any

import ray

from aitrader.market.events import (
    Backfilled,
    CandleClosed,
    Connected,
    Disconnected,
    GapDetected,
    PriceUpdated,
)

if TYPE_CHECKING:
    from actors.price_push import PricePush
    from aitrader.market import MarketFrame

log = logging.getLogger("aitrader.stream")

TICKER_PUBLISH_INTERVAL_S = 1.0


def shard_symbols(symbols: list[str], shards: int) -> list[list[str]]:
    """Split symbols round-robin over ``shards`` shards (deterministic, balanced)."""
    buckets: list[list[str]] = [[] for _ in range(max(1, shards))]
    for index, symbol in enumerate(dict.fromkeys(symbols)):
        buckets[index % len(buckets)].append(symbol)
    return buckets


@ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0, max_concurrency=100)
class StreamShard:
    """Keeps candle buffers and tickers for its symbols current, and pushes events out."""

    def __init__(
        self,
        shard_id: int,
        stream_url: str,
        api_url: str,
        symbols: list[str],
        intervals: list[str],
        events: Any = None,
        capacity: int = 250,
    ) -> None:
        from aitrader.market.feed import FeedConfig, MarketFeed

        self.shard_id = shard_id
        self.feed = MarketFeed(
            FeedConfig(stream_url=stream_url, api_url=api_url, intervals=tuple(intervals), capacity=capacity),
            symbols,
        )
        self._events = events
        self._scheduler: Any = None
        self._price_subscribers: list[PricePush] = []
        self._tickers_due: set[str] = set()
        self._last_ticker_publish = 0.0
        self._counters: dict[str, float] = {"candles_closed": 0, "gaps": 0, "backfilled": 0, "disconnects": 0,
                                            "frames_pushed": 0, "frame_push_ms_total": 0.0, "frame_push_ms_max": 0.0}
        self._tasks: list[asyncio.Task[Any]] = []

    async def start(self) -> bool:
        """Start streaming (idempotent); returns once the tasks are running."""
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks = [loop.create_task(self.feed.run()), loop.create_task(self._dispatch())]
            # What start-up built lives for good: keep it out of full collections (which walk every
            # object the process holds), as the scheduler and the filter workers do. Only the young
            # generations are collected first: a full collection here freed 31 objects for ~0.1 CPU-s.
            gc.collect(1)
            gc.freeze()
        return True

    async def ping(self) -> int:
        return self.shard_id

    async def pid(self) -> int:
        return os.getpid()

    async def subscribe(self, scheduler: Any = None, price_subscribers: list[Any] | None = None) -> None:
        """Set who hears candle closes (the scheduler) and prices (monitor, executor)."""
        if scheduler is not None:
            self._scheduler = scheduler
        if price_subscribers is not None:
            from actors.price_push import PricePush

            for old in self._price_subscribers:
                old.close()
            self._price_subscribers = [PricePush(handle) for handle in price_subscribers]

    async def add_symbols(self, symbols: list[str]) -> list[str]:
        return self.feed.add_symbols(symbols)

    async def remove_symbols(self, symbols: list[str]) -> list[str]:
        return self.feed.remove_symbols(symbols)

    async def symbols(self) -> list[str]:
        return self.feed.symbols

    async def frame(self, interval: str, symbols: list[str] | None = None, include_open: bool = False) -> MarketFrame:
        """Candles of ``interval`` as symbols x bars numpy arrays (travels through the object store)."""
        mine = [s for s in symbols if s in set(self.feed.symbols)] if symbols is not None else None
        return self.feed.buffers.frame(interval, mine, include_open)

    async def announce_closes(self, closed: list[tuple[str, str, int]]) -> bool:
        """Send the scheduler these candle closes, with frames, as if the feed had reported them
        (benchmarks replay closes through it); False when no scheduler has subscribed."""
        if self._scheduler is None:
            return False
        self._notify_closed(closed)
        return True

    async def candles(self, symbol: str, interval: str) -> dict[str, Any]:
        """The closed candles of one buffer: open times and OHLCV rows, oldest first."""
        buffer = self.feed.buffers.get(symbol, interval)
        if buffer is None:
            return {"open_times": [], "values": []}
        return {"open_times": [int(t) for t in buffer.open_times], "values": buffer.values()[:5].T.tolist()}

    async def tickers(self) -> dict[str, dict[str, Any]]:
        return {symbol: _ticker_json(snapshot) for symbol, snapshot in self.feed.buffers.tickers().items()}

    async def markets(self, interval: str, bars: int) -> list[dict[str, Any]]:
        """The Markets panel's rows of this shard's symbols, by symbol: ticker and the last ``bars`` closes
        of ``interval``, as plain numbers (the supervisor asks every few seconds: no frame crosses, and
        the supervisor loads no numpy)."""
        rows: list[dict[str, Any]] = []
        for symbol, snapshot in sorted(self.feed.buffers.tickers().items()):
            ticker = _ticker_json(snapshot)
            buffer = self.feed.buffers.get(symbol, interval)
            closes = [] if buffer is None else buffer.column("close")[-bars:].tolist()
            rows.append({**{key: ticker[key] for key in ("symbol", "price", "change24h", "volume24h")},
                         "sparkline": [round(value, 8) for value in closes if value == value]})
        return rows

    async def health(self, stale_after_s: float = 90.0) -> dict[str, Any]:
        health = self.feed.health(stale_after_s)
        return {
            "shard": self.shard_id,
            "connected": health.connected,
            "reconnects": health.reconnects,
            "gaps": health.gaps,
            "last_message_age_s": health.last_message_age_s,
            # Against a sped-up local exchange, event times run ahead of the wall clock: a
            # negative "latency" means nothing, so report none rather than a wrong number.
            "latency_p50_ms": _latency(health.latency_p50_ms),
            "latency_p99_ms": _latency(health.latency_p99_ms),
            "dropped_events": health.dropped_events,
            "streams": health.streams,
            "stale_symbols": self.feed.stale_symbols(stale_after_s),
            "symbols": self.feed.symbols,
            **self._counters,
            # price pushes that went over a subscriber's local socket, and those resent by Ray
            "prices_local": sum(p.local for p in self._price_subscribers),
            "prices_resent": sum(p.resent for p in self._price_subscribers),
        }

    async def stop(self) -> None:
        self.feed.stop()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    # -- fan-out ------------------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while True:
            first = await self.feed.events.get()
            batch = [first, *self.feed.events.drain()]
            try:
                self._fan_out(batch)
            except Exception:
                log.exception("shard %d: failed to dispatch %d feed events", self.shard_id, len(batch))
            await asyncio.sleep(0)

    def _fan_out(self, batch: list[Any]) -> None:
        closed: list[tuple[str, str, int]] = []
        prices: dict[str, str] = {}
        event_time = 0
        hub: list[tuple[str, str, dict[str, Any]]] = []
        for event in batch:
            if isinstance(event, PriceUpdated):
                prices[event.symbol] = str(event.price)
                event_time = max(event_time, event.event_time)
                self._tickers_due.add(event.symbol)
            elif isinstance(event, CandleClosed):
                closed.append((event.symbol, event.interval, event.open_time))
                self._counters["candles_closed"] += 1
            elif isinstance(event, GapDetected):
                self._counters["gaps"] += 1
                hub.append(_log("WARNING", f"gap in {event.symbol} {event.interval} candles "
                                f"{event.from_open_time}..{event.to_open_time}; backfilling"))
            elif isinstance(event, Backfilled):
                self._counters["backfilled"] += event.candles
            elif isinstance(event, Connected):
                hub.append(_log("INFO", f"shard {self.shard_id} connected to {event.url} ({event.streams} streams)"))
            elif isinstance(event, Disconnected):
                self._counters["disconnects"] += 1
                hub.append(_log("WARNING", f"shard {self.shard_id} disconnected: {event.reason}; reconnecting"))
        if closed and self._scheduler is not None:
            self._notify_closed(closed)
        if prices:
            for subscriber in self._price_subscribers:
                subscriber.send(prices, event_time)
        now = time.monotonic()
        if self._events is None:
            self._tickers_due.clear()
        elif self._tickers_due and now - self._last_ticker_publish >= TICKER_PUBLISH_INTERVAL_S:
            tickers = self.feed.buffers.tickers()
            for symbol in sorted(self._tickers_due):
                if (snapshot := tickers.get(symbol)) is not None:
                    hub.append(("tickers", "ticker_update", _ticker_json(snapshot)))
            self._tickers_due.clear()
            self._last_ticker_publish = now
        if hub and self._events is not None:
            self._events.publish_many.remote(hub)

    def _notify_closed(self, closed: list[tuple[str, str, int]]) -> None:
        noticed_s = time.time()  # check latency starts here, before the frames are built and sent
        started = time.perf_counter()
        frames: dict[str, Any] = {}
        try:
            for interval in dict.fromkeys(interval for _, interval, _ in closed):
                frames[interval] = ray.put(self.feed.buffers.frame(interval))
        except Exception:  # the object store refused: the scheduler asks for frames instead
            log.exception("shard %d: could not put its frames in the object store", self.shard_id)
            frames = {}
        self._scheduler.on_candles_closed.remote(closed, frames, noticed_s)
        elapsed_ms = (time.perf_counter() - started) * 1000  # building, putting and sending: before the scheduler hears
        self._counters["frames_pushed"] += len(frames)
        self._counters["frame_push_ms_total"] += elapsed_ms
        self._counters["frame_push_ms_max"] = max(self._counters["frame_push_ms_max"], elapsed_ms)


def _latency(value: float | None) -> float | None:
    return None if value is None or value < 0 else round(value, 3)


def _ticker_json(snapshot: Any) -> dict[str, Any]:
    return {
        "symbol": snapshot.symbol,
        "price": str(snapshot.price),
        "change24h": str(snapshot.change_24h_pct),
        "volume24h": str(snapshot.volume_24h_quote),
        "time": snapshot.event_time,
    }


def _log(level: str, message: str) -> tuple[str, str, dict[str, Any]]:
    from datetime import UTC, datetime

    log.log(logging.getLevelName(level), message)
    return (
        "logs",
        "log",
        {"time": datetime.now(UTC).isoformat(), "level": level, "logger": "aitrader.stream", "message": message},
    )
