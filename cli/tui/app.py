"""The aitrader TUI application: REST snapshot + live `/ws` events -> `TuiState` -> panels."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.timer import Timer

from cli.api_client import ApiClient, ApiError, Backoff, ConnectionChanged, RateLimited
from cli.tui.commands import AitraderCommands
from cli.tui.messages import (
    ActionFinished,
    ConnectionStateChanged,
    EngineEvent,
    LoadFailed,
    PanelRequest,
    SnapshotLoaded,
)
from cli.tui.panels.deploy import DeployPanel
from cli.tui.panels.positions import PositionsPanel
from cli.tui.panels.traders import TradersPanel
from cli.tui.screens.confirm import ConfirmScreen
from cli.tui.screens.help import HelpScreen
from cli.tui.screens.main import PANEL_IDS, MainScreen
from cli.tui.screens.trader_editor import TraderEditor
from cli.tui.state import TuiState

REFRESH_INTERVAL_S = 30.0


class AitraderApp(App[None]):
    """A client of one engine's API. ``live=False`` skips the WebSocket (benchmarks).

    A failed snapshot is retried with ``snapshot_backoff`` while the live connection is up (an engine
    that is starting again answers 503 until its actors are back); ``refresh_interval`` is the
    periodic re-read.
    """

    CSS_PATH = "app.tcss"
    TITLE = "aitrader"
    COMMANDS = App.COMMANDS | {AitraderCommands}
    BINDINGS = [Binding("q", "quit", "Quit", id="app.quit")]

    def __init__(self, client: ApiClient, *, live: bool = True, refresh_interval: float = REFRESH_INTERVAL_S,
                 snapshot_backoff: Backoff | None = None) -> None:
        super().__init__()
        self.client = client
        self.live = live
        self.refresh_interval = refresh_interval
        self.snapshot_backoff = snapshot_backoff or Backoff(initial=1.0, cap=15.0)
        self._snapshot_retry: Timer | None = None
        self.state = TuiState(client.address)
        self.main = MainScreen(self.state)
        self._saved_trader_id: str | None = None

    def on_mount(self) -> None:
        self.theme = "tokyo-night"
        self.push_screen(self.main)
        self.action_refresh_data()
        if self.live:
            self._follow_events()
            # Events keep prices live; a periodic snapshot refreshes sparklines and anything missed.
            self.set_interval(self.refresh_interval, self.action_refresh_data)

    async def on_unmount(self) -> None:
        await self.client.aclose()

    # ---- workers: they only talk to the API and post messages
    @work(exclusive=True, group="load")
    async def _load_snapshot(self, requested_at: int) -> None:
        c = self.client
        try:
            status, markets, traders, signals, positions, balance = await asyncio.gather(
                c.status(), c.markets(), c.traders(), c.signals(), c.positions("open"), c.balance()
            )
        except ApiError as exc:
            self.post_message(LoadFailed(str(exc), exc.retry_after if isinstance(exc, RateLimited) else None))
            return
        self.post_message(SnapshotLoaded({"status": status, "markets": markets, "traders": traders,
                                          "signals": signals, "positions": positions, "balance": balance},
                                         requested_at))

    @work(group="stream")
    async def _follow_events(self) -> None:
        async for item in self.client.events():
            if isinstance(item, ConnectionChanged):
                self.post_message(ConnectionStateChanged(item.connected, item.reason))
            else:
                self.post_message(EngineEvent(item))

    @work(group="actions")
    async def _call(self, description: str, call: Callable[[], Awaitable[Any]]) -> None:
        try:
            await call()
        except ApiError as exc:
            self.post_message(ActionFinished(description, str(exc)))
            return
        self.post_message(ActionFinished(description))

    # ---- handlers: the only place state and widgets change
    @on(SnapshotLoaded)
    def _snapshot(self, message: SnapshotLoaded) -> None:
        self.state.load(message.snapshot, message.requested_at)
        self.snapshot_backoff.reset()
        self.main.update_panels({"header", *PANEL_IDS})
        if self._saved_trader_id is not None and self.main.current == "traders" \
                and self.main.query_one(TradersPanel).select(self._saved_trader_id):
            self._saved_trader_id = None  # the cursor is on it, so t / e / x act on the trader just saved

    @on(LoadFailed)
    def _load_failed(self, message: LoadFailed) -> None:
        if self.snapshot_backoff.attempt == 0:  # once per run of failures
            self.notify(message.error, title="Engine unreachable", severity="error", timeout=6)
        if self.state.connected:  # else the reconnection re-reads the snapshot
            if self._snapshot_retry is not None:
                self._snapshot_retry.stop()
            delay = self.snapshot_backoff.next_delay()
            self._snapshot_retry = self.set_timer(max(delay, message.retry_after or 0.0), self.action_refresh_data)

    @on(EngineEvent)
    def _event(self, message: EngineEvent) -> None:
        if message.event.get("type") == "resync":
            self.action_refresh_data()
            return
        self.main.update_panels(self.state.apply(message.event))

    @on(ConnectionStateChanged)
    def _connection(self, message: ConnectionStateChanged) -> None:
        was_connected = self.state.connected
        self.state.set_connection(message.connected, "connected" if message.connected else "reconnecting…")
        if message.connected and not was_connected:
            # Catch up with what happened before this subscription: after a drop, anything the event
            # ring no longer holds; on the first connection, what the mount-time snapshot missed.
            self.action_refresh_data()
        self.main.update_panels({"header"})

    @on(ActionFinished)
    def _action_finished(self, message: ActionFinished) -> None:
        if message.error:
            self.notify(message.error, title=f"{message.description} failed", severity="error", timeout=8)
        else:
            self.notify(message.description, timeout=3)
            self.action_refresh_data()

    @on(PanelRequest)
    async def _panel_request(self, message: PanelRequest) -> None:
        await self.run_action(message.action)

    # ---- actions (keys, panels and the command palette)
    def action_refresh_data(self) -> None:
        """Re-fetch every panel's data over REST."""
        self._load_snapshot(self.state.events_applied)  # events applied after this stamp win over the snapshot

    def action_show_panel(self, panel_id: str) -> None:
        if self.screen is not self.main:
            self.pop_screen()
        self.main.action_show_panel(panel_id)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def _selected_trader(self) -> dict[str, Any] | None:
        trader_id = self.main.query_one(TradersPanel).selected_trader_id
        return self.state.traders.get(trader_id) if trader_id else None

    def action_new_trader(self) -> None:
        self.main.action_show_panel("traders")
        self.push_screen(TraderEditor(self.client), self._trader_saved)

    def action_edit_trader(self) -> None:
        trader = self._selected_trader()
        if trader is not None:
            self.push_screen(TraderEditor(self.client, trader), self._trader_saved)

    def _trader_saved(self, trader: dict[str, Any] | None) -> None:
        if trader is not None:
            self._saved_trader_id = trader.get("id")
            inactive = trader.get("status") != "active"
            self.notify(f"Trader {trader.get('name')} saved" + (", inactive: press t to enable it" if inactive else ""),
                        timeout=6 if inactive else 3)
            self.action_refresh_data()

    def action_toggle_trader(self) -> None:
        trader = self._selected_trader()
        if trader is None:
            return
        if trader.get("status") == "active":
            self._call(f"Disabled {trader['name']}", lambda: self.client.disable_trader(trader["id"]))
        else:
            self._call(f"Enabled {trader['name']}", lambda: self.client.enable_trader(trader["id"]))

    def action_delete_trader(self) -> None:
        trader = self._selected_trader()
        if trader is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._call(f"Deleted {trader['name']}", lambda: self.client.delete_trader(trader["id"]))

        self.push_screen(ConfirmScreen(f"Delete trader [b]{trader['name']}[/b]? This cannot be undone.",
                                       "Delete"), confirmed)

    def action_close_position(self) -> None:
        position_id = self.main.query_one(PositionsPanel).query_one("#positions-table").selected_key  # type: ignore[attr-defined]
        position = self.state.positions.get(position_id) if position_id else None
        if position is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._call(f"Closed {position['symbol']} {position['side']}",
                           lambda: self.client.close_position(position["id"]))

        self.push_screen(ConfirmScreen(
            f"Close the {position['side']} {position['symbol']} position (size {position['size']}) at market?",
            "Close position"), confirmed)

    def action_deploy(self) -> None:
        self.action_deploy_command("deploy")

    def action_deploy_command(self, name: str) -> None:
        """Run ``aitrader deploy --dry-run`` / ``deploy`` / ``config check`` in the Deploy panel."""
        self.main.action_show_panel("deploy")
        panel = self.main.query_one(DeployPanel)
        if name != "deploy":
            panel.action_run(name)
            return
        self.push_screen(ConfirmScreen("Deploy the engine to Fly.io now (aitrader deploy)?", "Deploy"),
                         lambda yes: panel.action_run("deploy") if yes else None)
