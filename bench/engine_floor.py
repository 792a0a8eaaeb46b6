"""The start-up floor under `aitrader up`: the same Ray and Serve, with none of the engine's code.

Launches a child process that starts Ray as ``aitrader up`` does (`cli.engine.init_ray`: the lean
head, Serve's settings in the environment, Serve's modules loading in a thread meanwhile), Serve's
controller without waiting for its proxy, an API replica with direct ingress whose FastAPI app
answers ``/health`` and nothing else, and eight actors that only answer a ping (the engine's supervisor, event hub, store, executor, monitor,
filter worker, stream shard and scheduler, as empty shells). ``floor_s`` is the time from the
launch to ``/health`` answering 200 with every actor answering; ``cpu_s`` the CPU every process
of it used by then. `bench/engine.py`'s ``startup_s`` minus this is what the engine's own code
costs on the way to a healthy ``/health``.

Run it under the shared Ray lock: ``flock /tmp/aitrader-ray.lock .venv/bin/python bench/engine_floor.py``.
The last line printed is one JSON object.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.engine import engine_pids, free_port, kill_all, wait_gone  # noqa: E402 - after the path set-up
from bench.engine_timeline import cpu_seconds  # noqa: E402

ACTORS = 8
DEADLINE_S = 180.0


def child(port: int) -> None:
    """The floor itself: Ray, Serve with a one-route app, eight empty actors; then wait for SIGTERM."""
    from cli.engine import export_serve_env, init_ray, preload_api_modules

    export_serve_env(port)
    preload_api_modules()  # as `aitrader up` does: Serve's modules load in a thread while Ray starts
    init_ray(None)
    import ray
    from fastapi import FastAPI
    from ray import serve

    from serve.deployment import start_serve_proxy
    from serve.options import replica_options

    @ray.remote(num_cpus=0)
    class Shell:
        def ping(self) -> int:
            return os.getpid()

    start_serve_proxy(port, wait_for_proxy=False, env_inherited=True)
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "healthy"}

    @serve.deployment(name="Floor", **replica_options(env_inherited=True))
    @serve.ingress(app)
    class Floor:
        pass

    shells = [Shell.remote() for _ in range(ACTORS)]
    serve.run(Floor.bind(), name="floor", route_prefix="/")  # type: ignore[attr-defined]  # added by @serve.deployment
    ray.get([shell.ping.remote() for shell in shells], timeout=DEADLINE_S)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    print("actors up", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    ray.shutdown()


def _healthy(http: httpx.Client, port: int) -> bool:
    try:
        return http.get(f"http://127.0.0.1:{port}/health").status_code == 200
    except httpx.HTTPError:
        return False


def main() -> dict[str, Any]:
    port = free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, __file__, "--child", str(port)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    result: dict[str, Any] = {"bench": "engine_floor", "actors": ACTORS}
    sessions: set[str] = set()
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        if line.strip() != "actors up":
            raise RuntimeError(f"the floor did not start (exit code {process.poll()})")
        with httpx.Client(timeout=2) as http:
            while not _healthy(http, port):
                time.sleep(0.1)
        result["floor_s"] = round(time.monotonic() - started, 2)
        pids = engine_pids(process.pid)
        result["cpu_s"] = round(sum(cpu_seconds(pid) for pid in pids), 1)
        result["processes"] = len(pids)
    finally:
        pids = engine_pids(process.pid, sessions)
        process.send_signal(signal.SIGTERM)
        try:
            wait_gone(pids, 30)
        except RuntimeError:
            kill_all(engine_pids(process.pid, sessions) | pids)
    return result


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(int(sys.argv[2]))
    else:
        print(json.dumps(main()))
