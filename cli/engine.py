"""Starting and stopping the engine: feed choice, Ray, the actor graph, the API (no Typer here)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx

from aitrader.config import Settings

log = logging.getLogger("aitrader.up")

BINANCE_PROBE_TIMEOUT_S = 3.0
SERVE_SHUTDOWN_WAIT_S = 5.0
#: The longest the actor graph waits for Serve's controller to be up before it starts anyway.
SERVE_HEAD_START_S = 20.0


class EngineStartError(Exception):
    """The engine cannot start; the message says what to do."""


@dataclass(frozen=True)
class FeedChoice:
    """Where market data comes from, and what the user must be told about it."""

    kind: str  # "binance" | "local"
    api_url: str
    stream_url: str
    note: str | None = None
    start_local_exchange: bool = False


def _label(api_url: str) -> str:
    host = urlparse(api_url).hostname or ""
    return "binance" if host.endswith("binance.com") or host.endswith("binance.us") else "local"


def binance_reachable(api_url: str, timeout_s: float = BINANCE_PROBE_TIMEOUT_S) -> bool:
    try:
        return httpx.get(f"{api_url}/api/v3/ping", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def choose_feed(settings: Settings, feed: str) -> FeedChoice:
    """Apply ``--feed auto|binance|local``; live trading never falls back to simulated data."""
    live = not settings.paper_trading
    api, stream = settings.binance_api_url, settings.binance_stream_url
    if feed == "local":
        if live:
            raise EngineStartError("--feed local is simulated data and live trading (PAPER_TRADING=false) "
                                   "never uses it; use --feed binance, or set PAPER_TRADING=true")
        return FeedChoice("local", "", "", "local exchange (simulated market, --feed local)", True)
    if binance_reachable(api):
        return FeedChoice(_label(api), api, stream)
    if feed == "binance" or live:
        why = "live trading needs the real exchange" if live else "--feed binance was asked for"
        raise EngineStartError(f"{api} is unreachable and {why}; check the network or BINANCE_API_URL"
                               + ("" if live else ", or start with --feed local"))
    return FeedChoice("local", "", "", f"{api} is unreachable: using the LOCAL EXCHANGE (simulated market data)",
                      True)


def free_port(preferred: int | None = None) -> int:
    if preferred:
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", preferred))
            return preferred
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def preload_api_modules() -> threading.Thread:
    """Import the API's modules (Serve, FastAPI, the app) in a thread while Ray starts.

    That import is seconds of CPU on a busy machine, and Serve's controller (on the path to a
    healthy ``/health``) is only created after it; ``ray.init`` mostly waits on Ray's processes.
    The modules `cli.ray_worker` defers in Ray's workers are deferred in this process too.
    """
    from cli.ray_worker import install_lazy_imports

    install_lazy_imports()
    import ray  # noqa: F401 - here, so the thread and ``ray.init`` do not both import ray's core

    def load() -> None:
        _lower_this_threads_priority()
        with contextlib.suppress(Exception):  # the real import, later, reports any error
            import serve.deployment  # noqa: F401

    thread = threading.Thread(target=load, name="preload-api", daemon=True)
    thread.start()
    return thread


#: Niceness added to the thread importing the API's modules while Ray starts.
PRELOAD_NICENESS = 10


def _lower_this_threads_priority() -> None:
    """Let the calling thread yield the CPU to Ray's GCS, raylet and agents while Ray starts.

    Ray's start waits on those processes (the raylet on its two agents' imports, ~3 CPU-s), not
    on this import, which is needed only once Ray is up; at equal priority the import took a third
    of two cores from them. Linux applies niceness per thread; elsewhere this does nothing.
    Measured: Ray up in 5.07 s instead of 5.35 s (medians of 8 interleaved pairs).
    """
    if sys.platform == "linux":
        from cli.ray_worker import lower_priority

        lower_priority([threading.get_native_id()], PRELOAD_NICENESS)


def export_serve_env(port: int) -> None:
    """Put Serve's settings for an API on ``port`` (`serve.options.controller_env`) in this
    process's environment, before it starts a local Ray.

    Every Ray process inherits it, so Serve's controller, its proxy and the API replica need no
    runtime_env: a worker with one starts through Ray's ``setup_worker.py`` (one more Python
    process importing Ray: about a CPU-second each on the start-up's path) and cannot be one of the
    workers Ray starts ahead. Only for a Ray this process starts: a cluster's processes do not see
    this environment (`start_engine` with ``serve_env_inherited=False``).
    """
    from serve.options import controller_env

    os.environ.update(controller_env(port))


def init_ray(address: str | None) -> None:
    """Join a cluster at ``address``, or start a single-node Ray sized for this machine."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # A busy laptop can take longer than Ray's default 30 s to register the node.
    os.environ.setdefault("RAY_raylet_start_wait_time_s", "120")
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, namespace="aitrader", log_to_driver=False)
        return
    # Ray gives its node 30 s to register (hard-coded in Ray 2.60); on a busy machine the first
    # start can miss that while imports are cold. Try again before giving up.
    for attempt in range(1, 4):
        try:
            _start_local_ray()
            return
        except Exception as exc:
            ray.shutdown()
            if attempt == 3:
                raise EngineStartError(f"Ray did not start ({exc}); is the machine overloaded? Try again") from exc
            log.warning("Ray did not start (attempt %d of 3): %s; retrying", attempt, exc)


def _start_local_ray() -> None:
    """A new single-node Ray, never someone else's running cluster: the lean head of
    `cli.ray_head` (no autoscaler monitor, log monitor or dashboard head), else plain ``ray.init``."""
    import ray

    from cli.ray_head import start_lean_head

    num_cpus = os.cpu_count() or 2
    object_store_memory = 300 * 1024 * 1024
    # Ray's own metrics (the engine's are on /metrics): no exporter in every worker. Workers'
    # main threads at Ray's own priority, not 15 nice levels below (Ray's default): they run the
    # actors, which are the engine; below them, the dashboard agent's stats rounds and the local
    # exchange's backfill answers took the cores from the actors' start-up, and Serve's idle proxy
    # (`cli.ray_worker.IDLE_NICENESS` below the actors) would not have been below them at all.
    system_config = {"enable_metrics_collection": False, "worker_niceness": 0}
    # No runtime_env: workers inherit this process's environment (usage stats off included), and
    # a job runtime_env makes every worker start wait on Ray's agent.
    if start_lean_head(num_cpus=num_cpus, object_store_memory=object_store_memory, system_config=system_config,
                       namespace="aitrader", log_to_driver=False):
        return
    ray.init(address="local", include_dashboard=False, num_cpus=num_cpus, object_store_memory=object_store_memory,
             _system_config=system_config, namespace="aitrader", log_to_driver=False)


def start_local_exchange(speed: float, say: Any) -> Any:
    """Serve the local exchange from a thread of this process (it needs no Ray), on port 9000 if free.

    In-process, it is ready in well under a second, long before Ray is: nothing in the engine
    waits for it, and it costs no Ray worker process. It lives and dies with ``aitrader up``.
    """
    from aitrader.exchange import ExchangeConfig, start_in_thread

    now = int(time.time() * 1000)
    exchange = start_in_thread(ExchangeConfig(port=free_port(9000), speed=speed, anchor_ms=now - now % 60_000))
    say(f"local exchange serving {exchange.url} (speed x{speed:g})")
    return exchange


def start_local_exchange_in_thread(speed: float, say: Any) -> Future[Any]:
    """`start_local_exchange` in a thread of its own; the future holds the exchange (or its error)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-exchange-start")
    started = pool.submit(start_local_exchange, speed, say)
    pool.shutdown(wait=False)
    return started


def start_engine(settings: Settings, choice: FeedChoice, *, speed: float, port: int, say: Any,
                 exchange: Any = None, serve_env_inherited: bool = False) -> dict[str, Any]:
    """Create the supervisor and its graph, and the API; return the supervisor's handle.

    ``exchange`` is the in-process local exchange (`start_local_exchange`) when the feed is
    local. Serve's controller starts first, then the API is deployed on it (in threads) while the
    supervisor creates the actor graph: the API replica starts beside the actors, and ``/health``
    is healthy as soon as they are wired, not seconds after. The API gets only the supervisor's
    handle and asks it for the other actors' handles when it needs them, so it does not wait for
    the graph, and this process never unpickles those handles (which imports every actor's module).
    The API stays honest: ``/health`` is 503, naming what is still starting, until every actor is
    up and wired (`Supervisor.starting`). ``serve_env_inherited``: `export_serve_env` ran before
    this process started Ray.
    """
    from actors import NAMESPACE
    from actors.supervisor import Supervisor

    api_url, stream_url, anchor = choice.api_url, choice.stream_url, None
    if exchange is not None:
        api_url, stream_url, anchor = exchange.url, exchange.ws_url, exchange.exchange.clock.anchor_ms
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="serve-start") as pool:
        serve_started = pool.submit(_start_serve, port, serve_env_inherited)
        supervisor = Supervisor.options(name="supervisor", namespace=NAMESPACE, get_if_exists=True).remote(
            settings, choice.kind, stream_url, api_url, choice.note, speed, anchor)
        say(f"starting the API on port {port}")
        api_deployed = pool.submit(_deploy_api, serve_started, settings, port, supervisor, serve_env_inherited)
        # Serve's controller first: the API's start is a chain (controller, then replica), the
        # graph's a crowd of actors starting side by side, and on 2 busy cores the crowd kept the
        # controller from being up for 9 s. Meanwhile the supervisor loads the actor classes.
        with contextlib.suppress(Exception):  # Serve failing to start is reported by the deploy
            serve_started.result(timeout=SERVE_HEAD_START_S)
        for ref in supervisor.start.remote():
            say(_get(ref, 600))
        api_deployed.result(timeout=300)
    wait_healthy(f"http://127.0.0.1:{port}", 60)
    return {"supervisor": supervisor, "exchange": exchange}


def _deploy_api(serve_started: Any, settings: Settings, port: int, supervisor: Any, env_inherited: bool) -> None:
    """Deploy the API as soon as Serve's controller is up, whatever the actor graph's progress."""
    from serve.deployment import start_api

    serve_started.result(timeout=300)
    start_api(settings, port, supervisor=supervisor, start_serve=False, env_inherited=env_inherited)


def _start_serve(port: int, env_inherited: bool) -> None:
    """Serve's controller, set up so the API replica itself serves HTTP on ``[::]:port`` (direct
    ingress: IPv4 and IPv6 both reach it, no proxy hop, no per-request logging). Serve's own HTTP
    proxy, idle under direct ingress, is not waited for."""
    from serve.deployment import start_serve_proxy

    start_serve_proxy(port, wait_for_proxy=False, env_inherited=env_inherited)


def wait_healthy(address: str, timeout_s: float) -> None:
    """Wait for ``/health`` to answer 200; a 503 (the engine still starting) is waited out too."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    # One client for every poll: a new one per poll builds an SSL context (~45 ms of CPU each,
    # taken from the engine that is starting on the same cores).
    with httpx.Client(timeout=2) as http:
        while time.monotonic() < deadline:
            try:
                answer = http.get(f"{address}/health")
            except httpx.HTTPError as exc:
                last = f"no answer ({type(exc).__name__})"
            else:
                if answer.status_code == 200:
                    return
                last = f"{answer.status_code}: {_detail(answer)}"
            time.sleep(0.3)
    raise EngineStartError(f"the API at {address} did not become healthy within {timeout_s:.0f} s (last: {last})")


def _detail(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("detail", answer.text))
    except ValueError:
        return answer.text[:200]


def stop_engine(engine: dict[str, Any], say: Any, *, own_ray: bool = False) -> None:
    """Graceful shutdown: checks stop, in-flight work finishes, the store flushes, actors stop.

    ``own_ray``: this process started the Ray it runs on, and ``ray.shutdown()`` will end every
    process of it (Serve's included); then Serve is not shut down on its own, which spends
    seconds draining a proxy for nothing once the engine's state is flushed. On a cluster the
    engine joined, Serve's app is removed so it does not outlive the engine.
    """
    import ray

    say("stopping: no new checks; finishing in-flight work and flushing the store")
    with contextlib.suppress(Exception):
        report = _get(engine["supervisor"].shutdown.remote(), 30)
        if report:
            say(f"shutdown: {report}")
    if not own_ray:
        from ray import serve

        # Serve's own shutdown drains its proxy for 30 s or more: give it a few seconds.
        stopper = threading.Thread(target=_quietly, args=(serve.shutdown,), name="serve-shutdown", daemon=True)
        stopper.start()
        stopper.join(SERVE_SHUTDOWN_WAIT_S)
    if engine.get("supervisor") is not None:
        with contextlib.suppress(Exception):
            ray.kill(engine["supervisor"], no_restart=True)
    stop_local_exchange(engine.get("exchange"))


def stop_local_exchange(exchange: Any) -> None:
    """Stop the in-process local exchange (its stream clients hear ``serverShutdown``)."""
    if exchange is not None:
        with contextlib.suppress(Exception):
            exchange.stop(timeout=5.0)


def _quietly(fn: Any) -> None:
    with contextlib.suppress(Exception):
        fn()


def _get(ref: Any, timeout: float) -> Any:
    import ray

    return ray.get(ref, timeout=timeout)
