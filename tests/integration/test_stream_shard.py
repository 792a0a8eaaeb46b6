"""A stream shard on the local exchange survives the exchange process dying and coming back."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import ray

from actors.stream import StreamShard, shard_symbols

SPEED = 60.0  # a 1m candle closes every second of wall time
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ExchangeProcess:
    """`aitrader exchange` in its own process, so a test can kill -9 it."""

    def __init__(self, port: int, anchor_ms: int) -> None:
        self.port, self.anchor_ms = port, anchor_ms
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        code = (
            "from aitrader.exchange import main; "
            f"main(port={self.port}, seed=11, symbols={SYMBOLS!r}, speed={SPEED}, anchor_ms={self.anchor_ms})"
        )
        self.process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/v3/ping", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError("local exchange did not start within 60 s")

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def klines(self, symbol: str, end_open_time: int, limit: int) -> list[list[Any]]:
        params: dict[str, str | int] = {"symbol": symbol, "interval": "1m", "endTime": end_open_time, "limit": limit}
        response = httpx.get(f"{self.url}/api/v3/klines", params=params, timeout=10)
        response.raise_for_status()
        return response.json()


@pytest.fixture
def exchange() -> Iterator[ExchangeProcess]:
    now = int(time.time() * 1000)
    process = ExchangeProcess(free_port(), now - now % 60_000)
    process.start()
    yield process
    if process.process and process.process.poll() is None:
        process.process.kill()


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def test_sharding_helpers() -> None:
    assert shard_symbols(["A", "B", "C", "D", "E"], 2) == [["A", "C", "E"], ["B", "D"]]


def test_shard_survives_exchange_kill_and_restart(ray_session: None, exchange: ExchangeProcess) -> None:
    base = exchange.url
    shard = StreamShard.options(name=f"shard-restart-{exchange.port}").remote(  # type: ignore[attr-defined]
        0, base.replace("http", "ws"), base, SYMBOLS, ["1m"], None, 120
    )
    ray.get(shard.start.remote(), timeout=60)
    health = lambda: ray.get(shard.health.remote(), timeout=30)  # noqa: E731
    wait_for(lambda: health()["connected"] and health()["candles_closed"] >= 3 * len(SYMBOLS), 60, "first candles")

    exchange.kill()
    wait_for(lambda: not health()["connected"], 30, "the shard to notice the exchange died")
    time.sleep(3)  # about three 1m candles close while the exchange is down
    exchange.start()
    wait_for(lambda: health()["connected"] and health()["reconnects"] >= 1, 90, "reconnect")
    closed_after = health()["candles_closed"]
    wait_for(lambda: health()["candles_closed"] >= closed_after + 3 * len(SYMBOLS), 60, "candles after restart")

    for symbol in SYMBOLS:
        mine = ray.get(shard.candles.remote(symbol, "1m"), timeout=30)
        times = mine["open_times"]
        assert len(times) >= 100, "backfill should fill the buffer from REST history"
        assert all(b - a == 60_000 for a, b in zip(times, times[1:], strict=False)), "gap or duplicate"
        theirs = exchange.klines(symbol, times[-1], len(times))
        assert [row[0] for row in theirs] == times
        expected = [[float(v) for v in row[1:6]] for row in theirs]
        assert mine["values"] == expected
    ray.get(shard.stop.remote(), timeout=30)
    ray.kill(shard)
