"""Pilot tests of the TUI against a real engine: `aitrader up --headless --feed local` in a subprocess.

One engine serves the whole module (a start-up takes minutes on a busy machine); the tests run in
file order and each drives a fresh app against it. Run it under the shared lock:
``flock /tmp/aitrader-ray.lock .venv/bin/pytest tests/e2e/test_tui_engine.py``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from textual.widgets import ContentSwitcher, DataTable, Input, RichLog, Static, TextArea

from bench.engine import (
    api_key,
    engine_pids,
    free_port,
    kill_all,
    launch,
    session_names,
    wait_gone,
    wait_healthy,
)
from cli.tui.app import AitraderApp
from cli.tui.screens.confirm import ConfirmScreen
from cli.tui.screens.main import PANEL_IDS
from cli.tui.screens.trader_editor import TraderEditor
from tests.e2e.tui_helpers import app_for, screen_text, table_rows, wait_for, wait_ready

pytestmark = pytest.mark.timeout(1200)

STARTUP_DEADLINE_S = 360.0
#: Guards against hangs on a loaded 2-core machine, not timing assertions.
ENGINE_WAIT_S = 180.0
REPLICA = b"ServeReplica:aitrader-api:"


@dataclass
class Engine:
    """A running `aitrader up` and how to reach its API."""

    process: subprocess.Popen[bytes]
    url: str
    api_key: str
    home: Path

    def app(self) -> AitraderApp:
        return app_for(self.url, self.api_key)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, headers={"Authorization": f"Bearer {self.api_key}"})

    def replica_pids(self) -> set[int]:
        """The API's Serve replica processes (Ray workers under the engine's own raylet)."""
        found = set()
        for pid in engine_pids(self.process.pid):
            try:
                if REPLICA in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.add(pid)
            except OSError:
                continue
        return found


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    home, port = tmp_path_factory.mktemp("aitrader-home"), free_port()
    process = launch(home, port, extra_env={"RAY_USAGE_STATS_ENABLED": "0"})
    sessions: set[str] = set()
    try:
        wait_healthy(process, port, STARTUP_DEADLINE_S)
        sessions = session_names(engine_pids(process.pid))
        yield Engine(process, f"http://127.0.0.1:{port}", api_key(home), home)
    finally:
        started = {pid: _start_time(pid) for pid in engine_pids(process.pid, sessions)}
        with _suppress_gone():
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            with _suppress_gone():
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        # Session members are found by their command line; the others only if they are the same process
        # (same start time), never a pid the system has since given to someone else.
        leftovers = engine_pids(process.pid, sessions) | {p for p, t in started.items() if t and _start_time(p) == t}
        kill_all(leftovers)
        wait_gone(leftovers, 60)


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _suppress_gone() -> contextlib.AbstractContextManager[None]:
    return contextlib.suppress(ProcessLookupError, PermissionError)


async def test_every_panel_shows_the_engine(engine: Engine) -> None:
    app = engine.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ready(pilot, ENGINE_WAIT_S)
        await wait_for(pilot, lambda: len(table_rows(app, "markets-table")) >= 3, "the local exchange's markets",
                       ENGINE_WAIT_S)
        header = screen_text(app, "#header")
        assert "● connected" in header and " local " in header and "PAPER" in header
        switcher = app.main.query_one(ContentSwitcher)
        for number, panel_id in enumerate(PANEL_IDS, start=1):
            await pilot.press(str(number))
            assert switcher.current == panel_id
        await pilot.press("1")
        symbol, shown_price = table_rows(app, "markets-table")[0][:2]
        assert symbol.endswith("USDT") and shown_price != "—"
        await pilot.press("5")
        assert screen_text(app, "#ai-body")  # either the how-to-enable text or the analyses
        await pilot.press("6")  # the engine logs warnings and connection changes: likely none since attaching
        log_lines = len(app.main.query_one("#log-view", RichLog).lines)
        assert app.main.query_one("#logs-empty").display == (app.state.log_count == 0)
        assert log_lines <= app.state.log_count
        await pilot.press("7")
        assert engine.url in screen_text(app, "#deploy-where")


async def test_trader_with_a_bad_then_a_good_filter_fires_a_signal(engine: Engine) -> None:
    app = engine.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ready(pilot, ENGINE_WAIT_S)
        await wait_for(pilot, lambda: len(app.state.markets) >= 3, "the markets", ENGINE_WAIT_S)
        symbols = sorted(app.state.markets)[:3]
        await pilot.press("2", "n")
        editor = app.screen
        assert isinstance(editor, TraderEditor)
        await pilot.press(*"tui-engine")
        editor.query_one("#symbols", Input).value = ", ".join(symbols)
        area = editor.query_one("#filter-editor", TextArea)
        area.insert("(close[-1] > 0 and\n rsx(close, 14)[-1] < 30)")  # no helper is called rsx
        status = lambda: screen_text(app, "#filter-status")  # noqa: E731
        await wait_for(pilot, lambda: "✗ line 2" in status(), "the engine's verdict on the bad filter", ENGINE_WAIT_S)
        assert "line 2, col 2" in status() and "not a filter helper" in status()
        editor.query_one("#filter-status", Static).update("saving…")  # only the save's verdict replaces this
        await pilot.press("ctrl+s")  # the engine refuses to save it too, pointing at the same place
        await wait_for(pilot, lambda: "saving" not in status(), "the engine's answer to the save", ENGINE_WAIT_S)
        assert "line 2, col 2" in status() and "not a filter helper" in status()
        assert app.screen is editor
        area.load_text("close[-1] > 0")
        await wait_for(pilot, lambda: "✓ valid" in status(), "the good filter to validate", ENGINE_WAIT_S)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is app.main, "the editor to close", ENGINE_WAIT_S)
        await wait_for(pilot, lambda: any(r[0] == "tui-engine" for r in table_rows(app, "traders-table")),
                       "the new trader in the table", ENGINE_WAIT_S)
        table = app.main.query_one("#traders-table", DataTable)
        table.move_cursor(row=[r[0] for r in table_rows(app, "traders-table")].index("tui-engine"))
        await pilot.press("t")  # created inactive: enable it
        await wait_for(pilot, lambda: any(r[0] == "tui-engine" and "active" in r[1] and "inactive" not in r[1]
                                          for r in table_rows(app, "traders-table")), "the trader active",
                       ENGINE_WAIT_S)
        await pilot.press("3")
        await wait_for(pilot, lambda: any(r[1] == "tui-engine" for r in table_rows(app, "signals-table")),
                       "a signal from the new trader", ENGINE_WAIT_S)
        row = next(r for r in table_rows(app, "signals-table") if r[1] == "tui-engine")
        assert row[2] in symbols and row[-1] == "close[-1] > 0"


async def test_close_a_position_from_the_positions_panel(engine: Engine) -> None:
    with engine.http() as http:
        order = http.post("/api/orders", json={"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                                "quote_quantity": "100", "client_order_id": "tui-engine-1"})
        assert order.status_code == 201, order.text
    app = engine.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ready(pilot, ENGINE_WAIT_S)
        await pilot.press("4")
        await wait_for(pilot, lambda: [r[0] for r in table_rows(app, "positions-table")] == ["BTCUSDT"],
                       "the BTCUSDT position", ENGINE_WAIT_S)
        position_id = next(iter(app.state.positions))
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: not table_rows(app, "positions-table"), "the position to close", ENGINE_WAIT_S)
        assert app.main.query_one("#positions-empty").display
    with engine.http() as http:
        closed = {p["id"]: p for p in http.get("/api/positions", params={"status": "closed"}).json()["positions"]}
    assert closed[position_id]["close_reason"] == "manual"


async def test_keeps_working_through_an_api_restart(engine: Engine) -> None:
    app = engine.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ready(pilot, ENGINE_WAIT_S)
        header = lambda: screen_text(app, "#header")  # noqa: E731
        before = engine.replica_pids()
        assert len(before) == 1, f"one API replica among the engine's processes, found {before}"
        markets = table_rows(app, "markets-table")
        kill_all(before)  # SIGKILL: Serve's controller starts a new replica
        await wait_for(pilot, lambda: "○" in header(), "the header to show the drop", ENGINE_WAIT_S)
        assert len(table_rows(app, "markets-table")) == len(markets)  # the last data stays on screen
        await wait_for(pilot, lambda: "● connected" in header(), "the reconnection", ENGINE_WAIT_S)
        after = engine.replica_pids()
        assert after and not after & before, "a new replica serves the API"
        seen = {r[0]: r[1] for r in table_rows(app, "markets-table")}
        await wait_for(pilot, lambda: {r[0]: r[1] for r in table_rows(app, "markets-table")} != seen,
                       "prices moving again after the reconnection", ENGINE_WAIT_S)
