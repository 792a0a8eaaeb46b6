"""MarketFeed against a small in-test Binance: real websockets stream server + real HTTP klines server."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from aiohttp import web
from websockets.asyncio.server import Server, ServerConnection, serve

from aitrader.market.errors import StreamLimitError
from aitrader.market.events import Backfilled, CandleClosed, Connected, Disconnected, PriceUpdated
from aitrader.market.feed import FeedConfig, MarketFeed
from aitrader.market.pacing import Backoff, TokenBucket

MIN = 60_000
WAIT_S = 10.0


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeBinance:
    """Speaks the documented protocol: /stream?streams=..., SUBSCRIBE/UNSUBSCRIBE, GET /api/v3/klines."""

    def __init__(self, clock: FakeClock, pace_clock: FakeClock | None = None) -> None:
        self.clock = clock
        self.pace_clock = pace_clock
        self.candles: dict[tuple[str, str], dict[int, list[Any]]] = {}
        self.connections: list[tuple[ServerConnection, set[str]]] = []
        self.connects = 0
        self.control_messages: list[tuple[float, dict[str, Any]]] = []
        self.ws_server: Server | None = None
        self.ws_port = 0
        self._http_runner: web.AppRunner | None = None
        self.http_port = 0
        self.klines_handler: Callable[[web.Request], Awaitable[web.Response]] = self._klines

    # -- market ------------------------------------------------------------------------------

    @staticmethod
    def row(minute: int, close: float) -> list[Any]:
        return [minute * MIN, f"{close - 0.5:.2f}", f"{close + 1:.2f}", f"{close - 1:.2f}", f"{close:.2f}",
                "10.0", minute * MIN + MIN - 1, "20.0", 5, "4.0", "8.0", "0"]

    def seed(self, symbol: str, minutes: range) -> None:
        for minute in minutes:
            self.candles.setdefault((symbol, "1m"), {})[minute * MIN] = self.row(minute, 100.0 + minute)

    async def close_candle(self, symbol: str, minute: int, broadcast: bool = True) -> None:
        row = self.row(minute, 100.0 + minute)
        self.candles.setdefault((symbol, "1m"), {})[minute * MIN] = row
        self.clock.now = (minute + 1) * 60 + 0.5
        if broadcast:
            await self.broadcast(f"{symbol.lower()}@kline_1m", self.kline_payload(symbol, row, closed=True))

    def kline_payload(self, symbol: str, row: list[Any], closed: bool) -> dict[str, Any]:
        return {"e": "kline", "E": row[6] + 1, "s": symbol, "k": {
            "t": row[0], "T": row[6], "s": symbol, "i": "1m", "f": 1, "L": 5, "o": row[1], "c": row[4],
            "h": row[2], "l": row[3], "v": row[5], "n": row[8], "x": closed, "q": row[7], "V": row[9],
            "Q": row[10], "B": "0"}}

    async def broadcast(self, stream: str, payload: dict[str, Any]) -> None:
        frame = json.dumps({"stream": stream, "data": payload})
        for connection, streams in list(self.connections):
            if stream in streams:
                with contextlib.suppress(Exception):
                    await connection.send(frame)

    async def send_raw(self, text: str) -> None:
        for connection, _ in list(self.connections):
            await connection.send(text)

    def expected(self, symbol: str, capacity: int) -> list[int]:
        closed = sorted(t for t in self.candles[(symbol, "1m")] if t + MIN <= self.clock.now * 1000)
        return closed[-capacity:]

    # -- servers -----------------------------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        query = parse_qs(urlparse(connection.request.path if connection.request else "").query)
        streams = set(query.get("streams", [""])[0].split("/")) - {""}
        entry = (connection, streams)
        self.connections.append(entry)
        self.connects += 1
        try:
            async for text in connection:
                request = json.loads(text)
                self.control_messages.append((self.pace_clock() if self.pace_clock else 0.0, request))
                if request["method"] == "SUBSCRIBE":
                    streams.update(request["params"])
                elif request["method"] == "UNSUBSCRIBE":
                    streams.difference_update(request["params"])
                await connection.send(json.dumps({"result": None, "id": request["id"]}))
        finally:
            self.connections.remove(entry)

    async def start_ws(self) -> None:
        self.ws_server = await serve(self._handle, "127.0.0.1", self.ws_port)
        self.ws_port = self.ws_server.sockets[0].getsockname()[1]

    async def kill_ws(self) -> None:
        assert self.ws_server is not None
        self.ws_server.close()
        await self.ws_server.wait_closed()

    async def _klines(self, request: web.Request) -> web.Response:
        key = (request.query["symbol"], request.query["interval"])
        if key not in self.candles:
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        now_ms = self.clock.now * 1000
        rows = [row for t, row in sorted(self.candles[key].items()) if t <= now_ms]
        open_minute = int(now_ms // MIN)
        if not rows or rows[-1][0] < open_minute * MIN:
            rows.append(self.row(open_minute, 999.0))  # the still-open candle, close time in the future
        return web.json_response(rows[-int(request.query["limit"]) :])

    async def start_http(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v3/klines", lambda request: self.klines_handler(request))
        self._http_runner = web.AppRunner(app)
        await self._http_runner.setup()
        site = web.TCPSite(self._http_runner, "127.0.0.1", 0)
        await site.start()
        self.http_port = self._http_runner.addresses[0][1]

    async def stop(self) -> None:
        if self.ws_server is not None:
            self.ws_server.close()
            await self.ws_server.wait_closed()
        if self._http_runner is not None:
            await self._http_runner.cleanup()


@pytest.fixture
async def exchange() -> AsyncIterator[FakeBinance]:
    fake = FakeBinance(FakeClock(now=30 * 60 + 0.5))
    fake.seed("BTCUSDT", range(0, 30))
    fake.seed("ETHUSDT", range(0, 30))
    await fake.start_ws()
    await fake.start_http()
    yield fake
    await fake.stop()


def make_feed(exchange: FakeBinance, symbols: list[str], **kwargs: Any) -> MarketFeed:
    config = FeedConfig(
        stream_url=f"ws://127.0.0.1:{exchange.ws_port}", api_url=f"http://127.0.0.1:{exchange.http_port}",
        capacity=10, price_flush_s=0.01, ping_interval_s=5, ping_timeout_s=5, open_timeout_s=5,
        http_timeout_s=5, subscribe_timeout_s=5,
    )
    backoff = Backoff(base_s=0.02, cap_s=0.1, random=lambda: 0.0)
    return MarketFeed(config, symbols, clock=exchange.clock, backoff=backoff, **kwargs)


async def until(condition: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), WAIT_S)


@contextlib.asynccontextmanager
async def running(feed: MarketFeed) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(feed.run())
    try:
        yield task
    finally:
        feed.stop()
        await asyncio.wait_for(task, WAIT_S)


def buffer_minutes(feed: MarketFeed, symbol: str) -> list[int]:
    return feed.buffers.buffer(symbol, "1m").open_times.tolist()


async def test_connects_backfills_and_receives_closed_candles(exchange: FakeBinance) -> None:
    feed = make_feed(exchange, ["BTCUSDT", "ETHUSDT"])

    async with running(feed):
        await until(lambda: exchange.connects == 1 and feed.buffers.buffer("ETHUSDT", "1m").last_open_time == 29 * MIN)
        await until(lambda: feed._stash is None)
        await exchange.close_candle("BTCUSDT", 30)
        await until(lambda: feed.buffers.buffer("BTCUSDT", "1m").last_open_time == 30 * MIN)
        health = feed.health()

    events = feed.events.drain()
    assert isinstance(events[0], Connected) and events[0].streams == 4
    assert {(e.symbol, e.candles) for e in events if isinstance(e, Backfilled)} == {("BTCUSDT", 10), ("ETHUSDT", 10)}
    closed = [e for e in events if isinstance(e, CandleClosed)]
    assert [(c.symbol, c.open_time, str(c.close)) for c in closed] == [("BTCUSDT", 30 * MIN, "130.00")]
    assert buffer_minutes(feed, "BTCUSDT") == exchange.expected("BTCUSDT", 10)
    assert isinstance(events[-1], Disconnected) and events[-1].reason == "stopped"
    assert health.connected and health.reconnects == 0 and health.gaps == 0
    assert health.latency_p50_ms == pytest.approx(500.0)


async def test_server_killed_and_restarted_mid_run_reconnects_and_backfills_without_gap_or_duplicate(
    exchange: FakeBinance,
) -> None:
    feed = make_feed(exchange, ["BTCUSDT", "ETHUSDT"])

    async with running(feed):
        await until(lambda: feed.connected and feed._stash is None)
        await exchange.close_candle("BTCUSDT", 30)
        await exchange.close_candle("ETHUSDT", 30)
        await until(lambda: feed.buffers.buffer("ETHUSDT", "1m").last_open_time == 30 * MIN)

        await exchange.kill_ws()
        await until(lambda: not feed.connected)
        for minute in range(31, 35):  # candles close while the stream is down
            await exchange.close_candle("BTCUSDT", minute, broadcast=False)
            await exchange.close_candle("ETHUSDT", minute, broadcast=False)
        await exchange.start_ws()
        await until(lambda: exchange.connects == 2 and feed.connected and feed._stash is None)
        await exchange.close_candle("BTCUSDT", 35)
        await exchange.close_candle("ETHUSDT", 35)
        await until(lambda: all(feed.buffers.buffer(s, "1m").last_open_time == 35 * MIN for s in feed.symbols))
        health = feed.health()

    for symbol in ("BTCUSDT", "ETHUSDT"):
        minutes = buffer_minutes(feed, symbol)
        assert minutes == exchange.expected(symbol, 10)
        assert len(set(minutes)) == len(minutes) == 10
        assert feed.buffers.buffer(symbol, "1m").gaps() == []
        closes = feed.buffers.buffer(symbol, "1m").column("close").tolist()
        assert closes == [float(exchange.candles[(symbol, "1m")][t][4]) for t in minutes]
    assert health.reconnects == 1 and health.gaps == 0
    reasons = [e.reason for e in feed.events.drain() if isinstance(e, Disconnected)]
    assert reasons[0].startswith("connection lost")


async def test_candle_closing_during_backfill_is_neither_lost_nor_duplicated(exchange: FakeBinance) -> None:
    feed = make_feed(exchange, ["BTCUSDT"])
    gate, reached = asyncio.Event(), asyncio.Event()
    original = exchange._klines

    async def slow_klines(request: web.Request) -> web.Response:
        response = await original(request)  # REST snapshot taken before the candle closes
        reached.set()
        await asyncio.wait_for(gate.wait(), WAIT_S)
        return response

    exchange.klines_handler = slow_klines
    async with running(feed):
        await asyncio.wait_for(reached.wait(), WAIT_S)
        await exchange.close_candle("BTCUSDT", 30)
        await until(lambda: feed._stash is not None and len(feed._stash) == 1)
        gate.set()
        await until(lambda: feed._stash is None and feed.buffers.buffer("BTCUSDT", "1m").last_open_time == 30 * MIN)

    assert buffer_minutes(feed, "BTCUSDT") == exchange.expected("BTCUSDT", 10)
    assert feed.health().gaps == 0


async def test_server_shutdown_triggers_a_reconnect(exchange: FakeBinance) -> None:
    feed = make_feed(exchange, ["BTCUSDT"])

    async with running(feed):
        await until(lambda: feed.connected and feed._stash is None)
        await exchange.send_raw(json.dumps({"stream": "!serverShutdown",
                                            "data": {"e": "serverShutdown", "E": 1770123456789}}))
        await until(lambda: exchange.connects == 2 and feed.connected)

    reasons = [e.reason for e in feed.events.drain() if isinstance(e, Disconnected)]
    assert reasons[0] == "the exchange announced a server shutdown"


async def test_malformed_frame_ends_the_session_instead_of_being_patched_over(exchange: FakeBinance) -> None:
    feed = make_feed(exchange, ["BTCUSDT"])

    async with running(feed):
        await until(lambda: feed.connected and feed._stash is None)
        await exchange.send_raw('{"stream": "btcusdt@kline_1m", "data": {"e": "kline", "E": 1}}')
        await until(lambda: exchange.connects == 2 and feed.connected)

    reasons = [e.reason for e in feed.events.drain() if isinstance(e, Disconnected)]
    assert reasons[0].startswith("malformed stream message")


async def test_ticker_updates_are_coalesced_into_price_events(exchange: FakeBinance) -> None:
    feed = make_feed(exchange, ["BTCUSDT"])
    ticker = {"e": "24hrTicker", "E": 1, "s": "BTCUSDT", "p": "1", "P": "2.5", "w": "1", "x": "1", "c": "0",
              "Q": "1", "b": "1", "B": "1", "a": "1", "A": "1", "o": "1", "h": "1", "l": "1", "v": "1",
              "q": "5000", "O": 0, "C": 1, "F": 0, "L": 1, "n": 2}

    async with running(feed):
        await until(lambda: feed.connected and feed._stash is None)
        for price in ("101.0", "102.0", "103.5"):
            ticker = {**ticker, "E": ticker["E"] + 1, "c": price}
            await exchange.broadcast("btcusdt@ticker", ticker)
        await until(lambda: any(isinstance(e, PriceUpdated) and str(e.price) == "103.5" for e in list(feed.events._items)))

    prices = [str(e.price) for e in feed.events.drain() if isinstance(e, PriceUpdated)]
    assert prices[-1] == "103.5" and len(prices) <= 3
    snapshot = feed.buffers.ticker("BTCUSDT")
    assert snapshot is not None and str(snapshot.price) == "103.5" and str(snapshot.volume_24h_quote) == "5000"


async def test_runtime_subscriptions_respect_the_message_rate_and_backfill_new_symbols(exchange: FakeBinance) -> None:
    pace_clock = FakeClock(now=0.0)
    exchange.pace_clock = pace_clock
    new_symbols = [f"NEW{n}USDT" for n in range(8)]
    for symbol in new_symbols:
        exchange.seed(symbol, range(0, 30))

    async def pace_sleep(seconds: float) -> None:
        pace_clock.now += seconds
        await asyncio.sleep(0)

    feed = make_feed(exchange, ["BTCUSDT"], control_bucket=TokenBucket(3, 1, clock=pace_clock), pace_sleep=pace_sleep)

    async with running(feed):
        await until(lambda: feed.connected and feed._stash is None)
        for symbol in new_symbols:
            feed.add_symbols([symbol])
        feed.remove_symbols(["BTCUSDT"])
        await until(lambda: len(exchange.control_messages) == 9)
        await until(lambda: all(feed.buffers.get(s, "1m") and len(feed.buffers.buffer(s, "1m")) == 10
                                for s in new_symbols))
        server_streams = set(exchange.connections[0][1])

    times = [t for t, _ in exchange.control_messages]
    assert all(sum(1 for u in times if t <= u < t + 1.0) <= 4 for t in times)
    assert [m["method"] for _, m in exchange.control_messages] == ["SUBSCRIBE"] * 8 + ["UNSUBSCRIBE"]
    assert server_streams == {f"{s.lower()}@{kind}" for s in new_symbols for kind in ("kline_1m", "ticker")}
    assert feed.symbols == new_symbols


def test_more_streams_than_one_connection_carries_is_refused() -> None:
    feed = MarketFeed(FeedConfig(max_streams=200, intervals=("1m",)), [f"S{n}USDT" for n in range(100)])

    with pytest.raises(StreamLimitError, match="shard"):
        feed.add_symbols(["ONEMOREUSDT"])
    assert len(feed.streams()) == 200


def test_staleness_is_reported_per_symbol() -> None:
    clock = FakeClock(now=100.0)
    feed = MarketFeed(FeedConfig(), ["BTCUSDT", "ETHUSDT"], clock=clock)
    clock.now = 200.0
    feed._staleness.last_seen["ETHUSDT"] = 195.0

    assert feed.stale_symbols(30.0) == ["BTCUSDT"]
    assert feed.is_stale("btcusdt", 30.0) and not feed.is_stale("ETHUSDT", 30.0)
    assert feed.health().stale_symbols == 1  # default threshold 60 s


async def test_symbols_added_while_connecting_are_subscribed_once_connected(exchange: FakeBinance) -> None:
    feed = make_feed(exchange, ["BTCUSDT"])
    task = asyncio.create_task(feed.run())
    await asyncio.sleep(0)  # run() has started connecting with BTCUSDT's streams only
    feed.add_symbols(["ETHUSDT"])
    try:
        await until(lambda: feed.connected and len(feed.buffers.buffer("ETHUSDT", "1m")) == 10)
        await until(lambda: "ethusdt@kline_1m" in exchange.connections[0][1])
    finally:
        feed.stop()
        await asyncio.wait_for(task, WAIT_S)

    assert exchange.connects == 1
