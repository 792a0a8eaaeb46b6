"""`aitrader up`'s pieces that need no Ray: the in-process local exchange and the start-up timeline's
/proc readings."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from bench.engine_timeline import cpu_seconds, process_label, process_started
from cli.engine import start_local_exchange, start_local_exchange_in_thread, stop_local_exchange


def test_the_local_exchange_serves_in_process_on_a_minute_aligned_timeline_until_stopped() -> None:
    said: list[str] = []

    exchange = start_local_exchange(60.0, said.append)
    try:
        answer = httpx.get(f"{exchange.url}/api/v3/ping", timeout=5)
        klines = httpx.get(f"{exchange.url}/api/v3/klines", params={"symbol": "BTCUSDT", "interval": "1m",
                                                                   "limit": 3}, timeout=5).json()
    finally:
        stop_local_exchange(exchange)

    assert answer.status_code == 200
    assert exchange.ws_url == exchange.url.replace("http://", "ws://")
    assert exchange.exchange.clock.anchor_ms % 60_000 == 0
    assert len(klines) == 3 and all(k[0] % 60_000 == 0 for k in klines)
    assert said == [f"local exchange serving {exchange.url} (speed x60)"]
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{exchange.url}/api/v3/ping", timeout=2)


def test_the_local_exchange_starts_in_its_own_thread_while_the_caller_goes_on() -> None:
    import threading

    said: list[str] = []
    caller = threading.current_thread()

    def say(line: str) -> None:
        said.append(line)
        assert threading.current_thread() is not caller

    started = start_local_exchange_in_thread(60.0, say)
    exchange = started.result(timeout=30)
    try:
        answer = httpx.get(f"{exchange.url}/api/v3/ping", timeout=5)
    finally:
        stop_local_exchange(exchange)

    assert answer.status_code == 200
    assert said == [f"local exchange serving {exchange.url} (speed x60)"]


def test_stopping_no_exchange_is_a_no_op() -> None:
    stop_local_exchange(None)


def test_timeline_reads_start_time_cpu_and_name_of_a_process() -> None:
    started = process_started(os.getpid())

    assert started is not None and time.time() - 3600 * 24 * 365 < started <= time.time()
    assert cpu_seconds(os.getpid()) > 0
    assert process_label(os.getpid()) != "?"
    assert process_started(2**22 + 12345) is None  # above pid_max: never a live process


def test_the_api_modules_load_in_the_background_without_starting_ray() -> None:
    # A fresh interpreter: in the full suite another test's session has Ray up in this one.
    check = ("import sys, ray; from cli.engine import preload_api_modules; preload_api_modules().join(120); "
             "assert 'serve.deployment' in sys.modules, 'not preloaded'; "
             "assert not ray.is_initialized(), 'the preload started Ray'")

    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})

    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread niceness is Linux's")
def test_the_api_preload_thread_yields_to_rays_processes_and_the_caller_keeps_its_priority() -> None:
    import threading

    from cli.engine import PRELOAD_NICENESS, _lower_this_threads_priority

    before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    seen: list[int] = []

    def lowered() -> None:
        _lower_this_threads_priority()
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    thread = threading.Thread(target=lowered)
    thread.start()
    thread.join()

    assert seen == [min(19, before + PRELOAD_NICENESS)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == before
