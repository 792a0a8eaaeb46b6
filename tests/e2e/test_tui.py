"""Pilot tests of the TUI against the fake engine API (a real HTTP + WebSocket server)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.widgets import ContentSwitcher, RichLog, TextArea

from cli.api_client import ApiClient, Backoff
from cli.tui.app import AitraderApp
from cli.tui.panels.traders import TradersPanel
from cli.tui.screens.confirm import ConfirmScreen
from cli.tui.screens.help import HelpScreen
from cli.tui.screens.main import PANEL_IDS
from cli.tui.screens.trader_editor import TraderEditor
from tests.e2e.fake_api import FakeApi, make_position, make_signal
from tests.e2e.tui_helpers import make_app, painted_rows, screen_text, table_rows, wait_for, wait_ready

#: A hang guard for `aitrader config check`: a new Python process importing the whole CLI takes 5-7 s
#: here at load 5 and more when Ray tests share the 2 cores: the default 15 s guard is too tight for it.
COMMAND_LIMIT = 120.0


@pytest.fixture
def fake() -> Iterator[FakeApi]:
    api = FakeApi().start()
    yield api
    api.close()


class HeldAnswers(httpx.AsyncHTTPTransport):
    """Once ``armed``, holds the next answer to ``method path`` (the engine has acted on it) until ``release``.

    ``engine_url`` sends every call there, whatever address the client was given.
    """

    def __init__(self, method: str, path: str, engine_url: str | None = None) -> None:
        super().__init__()
        self.method, self.path = method, path
        self.engine = httpx.URL(engine_url) if engine_url else None
        self.armed = False
        self.served = asyncio.Event()
        self.release = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.engine is not None:
            request.url = request.url.copy_with(host=self.engine.host, port=self.engine.port)
        response = await super().handle_async_request(request)
        if self.armed and (request.method, request.url.path) == (self.method, self.path):
            self.armed = False
            await response.aread()
            self.served.set()
            await self.release.wait()
        return response


class RefusedAnswers(httpx.AsyncHTTPTransport):
    """Answers the next ``refusals`` requests to ``method path`` with 503, as an engine starting again does."""

    def __init__(self, method: str, path: str) -> None:
        super().__init__()
        self.method, self.path = method, path
        self.refusals = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.refusals and (request.method, request.url.path) == (self.method, self.path):
            self.refusals -= 1
            return httpx.Response(503, json={"detail": "temporarily unavailable, retry shortly"}, request=request)
        return await super().handle_async_request(request)


class NoticeRecordingApp(AitraderApp):
    """The app, keeping the title of every notification it shows (toasts expire, this list does not)."""

    CSS_PATH = Path(inspect.getfile(AitraderApp)).with_name("app.tcss")  # a relative path would resolve here
    notices: list[str]

    def notify(self, message: str, *, title: str = "", **options: Any) -> None:
        self.notices = [*getattr(self, "notices", []), title]
        super().notify(message, title=title, **options)


def app_through(fake: FakeApi, transport: httpx.AsyncBaseTransport, **options: Any) -> NoticeRecordingApp:
    """The TUI against ``fake`` with its REST calls going through ``transport``."""
    return NoticeRecordingApp(ApiClient(fake.url, fake.api_key, transport=transport, backoff=Backoff(initial=0.05, cap=0.25)),
                       **options)


async def test_every_panel_by_number_tab_and_help(fake: FakeApi) -> None:
    app = make_app(fake)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ready(pilot)
        switcher = app.main.query_one(ContentSwitcher)
        for number, panel_id in enumerate(PANEL_IDS, start=1):
            await pilot.press(str(number))
            assert switcher.current == panel_id
        await pilot.press("tab")
        assert switcher.current == "markets"
        await pilot.press("tab", "tab")
        assert switcher.current == "signals"
        await pilot.press("shift+tab")
        assert switcher.current == "traders"
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert app.screen is app.main


async def test_create_trader_bad_filter_then_good(fake: FakeApi) -> None:
    app = make_app(fake)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ready(pilot)
        await pilot.press("2", "n")
        editor = app.screen
        assert isinstance(editor, TraderEditor)
        await pilot.press(*"dip-buyer")
        editor.query_one("#filter-editor", TextArea).insert("x = 1\nrsi(close, 14) < 30 and")
        await wait_for(pilot, lambda: "line 2" in screen_text(app, "#filter-status"), "the filter error")
        assert "line 2, col 24" in screen_text(app, "#filter-status")
        await pilot.press("ctrl+g")
        assert editor.query_one(TextArea).cursor_location == (1, 23)
        await pilot.press("ctrl+s")  # the engine refuses it too, with the same position
        await pilot.pause()
        assert app.screen is editor
        editor.query_one(TextArea).insert(" volume[-1] > 0")
        await wait_for(pilot, lambda: "valid" in screen_text(app, "#filter-status")
                       and "✗" not in screen_text(app, "#filter-status"), "the filter to validate")
        assert "2 condition(s)" in screen_text(app, "#filter-status")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is app.main, "the editor to close")
        await wait_for(pilot, lambda: any(r[0] == "dip-buyer" for r in table_rows(app, "traders-table")),
                       "the new trader in the table")
        assert [t["name"] for t in fake.state["traders"]][-1] == "dip-buyer"
        panel = app.main.query_one(TradersPanel)  # the cursor follows the new trader: t enables it
        await wait_for(pilot, lambda: panel.selected_trader_id == fake.state["traders"][-1]["id"],
                       "the cursor on the new trader")
        await pilot.press("t")
        await wait_for(pilot, lambda: fake.state["traders"][-1]["status"] == "active", "the new trader enabled")


async def test_a_slow_refusal_of_old_filter_text_does_not_replace_the_edits_verdict(fake: FakeApi) -> None:
    transport = HeldAnswers("POST", "/api/traders")
    app = app_through(fake, transport)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ready(pilot)
        await pilot.press("2", "n", *"dip-buyer")
        status = lambda: screen_text(app, "#filter-status")  # noqa: E731
        area = app.screen.query_one("#filter-editor", TextArea)
        area.insert("rsi(close, 14) < 30 and")
        await wait_for(pilot, lambda: "line 1" in status(), "the filter error")
        transport.armed = True
        await pilot.press("ctrl+s")  # the engine refuses the incomplete filter; its answer is held
        await wait_for(pilot, transport.served.is_set, "the engine to refuse the save")
        saves = [worker for worker in app.workers if worker.group == "save"]
        area.insert(" volume[-1] > 0")
        await wait_for(pilot, lambda: "✓ valid" in status(), "the edited filter to validate")
        transport.release.set()
        await app.workers.wait_for_complete(saves)
        await pilot.pause()
        assert "✓ valid" in status() and "✗" not in status()
        assert app.screen.error_at is None  # type: ignore[attr-defined]  # ctrl+g has no stale error to go to


async def test_signal_arrives_over_the_websocket(fake: FakeApi) -> None:
    app = make_app(fake)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ready(pilot)
        await pilot.press("3")
        assert len(table_rows(app, "signals-table")) == 2
        signal = make_signal(9, fake.state["traders"][0], "SOLUSDT", conditions=["close[-1] > 1"],
                             timeframe="5m", candle_time=1_714_566_000_000, created_at="2024-05-01T12:25:01Z")
        await asyncio.to_thread(fake.emit, "signal_created", signal)
        await wait_for(pilot, lambda: len(table_rows(app, "signals-table")) == 3, "the new signal")
        newest = table_rows(app, "signals-table")[0]
        assert newest[2] == "SOLUSDT" and newest[-1] == "close[-1] > 1"
        assert newest[0] == "05-01 12:20:00", "the time of the 5m candle that fired, not when it was stored"
        assert app.state.traders["t-1"]["signal_count"] == 3


async def test_close_a_position_after_confirmation(fake: FakeApi) -> None:
    app = make_app(fake)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ready(pilot)
        await pilot.press("4")
        assert [r[0] for r in table_rows(app, "positions-table")] == ["BTCUSDT", "ETHUSDT"]
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")  # cancelling closes nothing
        assert ("POST", "/api/positions/pos-1/close") not in fake.requests
        await pilot.press("c", "y")
        await wait_for(pilot, lambda: len(table_rows(app, "positions-table")) == 1, "the position to close")
        assert table_rows(app, "positions-table")[0][0] == "ETHUSDT"
        assert ("POST", "/api/positions/pos-1/close") in fake.requests


async def test_survives_an_engine_restart(fake: FakeApi) -> None:
    transport = HeldAnswers("GET", "/api/markets")
    app = app_through(fake, transport)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ready(pilot)
        header = lambda: screen_text(app, "#header")  # noqa: E731
        prices = lambda: [row[1] for row in table_rows(app, "markets-table")]  # noqa: E731
        await asyncio.to_thread(fake.stop)
        await wait_for(pilot, lambda: "reconnecting" in header(), "the header to show the drop")
        assert len(table_rows(app, "markets-table")) == 6  # the last data stays on screen
        transport.armed = True
        fake.state["markets"][1]["price"] = "3333.00"  # tells the snapshot taken after the restart apart
        await asyncio.to_thread(fake.start)
        await wait_for(pilot, lambda: "● connected" in header(), "the header to show the reconnection")
        await wait_for(pilot, transport.served.is_set, "the engine to read the markets for the catch-up snapshot")
        # A tick the engine sends after reading that snapshot, which reaches the TUI before the snapshot does.
        await asyncio.to_thread(fake.emit, "ticker_update", {"symbol": "BTCUSDT", "price": "70000.00",
                                                              "change24h": "1.50", "volume24h": "1000", "time": "t"})
        await wait_for(pilot, lambda: prices()[0] == "70,000.00", "the new ticker")
        transport.release.set()
        await wait_for(pilot, lambda: prices()[1] == "3,333.00", "the catch-up snapshot")
        assert prices()[0] == "70,000.00"  # not the older price the snapshot holds


async def test_a_refused_snapshot_is_retried_while_connected(fake: FakeApi) -> None:
    transport = RefusedAnswers("GET", "/api/traders")
    app = app_through(fake, transport, refresh_interval=3600, snapshot_backoff=Backoff(initial=0.05, cap=0.25))
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ready(pilot)
        await pilot.press("2")
        transport.refusals = 3
        fake.state["traders"][0]["name"] = "rsi-dip-2"
        await pilot.press("r")  # refused three times, then read: no periodic refresh comes in this test
        await wait_for(pilot, lambda: table_rows(app, "traders-table")[0][0] == "rsi-dip-2", "the retried snapshot")
        assert transport.refusals == 0
        assert app.notices == ["Engine unreachable"]  # one notice for the three refusals


async def test_a_connection_made_while_the_first_snapshot_is_in_flight_rereads_it(fake: FakeApi) -> None:
    late_stream = FakeApi(fake.api_key).start()  # the /ws side, refusing connections until it starts again
    late_stream.stop()
    transport = HeldAnswers("GET", "/api/positions", engine_url=fake.url)
    transport.armed = True
    try:
        app = NoticeRecordingApp(ApiClient(late_stream.url, fake.api_key, transport=transport,
                                           backoff=Backoff(initial=0.05, cap=0.25)), refresh_interval=3600)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, transport.served.is_set, "the engine to read the first snapshot's positions")
            fake.state["positions"].append(make_position(3, "SOLUSDT"))  # its event goes to no subscriber
            await asyncio.to_thread(late_stream.start)
            await wait_for(pilot, lambda: app.state.connected, "the /ws connection")
            transport.release.set()
            await wait_for(pilot, lambda: "pos-3" in app.state.positions, "the position opened before subscribing")
    finally:
        late_stream.close()


async def test_ticker_updates_repaint_only_what_changed_and_paint_it_right(fake: FakeApi) -> None:
    app = make_app(fake)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ready(pilot)
        before = painted_rows(app, "markets-table")
        assert "BTCUSDT" in before[1] and "ETHUSDT" in before[2]
        for n, price in enumerate(("70000.00", "70001.50", "123456.78")):  # the last one widens the column
            await asyncio.to_thread(fake.emit, "ticker_update", {"symbol": "ETHUSDT", "price": price,
                                                                  "change24h": f"-{n}.25", "volume24h": "5"})
            shown = f"{float(price):,.2f}"
            await wait_for(pilot, lambda shown=shown: shown in painted_rows(app, "markets-table")[2],
                           f"ETHUSDT at {shown}")
            after = painted_rows(app, "markets-table")
            assert f"-{n}.25%" in after[2] and "5.00" in after[2]
            assert [line.split() for line in after[1:2] + after[3:7]] == \
                   [line.split() for line in before[1:2] + before[3:7]]  # other markets paint as before
        assert table_rows(app, "markets-table")[1][1] == "123,456.78"
        await pilot.press("down")  # the cursor row (ETHUSDT) paints the new values too
        await asyncio.to_thread(fake.emit, "ticker_update", {"symbol": "ETHUSDT", "price": "99.00",
                                                              "change24h": "0", "volume24h": "5"})
        await wait_for(pilot, lambda: " 99.00 " in painted_rows(app, "markets-table")[2], "ETHUSDT at 99.00")


async def test_logs_follow_the_stream_with_a_level_filter(fake: FakeApi) -> None:
    app = make_app(fake)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ready(pilot)
        await pilot.press("6")
        for level, message in (("DEBUG", "noise"), ("WARNING", "feed slow"), ("INFO", "checked")):
            await asyncio.to_thread(fake.emit, "log", {"time": "2024-05-01T12:00:00Z", "level": level,
                                                       "logger": "engine", "message": message})
        log = app.main.query_one("#log-view", RichLog)
        await wait_for(pilot, lambda: len(log.lines) == 2, "two log lines at INFO and above")
        await pilot.press("l", "l")  # INFO -> WARNING -> ERROR
        await pilot.pause()
        assert len(log.lines) == 0
        await pilot.press("l")  # -> DEBUG
        await wait_for(pilot, lambda: len(log.lines) == 3, "every line at DEBUG")


async def test_deploy_panel_runs_config_check_and_shows_output(fake: FakeApi) -> None:
    app = make_app(fake)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ready(pilot)
        await pilot.press("7")
        assert "local" in screen_text(app, "#deploy-where") and fake.url in screen_text(app, "#deploy-where")
        await pilot.press("c")
        output = app.main.query_one("#deploy-output", RichLog)
        await wait_for(pilot, lambda: any("done" in str(s.text) or "failed" in str(s.text) or "exit" in str(s.text)
                                          for s in output.lines), "the command to finish", COMMAND_LIMIT)
        assert len(output.lines) >= 3  # the command line, its output, the result


async def test_small_terminal_and_empty_engine_do_not_crash() -> None:
    fake = FakeApi(markets=0, ai_analysis=False).start()
    for key in ("traders", "signals", "positions"):
        fake.state[key] = []
    try:
        app = make_app(fake)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_ready(pilot)
            for number in "1234567":
                await pilot.press(number)
            assert app.main.query_one("#markets-empty").display
            await pilot.press("5")
            assert "ENABLE_AI_ANALYSIS=true" in screen_text(app, "#ai-body")
            await pilot.press("2", "e", "x", "4", "c")  # nothing selected: no editor, no modal
            assert app.screen is app.main
            await pilot.press("2", "n")
            assert isinstance(app.screen, TraderEditor)
            await pilot.press("escape")
            assert app.screen is app.main
    finally:
        fake.close()


@pytest.mark.parametrize(("ai_analysis", "shown"), [(False, "signal only"), (True, "pending")])
async def test_a_pending_signal_says_signal_only_when_nothing_will_act_on_it(ai_analysis: bool, shown: str) -> None:
    fake = FakeApi(ai_analysis=ai_analysis).start()  # auto-trading is off in the fake engine
    try:
        app = make_app(fake)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_ready(pilot)
            await pilot.press("3")
            signal = make_signal(9, fake.state["traders"][0], "SOLUSDT", status="pending")
            await asyncio.to_thread(fake.emit, "signal_created", signal)
            await wait_for(pilot, lambda: len(table_rows(app, "signals-table")) == 3, "the new signal")
            assert str(table_rows(app, "signals-table")[0][4]) == shown
    finally:
        fake.close()


async def test_signals_are_listed_newest_candle_first_whatever_order_they_were_stored_in(fake: FakeApi) -> None:
    app = make_app(fake)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_ready(pilot)
        await pilot.press("3")
        trader = fake.state["traders"][0]
        later = make_signal(9, trader, "SOLUSDT", candle_time=1_714_566_060_000)  # 12:21, stored first
        earlier = make_signal(10, trader, "ADAUSDT", candle_time=1_714_566_000_000)  # 12:20, stored after it
        for signal in (later, earlier):
            await asyncio.to_thread(fake.emit, "signal_created", signal)
        await wait_for(pilot, lambda: len(table_rows(app, "signals-table")) == 4, "the new signals")
        assert [row[2] for row in table_rows(app, "signals-table")[:2]] == ["SOLUSDT", "ADAUSDT"]
