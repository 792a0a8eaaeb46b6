"""Where `aitrader up`'s start-up time goes: a timeline of its progress lines and processes.

Launches ``aitrader up --headless --feed local`` (100 symbols, 50 active-trader slots, as
``bench/engine.py``), timestamps every line it prints as it arrives, and once ``/health`` is
healthy lists every process of the engine with the second (after launch) it started, named by
what it runs (``ray::Store``, ``raylet``, ``ServeController`` ...). Then it stops the engine as
``aitrader down`` does (SIGTERM to the ``aitrader up`` process) and times that too. Seconds are from the launch of the process.

Run it under the shared Ray lock: ``flock /tmp/aitrader-ray.lock .venv/bin/python bench/engine_timeline.py``.
``AITRADER_LEAN_RAY_HEAD=0`` in the environment measures the engine on plain ``ray.init``'s head
instead of `cli.ray_head`'s lean one. The last line printed is one JSON object (stage -> seconds).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.engine import (  # noqa: E402 - after the path set-up, as a script
    SYMBOLS,
    TRADERS,
    engine_pids,
    free_port,
    kill_all,
    session_names,
    wait_gone,
)

_TICK = os.sysconf("SC_CLK_TCK")


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise RuntimeError("no btime in /proc/stat")


def process_started(pid: int) -> float | None:
    """Wall-clock time (epoch seconds) this process started, from /proc/<pid>/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return _boot_time() + int(fields[19]) / _TICK


def cpu_seconds(pid: int) -> float:
    """User + system CPU this process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def process_label(pid: int) -> str:
    """A short name for an engine process: its Ray actor or component, else its program."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"
    words = [a.decode(errors="replace") for a in argv if a]
    if words and words[0].startswith("ray::"):
        return words[0]
    for word in words:
        name = Path(word).name
        if name in {"gcs_server", "raylet", "aitrader"} or name.endswith((".py", "_agent")):
            return name
        if word.startswith("ray.") or word.startswith("-m"):
            continue
    return comm or (words[0] if words else "?")


def health_answers(process: subprocess.Popen[bytes], port: int, launched: float,
                   deadline_s: float = 300.0) -> list[tuple[float, str]]:
    """Poll ``/health`` until it answers 200; every change of answer (status and detail), timed.

    While the actors start the API may already answer 503 naming what is still starting.
    """
    import httpx

    changes: list[tuple[float, str]] = []
    with httpx.Client(timeout=2) as http:  # one client: a new one per poll costs ~45 ms of CPU
        while time.time() - launched < deadline_s:
            if process.poll() is not None:
                raise RuntimeError(f"aitrader up exited with {process.returncode} before it was healthy")
            try:
                reply = http.get(f"http://127.0.0.1:{port}/health")
                answer = f"{reply.status_code} {reply.text[:200]}"
            except httpx.HTTPError:
                answer = ""
            if answer and (not changes or _kind(changes[-1][1]) != _kind(answer)):
                changes.append((round(time.time() - launched, 2), answer))
            if answer.startswith("200"):
                return changes
            time.sleep(0.2)
    raise RuntimeError(f"/health on port {port} not healthy within {deadline_s:.0f} s")


def _kind(answer: str) -> str:
    """A 503 with its detail; a 200 alone (its body holds the time, new on every answer)."""
    return "200" if answer.startswith("200") else answer


def ray_head() -> str:
    """Which local Ray head `aitrader up` starts: ``lean`` (`cli.ray_head`) or plain ``ray.init``."""
    return "ray.init" if os.environ.get("AITRADER_LEAN_RAY_HEAD", "1") == "0" else "lean"


def main() -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="aitrader-bench-timeline-"))
    port = free_port()
    env = {**os.environ, "AITRADER_HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0",
           "MAX_SYMBOLS": str(SYMBOLS), "MAX_ACTIVE_TRADERS": str(TRADERS + 1)}
    args = [str(ROOT / ".venv" / "bin" / "aitrader"), "up", "--headless", "--feed", "local", "--speed", "60",
            "--port", str(port)]
    launched = time.time()
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True, cwd=str(home))
    lines: list[tuple[float, str]] = []

    def read() -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            lines.append((time.time() - launched, raw.decode(errors="replace").rstrip()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    sessions: set[str] = set()
    result: dict[str, Any] = {"bench": "engine_timeline", "ray_head": ray_head()}
    try:
        answers = health_answers(process, port, launched)
        result["healthy_s"] = round(time.time() - launched, 2)
        result["api_first_answer_s"] = answers[0][0] if answers else None
        pids = engine_pids(process.pid)
        sessions = session_names(pids)
        started = sorted((process_started(p) or launched, process_label(p), p, cpu_seconds(p)) for p in pids)
        print("-- processes: started (s after launch), CPU used by then (s)")
        for at, label, pid, cpu in started:
            print(f"{at - launched:7.2f}  {cpu:6.2f}  {label}  (pid {pid})")
        result["cpu_s"] = round(sum(cpu for *_, cpu in started), 1)
        # When Ray's raylet started: everything before it is Ray's head start-up, serial.
        result["raylet_started_s"] = next((round(at - launched, 2) for at, label, *_ in started
                                           if label == "raylet"), None)
        # When Ray was up and connected: the CLI's next step is the API.
        result["ray_ready_s"] = next((round(at, 2) for at, line in list(lines) if "starting the API" in line), None)
        print("-- output of aitrader up (s after launch)")
        for at, line in list(lines):
            print(f"{at:7.2f}  {line}")
        print("-- answers of /health as they changed (s after launch)")
        for at, answer in answers:
            print(f"{at:7.2f}  {answer}")
        result["processes"] = len(pids)
        stop = time.time()
        os.kill(process.pid, signal.SIGTERM)  # as `aitrader down` does
        process.wait(timeout=120)
        wait_gone(pids, 120)
        result["shutdown_s"] = round(time.time() - stop, 2)
        print("-- output while stopping (s after SIGTERM)")
        for at, line in lines:
            if at + launched >= stop:
                print(f"{at + launched - stop:7.2f}  {line}")
    finally:
        kill_all(engine_pids(process.pid, sessions) | ({process.pid} if process.poll() is None else set()))
    return result


if __name__ == "__main__":
    print(json.dumps(main()))
