"""Panel 2: traders with status, timeframes, symbols and signal count; create, edit, toggle, delete."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from cli.tui.format import GAIN, MUTED
from cli.tui.messages import PanelRequest
from cli.tui.state import TuiState
from cli.tui.widgets.table import KeyedTable

COLUMNS = (("name", "Name"), ("status", "Status"), ("timeframes", "Timeframes"), ("symbols", "Symbols"),
           ("signals", "Signals"), ("auto", "Auto"), ("sl_tp", "SL / TP %"))


class TradersPanel(Vertical):
    """The user's traders; key bindings ask the app to create, edit, toggle or delete one."""

    BINDINGS = [
        Binding("n", "request('new_trader')", "New", id="traders.new"),
        Binding("e", "request('edit_trader')", "Edit", id="traders.edit"),
        Binding("t", "request('toggle_trader')", "Enable/disable", id="traders.toggle"),
        Binding("delete,x", "request('delete_trader')", "Delete", id="traders.delete"),
    ]

    def compose(self) -> ComposeResult:
        yield Static("Traders   [dim]n new · e edit · t enable/disable · x delete[/]", classes="panel-title")
        yield KeyedTable(COLUMNS, id="traders-table")
        yield Static("No traders yet: press n to write your first filter.", classes="empty-note", id="traders-empty")

    def show(self, state: TuiState) -> None:
        rows = {}
        for t in state.traders.values():
            active = t.get("status") == "active"
            symbols = t.get("symbols") or []
            shown = ", ".join(symbols[:4]) + (f" +{len(symbols) - 4}" if len(symbols) > 4 else "")
            rows[t["id"]] = (
                t.get("name", ""), Text("● active" if active else "○ inactive", style=GAIN if active else MUTED),
                ", ".join(t.get("timeframes") or []), shown, str(t.get("signal_count", 0)),
                "yes" if t.get("auto_trade") else "no",
                f"{t.get('stop_loss_pct') or '—'} / {t.get('take_profit_pct') or '—'}",
            )
        self.query_one(KeyedTable).sync(rows)
        self.query_one("#traders-empty").display = not rows

    def select(self, trader_id: str) -> bool:
        """Put the cursor on ``trader_id``'s row (False if it is not shown yet)."""
        return self.query_one(KeyedTable).select_key(trader_id)

    @property
    def selected_trader_id(self) -> str | None:
        return self.query_one(KeyedTable).selected_key

    def action_request(self, action: str) -> None:
        self.post_message(PanelRequest(action, self.selected_trader_id))
