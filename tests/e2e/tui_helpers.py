"""Shared helpers for the TUI e2e tests: build an app against an engine API and wait for conditions."""

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
    return app_for(fake.url, fake.api_key)


def app_for(url: str, api_key: str) -> AitraderApp:
    """The TUI wired to the engine API at ``url`` with a quick reconnect backoff."""
    return AitraderApp(ApiClient(url, api_key, backoff=Backoff(initial=0.05, cap=0.25)))


async def wait_for(pilot: Pilot, predicate: Callable[[], bool], what: str, limit: float = WAIT_LIMIT) -> None:
    """Let the app run until ``predicate()`` holds; fail naming ``what`` if it never does."""
    waited = 0.0
    step = 0.02 if limit <= WAIT_LIMIT else 0.2
    while not predicate():
        if waited > limit:
            raise AssertionError(f"timed out after {limit:.0f} s waiting for {what}")
        await pilot.pause(step)
        waited += step


async def wait_ready(pilot: Pilot, limit: float = WAIT_LIMIT) -> None:
    """Wait until the first snapshot is on screen and the live connection is up."""
    app = pilot.app
    assert isinstance(app, AitraderApp)
    await wait_for(pilot, lambda: app.state.loaded and app.state.connected, "the initial load and /ws connection",
                   limit)
    await pilot.pause()


def table_rows(app: AitraderApp, table_id: str) -> list[list[str]]:
    """The plain text of every row of a panel's table."""
    table = app.main.query_one(f"#{table_id}", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def painted_rows(app: AitraderApp, table_id: str) -> list[str]:
    """The text the table actually paints for its visible lines (header first): what a user sees."""
    table = app.main.query_one(f"#{table_id}", DataTable)
    return [table.render_line(y).text for y in range(table.size.height)]


def screen_text(app: AitraderApp, selector: str) -> str:
    """The plain text a Static shows."""
    return str(app.screen.query_one(selector).render())
