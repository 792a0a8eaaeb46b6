"""Snapshot tests of every TUI panel at 120×40 against the fake engine's deterministic data.

The fake listens on a free port (with a fixed one, two runs on one machine failed to bind it) and
the app shows a fixed address, since the Deploy panel prints it. Update with ``--snapshot-update``
and look at the SVGs before committing them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from textual.pilot import Pilot
from textual.widgets import TextArea

from cli.tui.app import AitraderApp
from tests.e2e.fake_api import FakeApi
from tests.e2e.tui_helpers import make_app as make_fake_app
from tests.e2e.tui_helpers import screen_text, wait_for, wait_ready

SIZE = (120, 40)
SHOWN_ADDRESS = "http://127.0.0.1:48765"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeApi]:
    api = FakeApi().start()
    yield api
    api.close()


def make_app(fake: FakeApi) -> AitraderApp:
    """The TUI against ``fake``, showing `SHOWN_ADDRESS` wherever it prints the engine's address."""
    app = make_fake_app(fake)
    app.state.address = SHOWN_ADDRESS
    return app


LOGS = [("INFO", "engine", "stream connected: 2 symbols"), ("WARNING", "feed", "kline backfill took 2 attempts"),
        ("ERROR", "executor", "order rejected: insufficient balance")]


def _open(key: str, fake: FakeApi | None = None):
    async def run_before(pilot: Pilot) -> None:
        await wait_ready(pilot)
        await pilot.press(key)
        if fake is not None:  # the log panel shows what streams in after connecting
            for n, (level, logger, message) in enumerate(LOGS):
                fake.emit("log", {"time": f"2024-05-01T12:00:0{n}Z", "level": level, "logger": logger,
                                  "message": message})
            await wait_for(pilot, lambda: len(pilot.app.state.logs) == len(LOGS), "the log lines")
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("key,panel", [("1", "markets"), ("2", "traders"), ("3", "signals"), ("4", "positions"),
                                       ("5", "ai"), ("6", "logs"), ("7", "deploy")])
def test_panel(fake: FakeApi, snap_compare, key: str, panel: str) -> None:
    run_before = _open(key, fake if panel == "logs" else None)
    assert snap_compare(make_app(fake), terminal_size=SIZE, run_before=run_before)


def test_trader_editor_shows_the_filter_error(fake: FakeApi, snap_compare) -> None:
    async def run_before(pilot: Pilot) -> None:
        await wait_ready(pilot)
        await pilot.press("2", "n", *"rsi-dip-2")
        pilot.app.screen.query_one("#filter-editor", TextArea).insert("rsi(close, 14) < 30 and")
        await wait_for(pilot, lambda: "line 1" in screen_text(pilot.app, "#filter-status"), "the filter error")
        for widget in pilot.app.screen.query("Input, TextArea"):
            widget.cursor_blink = False  # a blinking cursor makes the picture depend on timing
        await pilot.pause()

    assert snap_compare(make_app(fake), terminal_size=SIZE, run_before=run_before)


def test_help(fake: FakeApi, snap_compare) -> None:
    assert snap_compare(make_app(fake), terminal_size=SIZE, run_before=_open("question_mark"))
