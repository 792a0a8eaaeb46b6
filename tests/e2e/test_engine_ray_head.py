"""`aitrader up`'s own Ray is a lean head (`cli.ray_head`): no autoscaler monitor, log monitor or
dashboard head (and the dashboard agent does not keep asking where it is), whose workers start
through `cli.ray_worker` (some of Ray's imports deferred to first use); the actors' output
still lands in the session's log files; a stop (SIGTERM, as `aitrader down` sends) and a
``kill -9`` of the `aitrader up` process alone both end every process of its Ray session.

Starts real engines: run under the shared lock,
``flock /tmp/aitrader-ray.lock .venv/bin/python -m pytest tests/e2e/test_engine_ray_head.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bench.engine import engine_pids, free_port, kill_all, launch, session_names, wait_gone, wait_healthy
from bench.engine_timeline import process_label
from cli.ray_worker import IDLE_NICENESS

pytestmark = pytest.mark.timeout(900)

STARTUP_DEADLINE_S = 360.0
#: Guards against hangs on a loaded 2-core machine, not timing assertions.
GONE_DEADLINE_S = 90.0
LEFT_OUT = {"monitor.py", "log_monitor.py", "dashboard.py"}
RAY_TEMP = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray"


def _start(home: Path) -> tuple[subprocess.Popen[bytes], set[int], set[str]]:
    port = free_port()
    process = launch(home, port, extra_env={"RAY_USAGE_STATS_ENABLED": "0"})
    try:
        wait_healthy(process, port, STARTUP_DEADLINE_S)
    except BaseException:
        _clean_up(process, set())
        raise
    pids = engine_pids(process.pid)
    return process, pids, session_names(pids)


def _clean_up(process: subprocess.Popen[bytes], sessions: set[str]) -> None:
    """Whatever is left of one engine, by pid only (never by name: other Rays run here)."""
    leftovers = engine_pids(process.pid, sessions) | ({process.pid} if process.poll() is None else set())
    kill_all(leftovers)
    wait_gone(leftovers, 60)
    process.wait(timeout=30)


def _wait_for_process(parent: int, label_part: str) -> int:
    deadline = time.monotonic() + GONE_DEADLINE_S
    while time.monotonic() < deadline:
        found = [p for p in engine_pids(parent) if label_part in process_label(p)]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no {label_part} process under {parent} after {GONE_DEADLINE_S} s")


def _thread_niceness(pid: int) -> list[int]:
    return [os.getpriority(os.PRIO_PROCESS, int(thread)) for thread in os.listdir(f"/proc/{pid}/task")]


def _alive(pids: set[int]) -> dict[int, str]:
    return {p: process_label(p) for p in pids if Path(f"/proc/{p}").exists() and process_label(p) != "?"}


def test_a_lean_head_without_unused_processes_whose_actors_still_log_and_a_stop_ends_it(tmp_path: Path) -> None:
    process, pids, sessions = _start(tmp_path)
    try:
        labels = {process_label(p) for p in pids}
        logs = [RAY_TEMP / session / "logs" for session in sessions]
        stderr_files = [f for d in logs for f in d.glob("worker-*.err")]

        assert len(sessions) == 1, sessions
        assert {"gcs_server", "raylet", "ray::Supervisor"} <= labels, labels
        assert not labels & LEFT_OUT, f"left-out processes running: {labels & LEFT_OUT}"
        raylet = next(p for p in pids if process_label(p) == "raylet")
        # Its workers (every actor above, healthy) run Ray's worker through cli/ray_worker.py.
        assert "cli/ray_worker.py" in Path(f"/proc/{raylet}/cmdline").read_bytes().decode(errors="replace")
        # ... the actors at Ray's own priority (``worker_niceness`` 0: every thread of theirs, Ray's
        # default left their main threads at 15), Serve's idle proxy (direct ingress) IDLE_NICENESS below.
        supervisor = next(p for p in pids if process_label(p).startswith("ray::Supervisor"))
        assert set(_thread_niceness(supervisor)) == {0}
        proxy = _wait_for_process(process.pid, "ProxyActor")  # it may still be starting, below the others
        assert min(_thread_niceness(proxy)) >= IDLE_NICENESS
        assert any(":actor_name:Supervisor" in f.read_text(errors="replace") for f in stderr_files), \
            f"no actor output in {logs}"
        agent_log = "".join(f.read_text(errors="replace") for d in logs for f in d.glob("dashboard_agent.log"))
        assert agent_log, f"no dashboard agent log in {logs}"
        assert "Get dashboard http address failed" not in agent_log, "the agent keeps asking for a dashboard"

        os.kill(process.pid, signal.SIGTERM)  # as `aitrader down` does
        process.wait(timeout=120)
        wait_gone(pids | engine_pids(process.pid, sessions), GONE_DEADLINE_S)

        assert process.returncode == 0
    finally:
        _clean_up(process, sessions)


def test_kill_9_of_aitrader_up_alone_ends_every_process_of_its_ray(tmp_path: Path) -> None:
    process, pids, sessions = _start(tmp_path)
    try:
        os.kill(process.pid, signal.SIGKILL)  # not its process group: Ray's processes must follow by themselves
        process.wait(timeout=30)

        try:
            wait_gone(pids | engine_pids(process.pid, sessions), GONE_DEADLINE_S)
        except RuntimeError:
            pytest.fail(f"outlived the killed aitrader up: {_alive(pids | engine_pids(process.pid, sessions))}")
    finally:
        _clean_up(process, sessions)
