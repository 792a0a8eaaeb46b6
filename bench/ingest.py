"""Market-data ingest benchmark: one shard's reader (recv -> decode -> buffer apply) vs a bare receive loop.

A local websockets server (in its own process) sends pre-encoded combined kline frames across
100 symbols as fast as TCP takes them; 1 in 10 frames closes a candle.  Three connections, one
after another: a bare ``recv`` loop (the ceiling), ``MarketFeed.read`` (the feed's own reader,
not instrumented: ``msgs_per_s``) and the same path timed per frame from ``recv`` returning to
``on_message`` returning (``p50_apply_ms``/``p99_apply_ms``).  Rates are given per wall second and
per CPU second of this (client) process; on a loaded machine the CPU rates are the steadier
comparison.  The last line printed is one JSON object.

    .venv/bin/python bench/ingest.py [--frames 200000] [--symbols 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import time
from typing import Any

import numpy as np
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from aitrader.market.feed import FeedConfig, MarketFeed

MIN = 60_000
BASE_MS = 1_700_000_000_000 - 1_700_000_000_000 % MIN
CLOSE_EVERY = 10


def build_frames(count: int, symbols: int) -> list[str]:
    """``count`` combined kline frames, round-robin over ``symbols``; every 10th per symbol closes."""
    frames = []
    for n in range(count):
        symbol_index, step = n % symbols, n // symbols
        symbol = f"SYM{symbol_index}USDT"
        open_time = BASE_MS + (step // CLOSE_EVERY) * MIN
        price = 100.0 + symbol_index + (step % 97) * 0.01
        kline = {
            "t": open_time, "T": open_time + MIN - 1, "s": symbol, "i": "1m", "f": step, "L": step + 3,
            "o": f"{price:.2f}", "c": f"{price + 0.05:.2f}", "h": f"{price + 0.1:.2f}", "l": f"{price - 0.1:.2f}",
            "v": "12.5", "n": 4, "x": step % CLOSE_EVERY == CLOSE_EVERY - 1, "q": "1250.0", "V": "6.0",
            "Q": "600.0", "B": "0",
        }
        payload = {"e": "kline", "E": open_time + 1000, "s": symbol, "k": kline}
        frames.append(json.dumps({"stream": f"{symbol.lower()}@kline_1m", "data": payload}, separators=(",", ":")))
    return frames


def ws_text_frame(text: str) -> bytes:
    """One unmasked server-to-client WebSocket text frame (RFC 6455)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = bytes([0x81, size])
    elif size < 65_536:
        header = bytes([0x81, 126]) + size.to_bytes(2, "big")
    else:
        header = bytes([0x81, 127]) + size.to_bytes(8, "big")
    return header + payload


def serve_frames(count: int, symbols: int, ready: Any) -> None:
    """Server process: on each connection write every pre-encoded frame as fast as TCP takes it.

    ``ServerConnection.send`` costs more per frame than a client spends receiving one, so frames
    are pre-encoded on the wire and written to the transport in 1 MB chunks after the handshake.
    """
    frames = b"".join(ws_text_frame(frame) for frame in build_frames(count, symbols))
    chunk = 1 << 20

    async def handler(ws: ServerConnection) -> None:
        transport = ws.transport
        for offset in range(0, len(frames), chunk):
            transport.write(frames[offset : offset + chunk])
            while transport.get_write_buffer_size() > 4 * chunk:
                await asyncio.sleep(0.0005)
        await ws.close()

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, compression=None, max_queue=None) as server:
            ready.put(server.sockets[0].getsockname()[1])
            await asyncio.Future()

    asyncio.run(main())


async def raw_receive(url: str, count: int) -> tuple[float, float]:
    """Bare websockets receive loop (``recv(decode=False)``, as the feed reads): the ceiling."""
    async with connect(url, compression=None, max_size=2**22, max_queue=FeedConfig().max_queue) as ws:
        received = 0
        recv = ws.recv
        start, cpu = time.perf_counter(), time.process_time()
        try:
            while True:
                await recv(decode=False)
                received += 1
        except ConnectionClosed:
            pass
        elapsed, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    if received != count:
        raise RuntimeError(f"received {received} of {count} frames")
    return received / elapsed, received / cpu_s


def new_feed(symbols: int) -> MarketFeed:
    return MarketFeed(FeedConfig(capacity=250), [f"SYM{n}USDT" for n in range(symbols)])


async def feed_receive(url: str, count: int, symbols: int) -> tuple[float, float, MarketFeed]:
    """Throughput of the shard's own reader (``MarketFeed.read``: recv -> decode -> buffers)."""
    feed = new_feed(symbols)
    async with connect(url, compression=None, max_size=2**22, max_queue=feed.config.max_queue) as ws:
        start, cpu = time.perf_counter(), time.process_time()
        with contextlib.suppress(ConnectionClosed):  # ConnectionClosedOK once the server has sent everything
            await feed.read(ws)
        elapsed, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    return count / elapsed, count / cpu_s, feed


async def feed_apply_latency(url: str, count: int, symbols: int) -> tuple[np.ndarray, MarketFeed]:
    """Per frame: received (``recv`` returned) to applied (``on_message`` returned), in ns."""
    feed = new_feed(symbols)
    apply_ns = np.empty(count, dtype=np.int64)
    perf = time.perf_counter_ns
    on_message = feed.on_message
    received = 0
    async with connect(url, compression=None, max_size=2**22, max_queue=feed.config.max_queue) as ws:
        recv = ws.recv
        with contextlib.suppress(ConnectionClosed):
            while True:
                raw = await recv(decode=False)
                t0 = perf()
                on_message(raw)
                apply_ns[received] = perf() - t0
                received += 1
    if received != count:
        raise RuntimeError(f"received {received} of {count} frames")
    return apply_ns, feed


def check_buffers(feed: MarketFeed, frames: int, symbols: int) -> None:
    """Every closed candle sent reached the buffer (up to its capacity); nothing made up."""
    closed = len(feed.buffers.buffer("SYM0USDT", "1m"))
    expected_closed = frames // symbols // CLOSE_EVERY
    assert closed == min(250, expected_closed), f"buffer holds {closed} candles, expected {expected_closed}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--symbols", type=int, default=100)
    args = parser.parse_args()

    ready: Any = mp.get_context("spawn").Queue()
    server = mp.get_context("spawn").Process(target=serve_frames, args=(args.frames, args.symbols, ready), daemon=True)
    server.start()
    try:
        url = f"ws://127.0.0.1:{ready.get(timeout=120)}"
        raw_rate, raw_cpu_rate = asyncio.run(raw_receive(url, args.frames))
        feed_rate, feed_cpu_rate, feed = asyncio.run(feed_receive(url, args.frames, args.symbols))
        apply_ns, timed_feed = asyncio.run(feed_apply_latency(url, args.frames, args.symbols))
    finally:
        server.terminate()
        server.join(10)

    check_buffers(feed, args.frames, args.symbols)
    check_buffers(timed_feed, args.frames, args.symbols)
    result = {
        "bench": "ingest",
        "frames": args.frames,
        "symbols": args.symbols,
        "closed_fraction": 1 / CLOSE_EVERY,
        "msgs_per_s": round(feed_rate),
        "raw_recv_msgs_per_s": round(raw_rate),
        "ratio_vs_raw": round(feed_rate / raw_rate, 3),
        "msgs_per_cpu_s": round(feed_cpu_rate),
        "raw_recv_msgs_per_cpu_s": round(raw_cpu_rate),
        "cpu_ratio_vs_raw": round(feed_cpu_rate / raw_cpu_rate, 3),
        "p50_apply_ms": round(float(np.percentile(apply_ns, 50)) / 1e6, 4),
        "p99_apply_ms": round(float(np.percentile(apply_ns, 99)) / 1e6, 4),
        "dropped_events": feed.events.dropped,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
