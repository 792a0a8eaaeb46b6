"""API benchmark against the real Serve deployment: hot reads at 200 req/s and WS fan-out latency.

Starts its own Ray, an EventHub and a Store (tmp SQLite with 50 open positions), feeds 100
symbols of ticker state through the hub, deploys the API, then measures:

* ``/api/markets`` and ``/api/positions?status=open`` at 200 requests/s each, open-loop pacing
  over keep-alive connections (latency from each request's scheduled start);
* ``ws_p99_ms``: an event published to the hub until each of 50 subscribed clients has it.

The last line printed is one JSON object (with the load average before and after, since on a
shared machine the numbers mean little without it). The run is bounded: every network wait has
a timeout, ``BENCH_TIMEOUT_S`` (default 900) caps the whole run, and Serve, Ray and the temp
folder are cleaned up however it ends; a failed run prints ``{"error": ...}`` and exits 1.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# On a loaded 2-core machine the raylet and its agents can take minutes to come up.
os.environ.setdefault("RAY_raylet_start_wait_time_s", "180")
os.environ.setdefault("RAY_agent_register_timeout_ms", "120000")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

KEY = "bench-api-key-0123456789abcdef"
RATE = 200
SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
WS_CLIENTS = 50
WS_EVENTS = 100
TIMEOUT_S = int(os.environ.get("BENCH_TIMEOUT_S", "900"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _paced(client, path: str) -> list[float]:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.1
    latencies: list[float] = []
    errors = 0

    async def one(at: float) -> None:
        nonlocal errors
        await asyncio.sleep(max(0.0, at - loop.time()))
        try:
            response = await client.get(path)
        except Exception:  # httpx timeouts and connection errors count as failures
            errors += 1
            return
        if response.status_code != 200:
            errors += 1
        latencies.append((loop.time() - at) * 1000)

    total = int(RATE * SECONDS)
    await asyncio.gather(*(one(start + i / RATE) for i in range(total)))
    if errors:
        raise RuntimeError(f"{errors} of {total} requests to {path} failed")
    return latencies


async def _http(base: str) -> dict[str, float]:
    import httpx

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {KEY}"}, limits=limits,
                                 timeout=10) as client:
        await _paced(client, "/api/markets")  # warm-up: connections and caches
        markets = await _paced(client, "/api/markets")
        positions = await _paced(client, "/api/positions?status=open")
    return {"markets_p50_ms": statistics.median(markets), "markets_p99_ms": _pct(markets, 0.99),
            "positions_p50_ms": statistics.median(positions), "positions_p99_ms": _pct(positions, 0.99)}


async def _ws(port: int, events) -> float:  # noqa: ANN001
    import websockets

    url = f"ws://127.0.0.1:{port}/ws"
    sent: dict[int, float] = {}
    latencies: list[float] = []
    clients = []

    async def reader(ws) -> None:  # noqa: ANN001
        got = 0
        while got < WS_EVENTS:
            message = json.loads(await ws.recv())
            if message.get("type") == "log":
                latencies.append((time.perf_counter() - sent[message["data"]["n"]]) * 1000)
                got += 1

    try:
        for _ in range(WS_CLIENTS):
            ws = await websockets.connect(url, additional_headers={"Authorization": f"Bearer {KEY}"},
                                          open_timeout=60)
            clients.append(ws)
            await ws.send(json.dumps({"type": "subscribe", "data": {"channels": ["logs"]}}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if reply.get("type") != "subscribed":
                raise RuntimeError(f"subscribe answered {reply}")
        readers = asyncio.gather(*(reader(ws) for ws in clients))
        try:
            for n in range(WS_EVENTS):
                sent[n] = time.perf_counter()
                await asyncio.wait_for(events.publish.remote("logs", "log", {"n": n, "message": "bench"}), 60)
                await asyncio.sleep(0.05)
            await asyncio.wait_for(readers, 120)
        finally:
            readers.cancel()
    finally:
        await asyncio.gather(*(asyncio.wait_for(ws.close(), 10) for ws in clients), return_exceptions=True)
    return _pct(latencies, 0.99)


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _timed_out(signum: int, frame: object) -> None:
    if signum == signal.SIGTERM:
        raise TimeoutError("the benchmark was terminated (SIGTERM)")
    raise TimeoutError(f"the benchmark ran longer than BENCH_TIMEOUT_S={TIMEOUT_S} s")


def main() -> None:
    import ray

    signal.signal(signal.SIGALRM, _timed_out)
    signal.signal(signal.SIGTERM, _timed_out)  # an outer `timeout` still gets Serve and Ray cleaned up
    signal.alarm(TIMEOUT_S)
    folder = Path(tempfile.mkdtemp(prefix="aitrader-bench-api-"))
    load_before = _load()
    try:
        for attempt in range(2):  # Ray can time out starting on a loaded machine: retry once
            try:
                ray.init(address="local", include_dashboard=False, num_cpus=2, namespace="aitrader-bench",
                         log_to_driver=False)  # "local": never join a cluster someone `ray start`ed
                break
            except Exception:
                ray.shutdown()
                if attempt == 1:
                    raise
        result = _run(folder)
        result.update(load_before=load_before, load_after=_load())
    except BaseException as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}", "load_before": load_before,
                          "load_after": _load()}))
        raise SystemExit(1) from None
    finally:
        signal.alarm(0)
        try:
            from ray import serve

            if ray.is_initialized():
                serve.shutdown()
        finally:
            ray.shutdown()
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result))


def _run(folder: Path) -> dict[str, object]:
    import httpx
    import ray
    from pydantic import SecretStr

    from actors.events import EventHub
    from actors.store import Store
    from aitrader.config import Settings
    from aitrader.models import Position
    from serve.deployment import start_api
    from serve.ratelimit import RateLimits

    settings = Settings(api_key=SecretStr(KEY), user_id="bench", sqlite_path=folder / "data.db")
    events = EventHub.remote()
    store = Store.remote(settings)
    ray.get([events.ping.remote(), store.ping.remote()], timeout=300)
    ray.get([store.call.remote("create_position", Position.model_validate({
        "user_id": "bench", "symbol": f"SYM{i:03d}USDT", "side": "LONG", "entry_price": Decimal("100"),
        "size": Decimal("1.5"), "current_price": Decimal("101")})) for i in range(50)], timeout=300)
    tickers = [
        ("tickers", "ticker_update", {"symbol": f"SYM{i:03d}USDT", "price": f"{100 + i}.25", "change24h": "1.5",
                                      "volume24h": "123456.7", "sparkline": [float(j) for j in range(24)]})
        for i in range(100)]
    port = _free_port()
    start_api(settings, port, store=store, events=events, host="127.0.0.1",
              limits=RateLimits(data_per_min=10**9, orders_per_min=10**9))
    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {KEY}"}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        # Without a supervisor the replica has no market snapshot: its read state follows the hub
        # from the seq it started at, so the tickers are (re)published once the API is up.
        ray.get(events.publish_many.remote(tickers), timeout=60)
        try:
            markets = httpx.get(f"{base}/api/markets", headers=headers, timeout=5).json()["markets"]
            positions = httpx.get(f"{base}/api/positions?status=open", headers=headers, timeout=5).json()
            if len(markets) == 100 and len(positions["positions"]) == 50:
                break
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.5)
    else:
        raise RuntimeError("the API did not come up with 100 markets and 50 open positions")
    measured = asyncio.run(_http(base))
    measured["ws_p99_ms"] = asyncio.run(_ws(port, events))
    result: dict[str, object] = {name: round(value, 2) for name, value in measured.items()}
    result.update(rate_per_s=RATE, seconds_per_route=SECONDS, ws_clients=WS_CLIENTS, ws_events=WS_EVENTS)
    return result


if __name__ == "__main__":
    main()
