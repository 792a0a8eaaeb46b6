"""Engine benchmark: `aitrader up --headless --feed local` as a subprocess, 100 symbols, 50 traders.

Measures

* ``startup_s``: from launching the process to a healthy ``GET /health``;
* ``memory_pss_mb``: proportional set size of every process of the engine (the ``aitrader up``
  process, its descendants and every process of its Ray session, found through the session dir
  in their command lines), summed from ``/proc/<pid>/smaps_rollup``, once 50 traders over 100
  symbols are running;
* ``shutdown_s``: from SIGTERM to the ``aitrader up`` process (what ``aitrader down`` sends; a
  container stop does the same) to the last of those processes gone;
* ``floor_s`` (unless ``--no-floor``): `bench/engine_floor.py` run right after, the same Ray and
  Serve with none of the engine's code, and ``startup_over_floor``, the ratio of the two.

The engine runs in its own process group and AITRADER_HOME (a temp dir); whatever outlives the
measurement is killed by pid, never by name, so other Ray sessions on the machine are left alone.
The last line printed is one JSON object.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SYMBOLS = 100
TRADERS = 50
SYMBOLS_PER_TRADER = 4
STARTUP_DEADLINE_S = 300.0
SHUTDOWN_DEADLINE_S = 120.0
_SESSION = re.compile(r"(/tmp/ray/session_[0-9_\-]+)|session_name=(session_[0-9_\-]+)")


def free_port() -> int:
    """A free port for the engine's API, outside Ray's worker ports and the ephemeral range.

    An ephemeral port can be taken by a Ray process before the API replica binds it, and Serve
    then blocks that port for good (`serve.options.free_api_port`).
    """
    from serve.options import free_api_port

    return free_api_port()


def launch(home: Path, port: int, speed: float = 60.0, extra_env: dict[str, str] | None = None,
           log_path: Path | None = None) -> subprocess.Popen[bytes]:
    """Start ``aitrader up --headless --feed local`` in a new session (its own process group)."""
    env = {**os.environ, "AITRADER_HOME": str(home), "RAY_USAGE_STATS_ENABLED": "0", **(extra_env or {})}
    args = [str(ROOT / ".venv" / "bin" / "aitrader"), "up", "--headless", "--feed", "local", "--speed", f"{speed:g}",
            "--port", str(port)]
    log = open(log_path or home / "up.log", "ab")  # noqa: SIM115 - the child owns it from here
    return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, cwd=str(home))


def wait_healthy(process: subprocess.Popen[bytes], port: int, deadline_s: float) -> float:
    """Seconds until ``/health`` answers 200; raises if the process exits or the deadline passes."""
    start = time.monotonic()
    with httpx.Client(timeout=2) as http:  # one client: a new one per poll costs ~45 ms of CPU
        while time.monotonic() - start < deadline_s:
            if process.poll() is not None:
                raise RuntimeError(f"aitrader up exited with {process.returncode} before it was healthy")
            with contextlib.suppress(httpx.HTTPError):
                if http.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    return time.monotonic() - start
            time.sleep(0.2)
    raise RuntimeError(f"/health on port {port} not healthy within {deadline_s:.0f} s")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def descendants(pid: int) -> set[int]:
    seen: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        for child in _children(current):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def session_names(pids: set[int]) -> set[str]:
    """Ray session ids (``session_2024-...``) named in these processes' command lines."""
    names: set[str] = set()
    for pid in pids:
        for match in _SESSION.finditer(_cmdline(pid)):
            names.add(Path(match.group(1)).name if match.group(1) else match.group(2))
    return names


def engine_pids(root: int, sessions: set[str] | None = None) -> set[int]:
    """The engine's processes: ``root``, its descendants, and every process of its Ray session(s)."""
    pids = {root} | descendants(root) if Path(f"/proc/{root}").exists() else set()
    sessions = (sessions or set()) | session_names(pids)
    if sessions:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and any(s in _cmdline(int(entry.name)) for s in sessions):
                pids.add(int(entry.name))
    return {p for p in pids if Path(f"/proc/{p}").exists()}


def pss_mb(pids: set[int]) -> float:
    total_kb = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kb += int(line.split()[1])
                    break
    return total_kb / 1024


def kill_all(pids: set[int]) -> None:
    """SIGKILL these pids (and nothing found by name)."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def wait_gone(pids: set[int], deadline_s: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        alive = {p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)}
        if not alive:
            return time.monotonic() - start
        time.sleep(0.1)
    raise RuntimeError(f"processes still alive after {deadline_s:.0f} s")


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def api_key(home: Path) -> str:
    return (home / "api_key").read_text().strip()


def client(home: Path, port: int) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                        headers={"Authorization": f"Bearer {api_key(home)}"})


def main() -> dict[str, Any]:
    from aitrader.exchange import benchmark_symbols

    symbols = benchmark_symbols(SYMBOLS)
    home = Path(tempfile.mkdtemp(prefix="aitrader-bench-engine-"))
    port = free_port()
    started = time.monotonic()
    # One more active trader than the bench creates: the engine seeds its example trader.
    process = launch(home, port, extra_env={"MAX_SYMBOLS": str(SYMBOLS), "MAX_ACTIVE_TRADERS": str(TRADERS + 1)})
    sessions: set[str] = set()
    result: dict[str, Any] = {"bench": "engine", "symbols": SYMBOLS, "traders": TRADERS,
                              "ray_head": "ray.init" if os.environ.get("AITRADER_LEAN_RAY_HEAD", "1") == "0" else "lean"}
    try:
        wait_healthy(process, port, STARTUP_DEADLINE_S)
        result["startup_s"] = round(time.monotonic() - started, 2)
        with client(home, port) as api:
            for index in range(TRADERS):
                mine = [symbols[(index * SYMBOLS_PER_TRADER + k) % SYMBOLS] for k in range(SYMBOLS_PER_TRADER)]
                answer = api.post("/api/traders", json={
                    "name": f"bench-{index:02d}", "symbols": mine, "timeframes": ["1m"], "status": "active",
                    "signal_code": "rsi(close, 14)[-1] > 50 and close[-1] > ema(close, 20)[-1]"})
                answer.raise_for_status()
            # Let the supervisor stream the new symbols and the traders run a few checks.
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                status = api.get("/status").json()
                streamed = len([s for s in status.get("connected_symbols", []) if s.startswith("SYM")])
                if streamed >= SYMBOLS and status.get("counts", {}).get("active_traders", 0) >= TRADERS:
                    break
                time.sleep(2)
            result["symbols_streamed"] = streamed
            result["active_traders"] = status.get("counts", {}).get("active_traders")
            time.sleep(10)
        pids = engine_pids(process.pid)
        sessions = session_names(pids)
        result["processes"] = len(pids)
        result["memory_pss_mb"] = round(pss_mb(pids), 1)
        stop = time.monotonic()
        # Not the whole process group: Ray's own processes share it, and signalling them too would
        # tear Ray down under the engine's graceful stop (Ctrl-C's SIGINT is blocked in them).
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=SHUTDOWN_DEADLINE_S)
        wait_gone(pids, SHUTDOWN_DEADLINE_S)
        result["shutdown_s"] = round(time.monotonic() - stop, 2)
        result["exit_code"] = process.returncode
        # The graceful stop's own account (in-flight checks, unflushed store writes), as logged.
        said = [line for line in (home / "up.log").read_text(errors="replace").splitlines()
                if line.startswith("aitrader: shutdown: ")]
        result["shutdown_report"] = said[-1].removeprefix("aitrader: shutdown: ") if said else None
    finally:
        kill_all(engine_pids(process.pid, sessions) | ({process.pid} if process.poll() is None else set()))
    result["targets_met"] = (result.get("startup_s", 1e9) < 15 and result.get("memory_pss_mb", 1e9) < 2048)
    return result


def with_floor(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` plus the floor measured right after it (`bench.engine_floor`: the same Ray and
    Serve with none of the engine's code), and the start-up's ratio to it."""
    from bench.engine_floor import main as floor

    measured = floor()
    result["floor_s"] = measured.get("floor_s")
    result["floor_cpu_s"] = measured.get("cpu_s")
    if result.get("startup_s") and result["floor_s"]:
        result["startup_over_floor"] = round(result["startup_s"] / result["floor_s"], 2)
    return result


if __name__ == "__main__":
    print(json.dumps(with_floor(main()) if "--no-floor" not in sys.argv else main()))
