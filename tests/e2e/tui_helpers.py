"""Shared helpers for the TUI e2e tests: build an app against a fake engine and wait for conditions."""

from __future__ import annotations

from collections.abc import Callable

from textual.pilot import Pilot
from textual.widgets import DataTable

from cli.api_client import ApiClient, Backoff
from cli.tui.app import AitraderApp
from tests.e2e.fake_api import FakeApi

#: A guard against hangs, not a timing assertion: conditions normally hold within milliseconds.
WAIT_LIMIT = 15.0


def make_app(fake: FakeApi) -> AitraderApp:
    """The TUI wired to ``fake`` with a quick reconnect backoff."""
    return AitraderApp(ApiClient(fake.url, fake.api_key, backoff=Backoff(initial=0.05, cap=0.25)))


async def wait_for(pilot: Pilot, predicate: Callable[[], bool], what: str) -> None:
    """Let the app run until ``predicate()`` holds; fail naming ``what`` if it never does."""
    waited = 0.0
    while not predicate():
        if waited > WAIT_LIMIT:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)
        waited += 0.02


async def wait_ready(pilot: Pilot) -> None:
    """Wait until the first snapshot is on screen and the live connection is up."""
    app = pilot.app
    assert isinstance(app, AitraderApp)
    await wait_for(pilot, lambda: app.state.loaded and app.state.connected, "the initial load and /ws connection")
    await pilot.pause()


def table_rows(app: AitraderApp, table_id: str) -> list[list[str]]:
    """The plain text of every row of a panel's table."""
    table = app.main.query_one(f"#{table_id}", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def screen_text(app: AitraderApp, selector: str) -> str:
    """The plain text a Static shows."""
    return str(app.screen.query_one(selector).render())
