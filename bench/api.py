"""API benchmark against the real Serve deployment: hot reads at 200 req/s and WS fan-out latency.

Starts its own Ray, an EventHub and a Store (tmp SQLite with 50 open positions), feeds 100
symbols of ticker state through the hub, deploys the API, then measures:

* ``/api/markets`` and ``/api/positions?status=open`` at 200 requests/s each, open-loop over 8
  keep-alive connections: latency counts from each request's scheduled time, so a stall shows
  in every request it delays;
* ``floor_*``: the same against a one-route app deployed with the API's options (direct ingress:
  its replica answers on the API's port + 1), the cost of Serve's request path itself here;
* ``ws_p99_ms``: an event published to the hub until each of 50 subscribed clients has it.

The last line printed is one JSON object, with the load average before and after. The run is
bounded (timeouts on every network wait, ``BENCH_TIMEOUT_S`` default 900 for the whole run) and
cleans up Serve, Ray and its temp folder however it ends; a failed run prints ``{"error": ...}``
and exits 1.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# On a loaded 2-core machine the raylet and its agents can take minutes to come up.
os.environ.setdefault("RAY_raylet_start_wait_time_s", "180")
os.environ.setdefault("RAY_agent_register_timeout_ms", "120000")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

KEY = "bench-api-key-0123456789abcdef"
RATE = 200
#: Keep-alive connections the requests of one route share (open loop: a late answer delays no schedule).
CONNECTIONS = 8
SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
WS_CLIENTS = 50
WS_EVENTS = 100
TIMEOUT_S = int(os.environ.get("BENCH_TIMEOUT_S", "900"))
FLOOR_BODY = b'{"ok":true}'
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def _replica_pid(app: str) -> int | None:
    """The pid of the Serve replica process of ``app`` on this machine (its title names the app)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if title.startswith(f"ray::ServeReplica:{app}:".encode()):
                return int(entry.name)
    return None


def _cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of ``pid`` so far (nan if unknown)."""
    if pid is None:
        return float("nan")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _GcPauses:
    """The load generator's own GC pauses while a route is measured (they delay its requests too)."""

    def __init__(self) -> None:
        self.ms: list[float] = []
        self._start = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.ms.append((time.perf_counter() - self._start) * 1000)

    def __enter__(self) -> _GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


class KeepAliveClient:
    """HTTP/1.1 GETs over a fixed set of keep-alive connections; a request waits (FIFO) for a free one.

    Minimal on purpose: the load generator shares the 2 cores with the server, and httpx's pool
    was measured at ~20 ms of CPU per request once a backlog formed (this: ~0.5 ms).
    """

    def __init__(self, port: int, connections: int) -> None:
        self.port, self.connections = port, connections
        self.idle: deque[Conn] = deque()
        self.waiting: deque[asyncio.Future[Conn]] = deque()

    async def _connect(self) -> Conn:
        return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 30)

    async def __aenter__(self) -> KeepAliveClient:
        self.idle.extend([await self._connect() for _ in range(self.connections)])
        return self

    async def __aexit__(self, *exc: object) -> None:
        for _, writer in self.idle:
            writer.close()

    async def get(self, path: str) -> tuple[int, bytes]:
        """(status, body) of ``GET path``; the response must carry a Content-Length."""
        if self.idle:
            conn = self.idle.popleft()
        else:
            self.waiting.append(asyncio.get_running_loop().create_future())
            conn = await self.waiting[-1]
        try:
            reader, writer = conn
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n\r\n".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            lengths = [int(line[15:]) for line in head.split(b"\r\n") if line[:15].lower() == b"content-length:"]
            if not lengths:
                raise RuntimeError(f"no Content-Length in the response to {path}: {head[:200]!r}")
            return int(head[9:12]), await asyncio.wait_for(reader.readexactly(lengths[0]), 30)
        except Exception:
            conn[1].close()  # its state is unknown: replace it
            conn = await self._connect()
            raise
        finally:
            if self.waiting:  # hand the connection straight to the oldest waiting request
                self.waiting.popleft().set_result(conn)
            else:
                self.idle.append(conn)


async def _paced(client: KeepAliveClient, path: str, check: Callable[[bytes], bool]) -> list[float]:
    """Open loop: request i is due at start + i/RATE whatever happened before; latency counts from then."""
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.1
    latencies: list[float] = []
    failures: list[str] = []

    async def one(due: float) -> None:
        await asyncio.sleep(max(0.0, due - loop.time()))
        try:
            status, body = await client.get(path)
        except Exception as exc:  # a dropped connection or a timeout counts as a failure
            failures.append(type(exc).__name__)
            return
        latencies.append((loop.time() - due) * 1000)
        if status != 200 or not check(body):
            failures.append(f"{status}: {body[:100]!r}")

    total = int(RATE * SECONDS)
    await asyncio.gather(*(one(start + i / RATE) for i in range(total)))
    if failures:
        raise RuntimeError(f"{len(failures)} of {total} requests to {path} failed, e.g. {failures[0]}")
    return latencies


async def _http(port: int) -> dict[str, float]:
    """Each route's body is checked once (JSON, row count), then every response must equal it.

    ``*_server_cpu_ms`` is the CPU the answering replica process spent per request (everything:
    Serve's request path, our app, its background work); ``*_client_cpu_ms`` the load generator's,
    ``*_client_gc_max_ms`` its longest GC pause in the phase (its heap is frozen before each one).
    """
    measured: dict[str, float] = {}
    async with KeepAliveClient(port + 1, CONNECTIONS) as floor:
        await _measure(floor, measured, "floor", "/floor/ping", "ok", None, _replica_pid("floor"))
    async with KeepAliveClient(port, CONNECTIONS) as client:
        await _paced(client, "/api/markets", lambda body: True)  # warm-up: connections and caches
        for name, path, key, rows in (("markets", "/api/markets", "markets", 100),
                                      ("positions", "/api/positions?status=open", "positions", 50)):
            await _measure(client, measured, name, path, key, rows, _replica_pid("aitrader-api"))
    return measured


async def _measure(client: KeepAliveClient, measured: dict[str, float], name: str, path: str, key: str,
                   rows: int | None, server_pid: int | None) -> None:
    status, expected = await client.get(path)
    if status != 200 or (len(json.loads(expected)[key]) != rows if rows else expected != FLOOR_BODY):
        raise RuntimeError(f"{path} answered {status}: {expected[:200]!r}")
    gc.collect()
    gc.freeze()  # the driver's heap (Ray, pydantic, ...) out of the load generator's GC passes
    server_cpu, client_cpu = _cpu_s(server_pid), time.process_time()
    with _GcPauses() as pauses:
        latencies = await _paced(client, path, lambda body: body == expected)
    measured[f"{name}_client_gc_max_ms"] = max(pauses.ms, default=0.0)
    measured[f"{name}_p50_ms"] = statistics.median(latencies)
    measured[f"{name}_p99_ms"] = _pct(latencies, 0.99)
    measured[f"{name}_server_cpu_ms"] = (_cpu_s(server_pid) - server_cpu) * 1000 / len(latencies)
    measured[f"{name}_client_cpu_ms"] = (time.process_time() - client_cpu) * 1000 / len(latencies)


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
            clients.append(ws := await websockets.connect(url, additional_headers={"Authorization": f"Bearer {KEY}"},
                                                          open_timeout=60))
            await ws.send(json.dumps({"type": "subscribe", "data": {"channels": ["logs"]}}))
            if (reply := json.loads(await asyncio.wait_for(ws.recv(), 60))).get("type") != "subscribed":
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
    return [round(x, 2) for x in os.getloadavg()]  # 1, 5 and 15 minutes


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
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}", "load_before": load_before, "load_after": _load()}))
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


def _deploy_floor() -> None:
    """A one-route app with the API's deployment options: what any route costs through Serve here."""
    from fastapi import FastAPI, Response
    from ray import serve

    from serve.options import replica_options

    floor = FastAPI()

    @floor.get("/ping")
    async def ping() -> Response:  # async: a sync route would add a thread-pool hop
        return Response(FLOOR_BODY, media_type="application/json")

    deployment = serve.deployment(name="Floor", **replica_options())(serve.ingress(floor)(type("Floor", (), {})))
    serve.run(deployment.bind(), name="floor", route_prefix="/floor")


def _run(folder: Path) -> dict[str, object]:
    import httpx
    import ray
    from pydantic import SecretStr

    from actors.events import EventHub
    from actors.store import Store
    from aitrader.config import Settings
    from aitrader.models import Position
    from serve.deployment import start_api, start_serve_proxy
    from serve.options import free_api_port
    from serve.ratelimit import RateLimits

    settings = Settings(api_key=SecretStr(KEY), user_id="bench", sqlite_path=folder / "data.db")
    events, store = EventHub.remote(), Store.remote(settings)
    ray.get([events.ping.remote(), store.ping.remote()], timeout=300)
    ray.get([store.call.remote("create_position", Position.model_validate({
        "user_id": "bench", "symbol": f"SYM{i:03d}USDT", "side": "LONG", "entry_price": Decimal("100"),
        "size": Decimal("1.5"), "current_price": Decimal("101")})) for i in range(50)], timeout=300)
    tickers = [("tickers", "ticker_update", {"symbol": f"SYM{i:03d}USDT", "price": f"{100 + i}.25", "change24h": "1.5",
                                             "volume24h": "123456.7", "sparkline": [float(j) for j in range(24)]})
               for i in range(100)]
    port = free_api_port(span=2)
    start_serve_proxy(port, "127.0.0.1", ingress_apps=2)  # the API on port, the floor app on port + 1
    start_api(settings, port, store=store, events=events, host="127.0.0.1",
              limits=RateLimits(data_per_min=10**9, orders_per_min=10**9), start_serve=False)
    base, headers = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {KEY}"}
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
    _deploy_floor()
    measured = asyncio.run(_http(port))
    measured["ws_p99_ms"] = asyncio.run(_ws(port, events))
    result: dict[str, object] = {name: round(value, 2) for name, value in measured.items()}
    result.update(rate_per_s=RATE, seconds_per_route=SECONDS, ws_clients=WS_CLIENTS, ws_events=WS_EVENTS)
    return result


if __name__ == "__main__":
    main()
