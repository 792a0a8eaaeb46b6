"""WebSocket market streams: ``/ws/<stream>`` (raw) and ``/stream?streams=a/b`` (combined frames).

Streams: ``<symbol>@ticker``, ``<symbol>@miniTicker``, ``<symbol>@kline_<interval>``. Frames are pushed
every ``push_interval`` wall seconds; when a candle closes its final ``x: true`` frame goes out before
the next candle's frames.  When replayed data ends, its last final frames go out and then nothing more.
SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS / SET_PROPERTY / GET_PROPERTY requests are answered as
Binance documents them.  ``close()`` lets the push in flight finish, then sends every client
``serverShutdown`` and closes its socket.

The pusher is stopped by a flag, never cancelled: on Python 3.11 ``asyncio.wait_for`` returns the
result and drops a cancellation that lands just after its inner send finished, so a cancelled
pusher could go on pushing and a stop that awaited it hung without telling anyone ``serverShutdown``.
Sends are bounded with ``asyncio.timeout``, which keeps cancellations intact.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from aitrader.exchange.clock import MarketClock
from aitrader.exchange.market import MarketData, align_open, next_open
from aitrader.exchange.orders import MatchingEngine
from aitrader.exchange.payloads import PayloadBuilder

log = logging.getLogger(__name__)

_MAX_FINAL_FRAMES = 10
_SEND_TIMEOUT = 5.0
_MAX_STREAMS = 1024


@dataclass(eq=False)
class Connection:
    """One client socket and its subscriptions (in subscription order)."""

    ws: web.WebSocketResponse
    combined: bool
    streams: list[str] = field(default_factory=list)
    kline_open: dict[str, int] = field(default_factory=dict)


def _error(code: int, msg: str, request_id: object) -> dict[str, object]:
    return {"code": code, "msg": msg, "id": request_id}


class StreamHub:
    """Accepts stream clients and pushes market data to them on a timer."""

    def __init__(
        self,
        market: MarketData,
        engine: MatchingEngine,
        clock: MarketClock,
        push_interval: float = 1.0,
        ping_interval: float = 20.0,
        send_timeout: float = _SEND_TIMEOUT,
    ) -> None:
        self.market = market
        self.engine = engine
        self.clock = clock
        self.payloads = PayloadBuilder(market)
        self.push_interval = push_interval
        self.ping_interval = ping_interval
        self.send_timeout = send_timeout
        self.connections: set[Connection] = set()
        self._ended_logged = False
        self._closing = asyncio.Event()
        self._pusher: asyncio.Task[None] | None = None

    def valid_stream(self, name: str) -> bool:
        """True for a stream this exchange serves."""
        symbol, _, kind = name.partition("@")
        if symbol.upper() not in self.market.specs or symbol != symbol.lower():
            return False
        return kind in ("ticker", "miniTicker") or (kind.startswith("kline_") and self.market.supports(kind[6:]))

    def routes(self) -> list[web.RouteDef]:
        """aiohttp route table."""
        return [web.get("/ws", self.handle), web.get("/ws/{streams:.*}", self.handle), web.get("/stream", self.handle)]

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """Serve one WebSocket client until it leaves, fails to pong, or the server stops."""
        ws = web.WebSocketResponse(heartbeat=self.ping_interval, autoping=True)
        await ws.prepare(request)
        combined = request.path == "/stream"
        raw = request.query.get("streams", "") if combined else request.match_info.get("streams", "")
        conn = Connection(ws, combined)
        conn.streams = [s for s in raw.split("/") if s and self.valid_stream(s)][:_MAX_STREAMS]
        if self._closing.is_set():  # came in after close() took its list of clients
            await self._say_goodbye(conn)
            return ws
        self.connections.add(conn)
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    reply = self._request(conn, message.data)
                    await ws.send_str(json.dumps(reply))
                elif message.type == WSMsgType.ERROR:
                    break
        finally:
            self.connections.discard(conn)
        return ws

    def _request(self, conn: Connection, text: str) -> dict[str, object]:
        try:
            request = json.loads(text)
        except ValueError:
            return _error(3, "Invalid JSON: expected value at line 1 column 1", None)
        if not isinstance(request, dict):
            return _error(3, "Invalid JSON: expected an object", None)
        request_id = request.get("id")
        method = request.get("method")
        params = request.get("params", [])
        if method is None:
            return _error(2, "Invalid request: missing field `method`", request_id)
        if not isinstance(params, list):
            return _error(2, "Invalid request: params must be an array", request_id)
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if any(not isinstance(p, str) for p in params):
                return _error(2, "Invalid request: stream names must be strings", request_id)
            bad = [p for p in params if not self.valid_stream(p)]
            if bad:
                return _error(2, f"Invalid request: invalid stream name {bad[0]!r}", request_id)
            if method == "SUBSCRIBE":
                conn.streams += [p for p in params if p not in conn.streams]
            else:
                conn.streams = [s for s in conn.streams if s not in params]
                for p in params:
                    conn.kline_open.pop(p, None)
            return {"result": None, "id": request_id}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": list(conn.streams), "id": request_id}
        if method == "SET_PROPERTY":
            if len(params) != 2 or params[0] != "combined":
                return _error(0, "Unknown property", request_id)
            if not isinstance(params[1], bool):
                return _error(1, "Invalid value type: expected Boolean", request_id)
            conn.combined = params[1]
            return {"result": None, "id": request_id}
        if method == "GET_PROPERTY":
            if params != ["combined"]:
                return _error(0, "Unknown property", request_id)
            return {"result": conn.combined, "id": request_id}
        return _error(
            2,
            f"Invalid request: unknown variant `{method}`, expected one of `SUBSCRIBE`, `UNSUBSCRIBE`, "
            "`LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`",
            request_id,
        )

    # -- pushing ---------------------------------------------------------------------------------
    def frames_for(self, conn: Connection, stream: str, now_ms: int, cache: dict[object, object]) -> list[object]:
        """Payloads due on ``stream`` for ``conn`` now (final kline frames first)."""
        symbol_lower, _, kind = stream.partition("@")
        symbol = symbol_lower.upper()
        ended = self.market.ended(symbol, now_ms)
        if kind in ("ticker", "miniTicker"):
            if ended:
                return []
            key: object = (symbol, kind)
            if key not in cache:
                builder = self.payloads.ticker_event if kind == "ticker" else self.payloads.mini_ticker_event
                cache[key] = builder(symbol, now_ms)
            return [cache[key]]
        interval = kind[6:]
        current = align_open(now_ms, interval)
        opens: list[int] = []
        last = conn.kline_open.get(stream)
        if last is not None and last < current:
            t = last
            while t < current and not self.market.ended(symbol, t):
                opens.append(t)
                t = next_open(t, interval)
            opens = opens[-_MAX_FINAL_FRAMES:]
        if not ended:
            opens.append(current)  # once the data has ended only final frames still go out
        conn.kline_open[stream] = current
        frames = []
        for open_ms in opens:
            key = (symbol, interval, open_ms)
            if key not in cache:
                candle = self.market.candle(symbol, interval, open_ms, now_ms)
                cache[key] = None if candle is None else self.payloads.kline_event(candle, now_ms)
            if cache[key] is not None:
                frames.append(cache[key])
        return frames

    async def push_once(self) -> None:
        """Send every connection its due frames (stops between frames once ``close()`` is called)."""
        now = self.clock.now_ms()
        if not self._ended_logged and all(self.market.ended(s, now) for s in self.market.symbols):
            self._ended_logged = True
            log.warning("replay finished: the last recorded candle has closed; streams stay open but send nothing more")
        self.engine.match_resting()
        cache: dict[object, object] = {}
        for conn in list(self.connections):
            texts = []
            for stream in list(conn.streams):
                for payload in self.frames_for(conn, stream, now, cache):
                    frame = {"stream": stream, "data": payload} if conn.combined else payload
                    texts.append(json.dumps(frame))
            try:
                for text in texts:
                    if self._closing.is_set():
                        return
                    async with asyncio.timeout(self.send_timeout):
                        await conn.ws.send_str(text)
            except (ConnectionError, TimeoutError, RuntimeError):
                self.connections.discard(conn)
                await self._close_socket(conn)

    async def run(self) -> None:
        """Push every ``push_interval`` seconds until ``close()`` is called."""
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.push_interval):
                    await self._closing.wait()
            if not self._closing.is_set():
                await self.push_once()

    def start(self) -> None:
        """Start pushing in a task on the running loop."""
        self._pusher = asyncio.create_task(self.run(), name="stream-pusher")

    async def close(self) -> None:
        """Stop pushing once the frame in flight is sent, then ``serverShutdown`` and close every client."""
        self._closing.set()
        if self._pusher is not None:
            await self._pusher
            self._pusher = None
        clients = list(self.connections)
        self.connections.clear()
        await asyncio.gather(*(self._say_goodbye(conn) for conn in clients))

    async def _say_goodbye(self, conn: Connection) -> None:
        """Send ``serverShutdown``, then close the socket whether or not the send went out."""
        event = {"e": "serverShutdown", "E": self.clock.now_ms()}
        frame = {"stream": "!serverShutdown", "data": event} if conn.combined else event
        try:
            async with asyncio.timeout(self.send_timeout):
                await conn.ws.send_str(json.dumps(frame))
        except (ConnectionError, TimeoutError, RuntimeError) as error:
            log.info("could not send serverShutdown to a stream client: %r", error)
        await self._close_socket(conn)

    async def _close_socket(self, conn: Connection) -> None:
        """Close one client socket; a client that does not answer the close in time is cut off."""
        try:
            async with asyncio.timeout(self.send_timeout):
                await conn.ws.close()
        except (ConnectionError, TimeoutError, RuntimeError) as error:
            log.info("stream client socket did not close cleanly: %r", error)
