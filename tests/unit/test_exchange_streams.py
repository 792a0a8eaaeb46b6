"""Plain websockets clients against the local exchange's market streams."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import websockets

from aitrader.exchange import ExchangeConfig, LocalExchange, ManualClock, SyntheticMarket, start_in_thread
from aitrader.exchange.orders import MatchingEngine
from aitrader.exchange.streams import Connection, StreamHub
from aitrader.exchange.symbols import resolve_symbols
from tests.unit.exchange_fixtures import manual_exchange  # noqa: F401

REFERENCE = json.loads((Path(__file__).parents[1] / "data" / "binance-spot-vectors.json").read_text())
TIMEOUT = 10.0


class RecordingSocket:
    """Stands in for a server-side client socket: keeps the frames sent to it and whether it was closed.

    ``during_first_send`` runs inside the first send, after the frame is taken; ``hang`` makes every
    send wait forever, like a client that stopped reading.
    """

    def __init__(self, during_first_send=None, hang: bool = False) -> None:
        self.frames: list[dict] = []
        self.closed = False
        self.during_first_send = during_first_send
        self.hang = hang

    async def send_str(self, text: str) -> None:
        if self.hang:
            await asyncio.Event().wait()
        self.frames.append(json.loads(text))
        if self.during_first_send is not None:
            hook, self.during_first_send = self.during_first_send, None
            hook()

    async def close(self) -> None:
        self.closed = True


async def next_frame(ws) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def frames_until(ws, predicate, limit: int = 200) -> list[dict]:
    seen = []
    for _ in range(limit):
        seen.append(await next_frame(ws))
        if predicate(seen[-1]):
            return seen
    raise AssertionError(f"no matching frame in {limit} frames")


async def test_combined_frames_have_binance_field_sets(manual_exchange) -> None:  # noqa: F811
    handle, _ = manual_exchange
    streams = "btcusdt@ticker/ethusdt@miniTicker/solusdt@kline_1m"
    expected = {
        "btcusdt@ticker": REFERENCE["stream:<symbol>@ticker"],
        "ethusdt@miniTicker": REFERENCE["stream:<symbol>@miniTicker"],
        "solusdt@kline_1m": REFERENCE["stream:<symbol>@kline_<interval>"],
    }
    got: dict[str, dict] = {}

    async with websockets.connect(f"{handle.ws_url}/stream?streams={streams}", open_timeout=TIMEOUT) as ws:
        while len(got) < 3:
            frame = await next_frame(ws)
            got[frame["stream"]] = frame

    for name, reference in expected.items():
        assert set(got[name]) == set(REFERENCE["combined_stream_envelope_format"])
        assert set(got[name]["data"]) == set(reference)
        assert got[name]["data"]["e"] == reference["e"]
    assert set(got["solusdt@kline_1m"]["data"]["k"]) == set(expected["solusdt@kline_1m"]["k"])


async def test_raw_stream_sends_bare_payloads(manual_exchange) -> None:  # noqa: F811
    handle, _ = manual_exchange

    async with websockets.connect(f"{handle.ws_url}/ws/bnbusdt@kline_5m", open_timeout=TIMEOUT) as ws:
        frame = await next_frame(ws)

    assert frame["e"] == "kline" and frame["k"]["i"] == "5m" and frame["s"] == "BNBUSDT"


async def test_subscribe_unsubscribe_and_list(manual_exchange) -> None:  # noqa: F811
    handle, _ = manual_exchange

    async with websockets.connect(f"{handle.ws_url}/ws", open_timeout=TIMEOUT) as ws:
        await ws.send(
            json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@ticker", "btcusdt@kline_1m"], "id": 1})
        )
        subscribed = await frames_until(ws, lambda f: f.get("id") == 1)
        await ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["btcusdt@ticker"], "id": 312}))
        unsubscribed = await frames_until(ws, lambda f: f.get("id") == 312)
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 3}))
        listed = await frames_until(ws, lambda f: f.get("id") == 3)
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["nope@ticker"], "id": 4}))
        rejected = await frames_until(ws, lambda f: f.get("id") == 4)

    assert subscribed[-1] == REFERENCE["ws:SUBSCRIBE"]["response"]
    assert unsubscribed[-1] == REFERENCE["ws:UNSUBSCRIBE"]["response"]
    assert listed[-1] == {"result": ["btcusdt@kline_1m"], "id": 3}
    assert rejected[-1]["code"] == 2


async def test_closing_candle_gets_a_final_frame_before_the_next(manual_exchange) -> None:  # noqa: F811
    handle, clock = manual_exchange

    async with websockets.connect(f"{handle.ws_url}/ws/adausdt@kline_1m", open_timeout=TIMEOUT) as ws:
        first = await next_frame(ws)
        clock.advance(60_000)
        frames = await frames_until(ws, lambda f: f["k"]["t"] > first["k"]["t"])

    final = [f for f in frames if f["k"]["x"]]
    assert len(final) == 1 and final[0]["k"]["t"] == first["k"]["t"]
    assert frames.index(final[0]) == len(frames) - 2
    assert frames[-1]["k"]["x"] is False


async def test_graceful_stop_sends_server_shutdown() -> None:
    handle = await asyncio.to_thread(start_in_thread, ExchangeConfig(port=0, push_interval=0.05))
    try:
        async with websockets.connect(
            f"{handle.ws_url}/stream?streams=btcusdt@ticker", open_timeout=TIMEOUT
        ) as ws:
            await next_frame(ws)
            stopping = asyncio.create_task(asyncio.to_thread(handle.stop))
            frames = await frames_until(ws, lambda f: f.get("stream") == "!serverShutdown")
            await asyncio.wait_for(stopping, TIMEOUT)
    finally:
        await asyncio.to_thread(handle.stop)

    assert set(frames[-1]["data"]) == set(REFERENCE["stream:serverShutdown(combined)"]["data"])


async def test_stop_asked_for_during_a_push_sends_shutdown_then_closes() -> None:
    # stop() lands while the pusher is inside a send (here: right after the frame is taken).  A
    # pusher stopped by cancelling its task could drop that cancellation (Python 3.11's wait_for
    # does) and push on for ever, so stop() hung and no client heard serverShutdown.  Once stop is
    # asked, the frame in flight is the last market frame.
    exchange = LocalExchange(ExchangeConfig(port=0, push_interval=0.01))
    await exchange.start()
    stopping: list[asyncio.Future[None]] = []
    stop_asked = asyncio.Event()

    def ask_to_stop() -> None:
        stopping.append(asyncio.ensure_future(exchange.stop()))
        stop_asked.set()

    socket = RecordingSocket(during_first_send=ask_to_stop)
    exchange.streams.connections.add(Connection(socket, combined=True, streams=["btcusdt@ticker"]))  # type: ignore[arg-type]
    try:
        await asyncio.wait_for(stop_asked.wait(), TIMEOUT)
        await asyncio.wait_for(stopping[0], TIMEOUT)
    finally:
        if exchange._runner is not None:
            await exchange._runner.cleanup()

    assert [frame["stream"] for frame in socket.frames] == ["btcusdt@ticker", "!serverShutdown"]
    assert socket.closed


async def test_shutdown_closes_a_client_that_never_takes_the_shutdown_frame() -> None:
    clock = ManualClock(1_767_607_230_000)
    market = SyntheticMarket(resolve_symbols(["BTCUSDT"]), seed=1)
    hub = StreamHub(market, MatchingEngine(market, clock, {}), clock, send_timeout=0.05)
    stuck, listening = RecordingSocket(hang=True), RecordingSocket()
    hub.connections.add(Connection(stuck, combined=False))  # type: ignore[arg-type]
    hub.connections.add(Connection(listening, combined=False))  # type: ignore[arg-type]

    await asyncio.wait_for(hub.close(), TIMEOUT)

    assert stuck.closed and stuck.frames == []
    assert listening.closed and [frame["e"] for frame in listening.frames] == ["serverShutdown"]
    assert hub.connections == set()


@pytest.mark.parametrize("path", ["/api/v3/ping", "/api/v3/time"])
async def test_rest_and_ws_share_one_port(manual_exchange, path: str) -> None:  # noqa: F811
    handle, _ = manual_exchange
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(handle.exchange.config.host, handle.exchange.port), TIMEOUT
    )
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    response = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()

    assert response.startswith(b"HTTP/1.1 200")
