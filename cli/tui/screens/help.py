"""The `?` help modal: every key, per panel."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP_TEXT = """[b]aitrader TUI[/b]

[b]Everywhere[/b]
  1-7        Markets · Traders · Signals · Positions · AI · Logs · Deploy
  Tab        next panel          Shift+Tab  previous panel
  ctrl+p     command palette     r          refresh from the engine
  ?          this help           q          quit

[b]Traders[/b]     n new · e edit · t enable/disable · x delete
[b]Editor[/b]      ctrl+s save · ctrl+g jump to the filter error · escape cancel
[b]Positions[/b]   c close the selected position
[b]Logs[/b]        l cycle the minimum level
[b]Deploy[/b]      d dry run · D deploy · c config check

The header shows the feed (binance; local or stale when data is simulated or late) and the
connection; when the engine is unreachable the last data stays on screen.

Press escape or ? to close."""


class HelpScreen(ModalScreen[None]):
    """Key reference."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close", id="help.close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-dialog", classes="dialog"):
            yield Static(HELP_TEXT)
