"""`aitrader up`, `aitrader down` and `aitrader tui`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import typer

from aitrader.config import aitrader_home
from aitrader.logs import configure_logging
from cli.common import fail, settings_or_exit

PID_FILE = "engine.pid"
LOG_FILE = "engine.log"


def _say(message: str) -> None:
    typer.secho(f"aitrader: {message}", fg=typer.colors.CYAN, err=True)


def up(
    headless: bool = typer.Option(False, "--headless", help="Run without the terminal UI."),
    feed: str = typer.Option("auto", help="Market data: auto (Binance, else the local exchange in paper mode), binance or local."),
    speed: float = typer.Option(1.0, help="Local exchange only: market time per wall second (60 closes a 1m candle each second)."),
    address: str | None = typer.Option(None, help="Join an existing Ray cluster (e.g. ray://head:10001 or auto) instead of starting one."),
    port: int = typer.Option(0, help="API port (default: API_PORT, 8080)."),
    detach: bool = typer.Option(False, "--detach", help="Start in the background and return once healthy; stop with `aitrader down`."),
) -> None:
    """Start the engine: Ray, the actor graph, the API, then the terminal UI."""
    if feed not in ("auto", "binance", "local"):
        raise typer.BadParameter("use auto, binance or local", param_hint="--feed")
    if speed <= 0:
        raise typer.BadParameter("must be greater than zero, e.g. --speed 60", param_hint="--speed")
    settings = settings_or_exit()
    port = port or settings.api_port
    if settings.is_cloud:
        headless = True
    configure_logging(settings.log_level.value, settings.log_format.value)
    if detach:
        _detach(feed, speed, address, port)
        return

    from cli.engine import (
        EngineStartError,
        choose_feed,
        export_serve_env,
        init_ray,
        preload_api_modules,
        start_engine,
        start_local_exchange_in_thread,
        stop_engine,
        stop_local_exchange,
    )

    mode = "PAPER" if settings.paper_trading else "LIVE"
    _say(f"starting aitrader ({mode} trading, storage {settings.storage_backend}, user {settings.user_id})")
    try:
        choice = choose_feed(settings, feed)
    except EngineStartError as exc:
        fail(f"aitrader up: {exc}")
    if choice.note:
        typer.secho(f"\n  !!! {choice.note.upper()} !!!\n", fg=typer.colors.YELLOW, bold=True, err=True)
    _say("starting Ray" + (f" (joining {address})" if address else " (single node)"))
    if address is None:
        export_serve_env(port)  # before Ray starts (its processes inherit it) and before Serve is imported
    preload_api_modules()
    # The local exchange needs no Ray: it starts in a thread while Ray starts (this thread mostly
    # waits on Ray's processes then), and is serving long before the stream shards connect.
    exchange_start = start_local_exchange_in_thread(speed, _say) if choice.start_local_exchange else None
    try:
        init_ray(address)
    except EngineStartError as exc:
        if exchange_start is not None and exchange_start.exception() is None:
            stop_local_exchange(exchange_start.result())
        fail(f"aitrader up: {exc}")
    try:
        exchange = exchange_start.result() if exchange_start else None
    except Exception as exc:
        import ray

        ray.shutdown()
        fail(f"aitrader up: the local exchange did not start ({exc})")
    engine: dict = {}
    stopping = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        engine = start_engine(settings, choice, speed=speed, port=port, say=_say, exchange=exchange,
                              serve_env_inherited=address is None)
        _write_pid()
        _say(f"engine running; API on http://127.0.0.1:{port} (key in {aitrader_home() / 'api_key'})")
        if headless:
            _say("headless: Ctrl-C or `aitrader down` stops it")
            while not stopping.wait(1.0):
                pass
        else:
            from cli.tui import run_tui

            run_tui(f"http://127.0.0.1:{port}", settings.api_key.get_secret_value())
    except EngineStartError as exc:
        fail(f"aitrader up: {exc}")
    finally:
        if engine:
            stop_engine(engine, _say, own_ray=address is None)
        else:
            stop_local_exchange(exchange)
        _clear_pid()
        import ray

        ray.shutdown()
        _say("stopped")


def down(timeout: float = typer.Option(30.0, help="Seconds to wait for a graceful stop before killing.")) -> None:
    """Stop a detached engine gracefully (the same path as Ctrl-C)."""
    pid = _read_pid()
    if pid is None:
        fail("aitrader down: no running engine found (no ~/.aitrader/engine.pid); nothing to stop")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        _pid_path().unlink(missing_ok=True)
        fail(f"aitrader down: the engine (pid {pid}) is not running; removed the stale pid file")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            _say("engine stopped")
            return
        time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    _pid_path().unlink(missing_ok=True)
    fail(f"aitrader down: the engine did not stop within {timeout:.0f} s and was killed")


def tui(
    address: str = typer.Option("http://127.0.0.1:8080", help="Engine API address, local or in the cloud."),
    api_key: str | None = typer.Option(None, "--api-key", help="API key (default: the one in ~/.aitrader/api_key)."),
) -> None:
    """Attach the terminal UI to a running engine, local or remote."""
    from aitrader.config import local_api_key
    from cli.tui import run_tui

    run_tui(address.rstrip("/"), api_key or os.environ.get("API_KEY") or local_api_key())


def _detach(feed: str, speed: float, address: str | None, port: int) -> None:
    from cli.engine import EngineStartError, wait_healthy

    home = aitrader_home()
    home.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "cli.main", "up", "--headless", "--feed", feed, "--speed", str(speed),
            "--port", str(port)] + (["--address", address] if address else [])
    with open(home / LOG_FILE, "ab") as log_file:
        process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    _say(f"starting in the background (pid {process.pid}); log: {home / LOG_FILE}")
    try:
        wait_healthy(f"http://127.0.0.1:{port}", 180)
    except EngineStartError as exc:
        fail(f"aitrader up --detach: {exc}; see {home / LOG_FILE}")
    _say(f"engine healthy on http://127.0.0.1:{port}; attach with `aitrader tui`, stop with `aitrader down`")


def _pid_path() -> Path:
    return aitrader_home() / PID_FILE


def _write_pid() -> None:
    _pid_path().parent.mkdir(parents=True, exist_ok=True)
    _pid_path().write_text(str(os.getpid()))


def _read_pid() -> int | None:
    try:
        return int(_pid_path().read_text().strip())
    except (OSError, ValueError):
        return None


def _clear_pid() -> None:
    if _read_pid() == os.getpid():
        _pid_path().unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
