"""``MarketFeed``: one Binance combined-stream connection feeding ``MarketBuffers``.

Plain asyncio, so a Ray actor can hold it: ``await feed.run()`` until ``feed.stop()``.  Each
session connects to ``{stream_url}/stream?streams=...``, stashes incoming frames while it
backfills every buffer over REST (``GET {api_url}/api/v3/klines``), then applies the stash, so
a candle closing during the backfill is neither lost nor duplicated.  Sessions end on a closed
socket, a malformed frame, ``serverShutdown`` or the 24-hour renewal; the feed then reconnects
(with backoff after failures) and backfills again.  Events go to a bounded drop-oldest queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

import httpx
import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, WebSocketException

from aitrader.intervals import interval_ms
from aitrader.market.buffers import MarketBuffers
from aitrader.market.candles import DEFAULT_CAPACITY, Applied
from aitrader.market.errors import MarketDataError, StreamLimitError
from aitrader.market.event_queue import DropOldestQueue
from aitrader.market.events import (
    Backfilled,
    CandleClosed,
    Connected,
    Disconnected,
    FeedHealth,
    GapDetected,
    MarketEvent,
    PriceUpdated,
    SubscriptionRejected,
)
from aitrader.market.pacing import Backoff, TokenBucket
from aitrader.market.rest import fetch_klines
from aitrader.market.stats import LatencyWindow, Staleness
from aitrader.market.tasks import supervise
from aitrader.market.wire import (
    WS_DECODER,
    Kline,
    KlineEvent,
    ServerShutdown,
    TickerEvent,
    WsMessage,
    decode_ws_message,
    kline_stream,
    malformed,
    ticker_stream,
)

#: Binance's hard limit of streams on one connection.
BINANCE_MAX_STREAMS = 1024
#: Streams per SUBSCRIBE/UNSUBSCRIBE message.
_STREAMS_PER_REQUEST = 100


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """Where and how a ``MarketFeed`` connects; point the URLs at Binance or the local exchange."""

    stream_url: str = "wss://stream.binance.com:9443"
    api_url: str = "https://api.binance.com"
    intervals: tuple[str, ...] = ("1m",)
    capacity: int = DEFAULT_CAPACITY
    max_streams: int = BINANCE_MAX_STREAMS
    #: SUBSCRIBE/UNSUBSCRIBE messages per second, with a burst of one: at most rate + 1 in any
    #: second.  Binance allows 5 incoming messages per second per connection *including*
    #: ping/pong frames, so 3 (at most 4 in any second) leaves room for keepalive.
    control_rate_per_s: float = 3.0
    #: Frames websockets may queue before it stops reading the socket (pings still get answered
    #: while the reader keeps up; a deeper queue absorbs bursts).
    max_queue: int = 1024
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 20.0
    open_timeout_s: float = 10.0
    #: Binance cuts connections at 24 h; renew a little before.
    max_connection_age_s: float = 23 * 3600 + 50 * 60
    price_flush_s: float = 0.1
    event_queue_size: int = 10_000
    max_stashed_frames: int = 200_000
    backfill_concurrency: int = 4
    http_timeout_s: float = 10.0
    subscribe_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for interval in self.intervals:
            interval_ms(interval)  # raises ValueError naming the valid intervals


class _SessionEnded(Exception):
    """A session ended on purpose (stop, renewal, server shutdown)."""

    def __init__(self, reason: str, reconnect_now: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reconnect_now = reconnect_now


Sleep = Callable[[float], Awaitable[None]]


class MarketFeed:
    """Keeps ``buffers`` current from one stream connection for a set of symbols."""

    def __init__(
        self,
        config: FeedConfig,
        symbols: Iterable[str] = (),
        *,
        buffers: MarketBuffers | None = None,
        clock: Callable[[], float] = time.time,
        backoff: Backoff | None = None,
        control_bucket: TokenBucket | None = None,
        pace_sleep: Sleep = asyncio.sleep,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.config = config
        self.buffers = buffers if buffers is not None else MarketBuffers(config.capacity)
        self.events: DropOldestQueue[MarketEvent] = DropOldestQueue(config.event_queue_size)
        self._clock = clock
        self._backoff = backoff if backoff is not None else Backoff()
        self._bucket = control_bucket or TokenBucket(config.control_rate_per_s, 1)
        self._pace_sleep = pace_sleep
        self._http = http
        self._symbols: dict[str, None] = {}
        self._latency = LatencyWindow()
        self._staleness = Staleness()
        self._last_seen = self._staleness.last_seen  # written on every message (hot path)
        self._pending_prices: dict[str, TickerEvent] = {}
        self._stash: list[bytes] | None = None
        self._control: asyncio.Queue[tuple[str, list[str], list[tuple[str, str]]]] = asyncio.Queue()
        self._repairs: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._replies: dict[int, asyncio.Future[WsMessage]] = {}
        self._next_id = 1
        self._stopping = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._connections = 0
        self._gaps = 0
        self._last_message_at: float | None = None
        self.add_symbols(symbols)

    # -- public API --------------------------------------------------------------------------

    @property
    def symbols(self) -> list[str]:
        """Symbols this feed follows."""
        return list(self._symbols)

    def streams(self) -> list[str]:
        """Stream names for the followed symbols: one kline stream per interval and a ticker."""
        return [name for symbol in self._symbols for name in self._streams_of(symbol)]

    def add_symbols(self, symbols: Iterable[str]) -> list[str]:
        """Follow more symbols (subscribing at once when connected); returns the new ones."""
        added = [s.upper() for s in dict.fromkeys(symbols) if s.upper() not in self._symbols]
        per_symbol = len(self.config.intervals) + 1
        total = (len(self._symbols) + len(added)) * per_symbol
        limit = min(self.config.max_streams, BINANCE_MAX_STREAMS)
        if total > limit:
            raise StreamLimitError(
                f"{len(self._symbols) + len(added)} symbols need {total} streams but one connection "
                f"carries at most {limit}; shard the symbols over more feeds"
            )
        now = self._clock()
        for symbol in added:
            self._symbols[symbol] = None
            self.buffers.add(symbol, self.config.intervals)
            self._staleness.track(symbol, now)
        if added and self._ws is not None:
            keys = [(s, i) for s in added for i in self.config.intervals]
            self._control.put_nowait(("SUBSCRIBE", [n for s in added for n in self._streams_of(s)], keys))
        return added

    def remove_symbols(self, symbols: Iterable[str]) -> list[str]:
        """Stop following symbols and forget their candles; returns the removed ones."""
        removed = [s.upper() for s in dict.fromkeys(symbols) if s.upper() in self._symbols]
        for symbol in removed:
            del self._symbols[symbol]
            self.buffers.remove(symbol)
            self._staleness.forget(symbol)
            self._pending_prices.pop(symbol, None)
        if removed and self._ws is not None:
            self._control.put_nowait(("UNSUBSCRIBE", [n for s in removed for n in self._streams_of(s)], []))
        return removed

    def stop(self) -> None:
        """Ask ``run`` to close the connection and return."""
        self._stopping.set()

    @property
    def connected(self) -> bool:
        """Whether a stream connection is open."""
        return self._ws is not None

    def latency_ms(self, q: float) -> float | None:
        """``q``-th percentile of exchange event time to receipt over the recent window (ms)."""
        return self._latency.percentile(q)

    def stale_symbols(self, threshold_s: float) -> list[str]:
        """Followed symbols with no message for more than ``threshold_s`` seconds."""
        return self._staleness.stale(threshold_s, self._clock())

    def is_stale(self, symbol: str, threshold_s: float) -> bool:
        """Whether ``symbol`` has been silent for more than ``threshold_s`` (or is not followed)."""
        age = self._staleness.age(symbol.upper(), self._clock())
        return age is None or age > threshold_s

    def health(self, stale_after_s: float = 60.0) -> FeedHealth:
        """A small health snapshot."""
        now = self._clock()
        return FeedHealth(
            connected=self._ws is not None,
            reconnects=max(0, self._connections - 1),
            gaps=self._gaps,
            last_message_age_s=None if self._last_message_at is None else now - self._last_message_at,
            latency_p50_ms=self._latency.percentile(50),
            latency_p99_ms=self._latency.percentile(99),
            dropped_events=self.events.dropped,
            streams=len(self._symbols) * (len(self.config.intervals) + 1),
            stale_symbols=len(self._staleness.stale(stale_after_s, now)),
        )

    async def run(self) -> None:
        """Connect, backfill and stream until ``stop``; reconnects after every failure.

        ``MarketDataError`` from corrupt frames or failed backfills ends the session (never
        patched over) and the feed reconnects and backfills again.
        """
        own_http = self._http is None
        http = self._http or httpx.AsyncClient(timeout=self.config.http_timeout_s)
        try:
            while not self._stopping.is_set():
                reconnect_now = False
                try:
                    await self._session(http)
                    reason = "stopped"
                except _SessionEnded as ended:
                    reason, reconnect_now = ended.reason, ended.reconnect_now
                except (OSError, TimeoutError, WebSocketException, httpx.HTTPError, MarketDataError) as exc:
                    reason = _describe(exc)
                self.events.put(Disconnected(reason))
                if self._stopping.is_set():
                    break
                delay = 0.0 if reconnect_now else self._backoff.next_delay()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
        finally:
            self._stopping.clear()
            if own_http:
                await http.aclose()

    # -- session -----------------------------------------------------------------------------

    async def _session(self, http: httpx.AsyncClient) -> None:
        streams = self.streams()
        url = f"{self.config.stream_url}/stream"
        if streams:
            url += "?streams=" + "/".join(streams)
        async with connect(
            url,
            ping_interval=self.config.ping_interval_s,
            ping_timeout=self.config.ping_timeout_s,
            open_timeout=self.config.open_timeout_s,
            close_timeout=2,
            max_size=2**22,
            max_queue=self.config.max_queue,
        ) as ws:
            self._stash = []
            self._control = asyncio.Queue()
            self._repairs = asyncio.Queue()
            self._ws = ws
            self._connections += 1
            self._backoff.connected()
            self.events.put(Connected(url, len(streams)))
            self._reconcile(streams)
            try:
                await supervise(
                    terminal=[self.read(ws), self._wait_for_stop(), self._renew_after_max_age()],
                    helpers=[self._initial_backfill(http), self._send_control(ws, http),
                             self._repair_gaps(http), self._flush_prices()],
                )
            finally:
                self._ws = None
                self._stash = None
                for reply in self._replies.values():
                    reply.cancel()
                self._replies.clear()

    async def read(self, ws: ClientConnection) -> None:
        """The session's reader: apply every frame (stashed while a backfill runs) until ``ws`` closes."""
        max_stashed = self.config.max_stashed_frames
        recv, on_message = ws.recv, self.on_message
        while True:
            raw = await recv(decode=False)
            stash = self._stash
            if stash is None:
                on_message(raw)
            elif len(stash) < max_stashed:
                stash.append(raw)
            else:
                raise MarketDataError(
                    f"more than {max_stashed} frames arrived during the backfill; the REST endpoint "
                    "is too slow for this many streams: shard the symbols over more feeds"
                )

    async def _wait_for_stop(self) -> None:
        await self._stopping.wait()

    async def _renew_after_max_age(self) -> None:
        await asyncio.sleep(self.config.max_connection_age_s)
        raise _SessionEnded("renewing the connection before the exchange's 24-hour cut", reconnect_now=True)

    async def _initial_backfill(self, http: httpx.AsyncClient) -> None:
        keys = [(s, i) for s in self._symbols for i in self.config.intervals]
        await self._backfill(http, keys)
        stash, self._stash = self._stash or [], None
        for raw in stash:
            self.on_message(raw)

    async def _backfill(self, http: httpx.AsyncClient, keys: list[tuple[str, str]]) -> None:
        limiter = asyncio.Semaphore(self.config.backfill_concurrency)

        async def one(symbol: str, interval: str) -> None:
            async with limiter:
                rows = await fetch_klines(http, self.config.api_url, symbol, interval, self.config.capacity + 1)
            if symbol not in self._symbols:
                return
            result = self.buffers.backfill(symbol, interval, rows, int(self._clock() * 1000))
            self.events.put(Backfilled(symbol, interval, result.new_candles))
            for first, last in result.remaining_gaps:
                self._gaps += 1
                self.events.put(GapDetected(symbol, interval, first, last))

        await asyncio.gather(*(one(symbol, interval) for symbol, interval in keys))

    async def _send_control(self, ws: ClientConnection, http: httpx.AsyncClient) -> None:
        while True:
            method, streams, keys = await self._control.get()
            for start in range(0, len(streams), _STREAMS_PER_REQUEST):
                reply = await self._request(ws, method, streams[start : start + _STREAMS_PER_REQUEST])
                if reply.code is not None:
                    self.events.put(SubscriptionRejected(reply.id, reply.code, reply.msg or ""))
            if keys:
                await self._backfill(http, [key for key in keys if key[0] in self._symbols])

    async def _request(self, ws: ClientConnection, method: str, params: list[str]) -> WsMessage:
        while (wait := self._bucket.wait_time()) > 0:
            await self._pace_sleep(wait)
        self._bucket.try_acquire()
        request_id, self._next_id = self._next_id, self._next_id + 1
        reply: asyncio.Future[WsMessage] = asyncio.get_running_loop().create_future()
        self._replies[request_id] = reply
        try:
            await ws.send(msgspec.json.encode({"method": method, "params": params, "id": request_id}).decode())
            return await asyncio.wait_for(reply, self.config.subscribe_timeout_s)
        finally:
            self._replies.pop(request_id, None)

    async def _repair_gaps(self, http: httpx.AsyncClient) -> None:
        while True:
            key = await self._repairs.get()
            if key[0] in self._symbols:
                await self._backfill(http, [key])

    async def _flush_prices(self) -> None:
        while True:
            await asyncio.sleep(self.config.price_flush_s)
            if self._pending_prices:
                pending, self._pending_prices = self._pending_prices, {}
                for symbol, ticker in pending.items():
                    self.events.put(PriceUpdated(symbol, Decimal(ticker.last_price), ticker.event_time))

    # -- hot path ----------------------------------------------------------------------------

    def on_message(self, raw: bytes | str) -> None:
        """Decode one stream message and apply it; ``MalformedFrameError`` on corrupt data."""
        try:
            message = WS_DECODER.decode(raw)
        except msgspec.DecodeError as exc:
            raise malformed("stream message", raw, exc) from exc
        data = message.data
        now = self._clock()
        self._last_message_at = now
        if type(data) is KlineEvent:
            self._latency.record(now * 1000.0 - data.event_time)
            self._last_seen[data.symbol] = now
            kline = data.kline
            applied = self.buffers.apply_kline(kline)
            if applied is None or applied is Applied.IGNORED:
                return
            self._on_closed(kline, applied)
        elif type(data) is TickerEvent:
            self._latency.record(now * 1000.0 - data.event_time)
            self._last_seen[data.symbol] = now
            if data.symbol in self._symbols:
                self.buffers.update_ticker(data)
                self._pending_prices[data.symbol] = data
        elif type(data) is ServerShutdown:
            raise _SessionEnded("the exchange announced a server shutdown", reconnect_now=True)
        elif data is None:
            decode_ws_message(raw)  # raises when the message is neither a reply nor an error
            self._on_reply(message)

    def _on_closed(self, kline: Kline, applied: Applied) -> None:
        """Events for a closed kline the buffer took (appended after a gap, appended, or replaced)."""
        if applied is Applied.GAP:
            buffer = self.buffers.buffer(kline.symbol, kline.interval)
            if buffer.last_gap is not None:
                self._gaps += 1
                self.events.put(GapDetected(kline.symbol, kline.interval, *buffer.last_gap))
                self._repairs.put_nowait((kline.symbol, kline.interval))
        if applied is not Applied.REPLACED:
            self.events.put(CandleClosed(
                kline.symbol, kline.interval, kline.open_time, kline.close_time, Decimal(kline.open),
                Decimal(kline.high), Decimal(kline.low), Decimal(kline.close), Decimal(kline.volume),
            ))

    def _on_reply(self, message: WsMessage) -> None:
        reply = self._replies.get(message.id) if isinstance(message.id, int) else None
        if reply is not None and not reply.done():
            reply.set_result(message)
        elif message.code is not None:
            self.events.put(SubscriptionRejected(message.id, message.code, message.msg or ""))

    def _reconcile(self, connected_with: list[str]) -> None:
        """Queue (UN)SUBSCRIBE for symbols added or removed while the connection was opening."""
        subscribed = set(connected_with)
        wanted = set(self.streams())
        added = [s for s in self._symbols if not set(self._streams_of(s)) <= subscribed]
        if added:
            keys = [(s, i) for s in added for i in self.config.intervals]
            self._control.put_nowait(("SUBSCRIBE", [n for s in added for n in self._streams_of(s)], keys))
        if stale := sorted(subscribed - wanted):
            self._control.put_nowait(("UNSUBSCRIBE", stale, []))

    def _streams_of(self, symbol: str) -> list[str]:
        return [kline_stream(symbol, i) for i in self.config.intervals] + [ticker_stream(symbol)]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, InvalidHandshake):
        return f"connect rejected: {exc}"
    if isinstance(exc, WebSocketException):
        return f"connection lost: {exc}"
    if isinstance(exc, OSError | TimeoutError):
        return f"connect failed: {exc or type(exc).__name__}"
    if isinstance(exc, httpx.HTTPError):
        return f"backfill request failed: {exc or type(exc).__name__}"
    return str(exc)
