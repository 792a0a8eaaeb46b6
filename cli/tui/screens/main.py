"""The main screen: header, panel bar, the seven panels (one shown at a time) and the footer."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Footer

from cli.tui.panels.ai import AiPanel
from cli.tui.panels.deploy import DeployPanel
from cli.tui.panels.logs import LogsPanel
from cli.tui.panels.markets import MarketsPanel
from cli.tui.panels.positions import PositionsPanel
from cli.tui.panels.signals import SignalsPanel
from cli.tui.panels.traders import TradersPanel
from cli.tui.state import PANELS, TuiState
from cli.tui.widgets.header import PanelBar, StatusHeader

PANEL_IDS = [panel_id for panel_id, _ in PANELS]


class MainScreen(Screen[None]):
    """Shows one panel; redraws the visible one on change and the others when they are shown."""

    BINDINGS = [
        *[Binding(str(n), f"show_panel('{pid}')", title, show=False, id=f"panel.{pid}")
          for n, (pid, title) in enumerate(PANELS, start=1)],
        Binding("tab", "cycle(1)", "Next panel", priority=True, show=False, id="panel.next"),
        Binding("shift+tab", "cycle(-1)", "Previous panel", priority=True, show=False, id="panel.previous"),
        Binding("question_mark", "app.help", "Help", id="app.help"),
        Binding("r", "app.refresh_data", "Refresh", id="app.refresh"),
    ]

    def __init__(self, state: TuiState) -> None:
        super().__init__()
        self.state = state
        self.current = "markets"
        self._stale: set[str] = set(PANEL_IDS)

    def compose(self) -> ComposeResult:
        yield StatusHeader(id="header")
        yield PanelBar(id="panel-bar")
        with ContentSwitcher(initial="markets", id="panels"):
            yield MarketsPanel(id="markets")
            yield TradersPanel(id="traders")
            yield SignalsPanel(id="signals")
            yield PositionsPanel(id="positions")
            yield AiPanel(id="ai")
            yield LogsPanel(id="logs")
            yield DeployPanel(id="deploy")
        yield Footer()

    def on_mount(self) -> None:
        self.update_panels({"header", *PANEL_IDS})
        self.action_show_panel("markets")

    def panel(self, panel_id: str) -> Widget:
        return self.query_one(f"#{panel_id}")

    def update_panels(self, changed: set[str]) -> None:
        """Redraw what ``changed`` names now if visible, else when it is next shown."""
        if not self.is_mounted or not self.query(StatusHeader):
            return  # before mount (on_mount draws everything) or while the app shuts down
        if "header" in changed:
            self.query_one(StatusHeader).show(self.state)
        self._stale |= changed & set(PANEL_IDS)
        if self.current in self._stale:
            self._stale.discard(self.current)
            self.panel(self.current).show(self.state)  # type: ignore[attr-defined]

    def action_show_panel(self, panel_id: str) -> None:
        """Switch to ``panel_id`` and focus its first focusable widget."""
        self.current = panel_id
        self.query_one(ContentSwitcher).current = panel_id
        self.query_one(PanelBar).show(panel_id)
        self.update_panels(set())
        panel = self.panel(panel_id)
        focusable = [w for w in panel.query("*") if w.focusable]
        if focusable:
            focusable[0].focus()
        else:
            self.set_focus(None)

    def action_cycle(self, step: int) -> None:
        index = PANEL_IDS.index(self.current)
        self.action_show_panel(PANEL_IDS[(index + step) % len(PANEL_IDS)])
