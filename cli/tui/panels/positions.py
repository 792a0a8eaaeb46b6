"""Panel 4: open positions with P&L, stop-loss / take-profit, and closing one by hand."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Static

from cli.tui.format import GAIN, LOSS, price, signed, sparkline
from cli.tui.messages import PanelRequest
from cli.tui.state import TuiState
from cli.tui.widgets.table import KeyedTable

COLUMNS = (("symbol", "Symbol"), ("side", "Side"), ("size", "Size"), ("entry", "Entry"), ("current", "Current"),
           ("pnl", "P&L"), ("pnl_pct", "P&L %"), ("sl", "Stop-loss"), ("tp", "Take-profit"), ("trend", "Trend"))


class PositionsPanel(Vertical):
    """Open positions; ``c`` closes the selected one after a confirmation."""

    BINDINGS = [Binding("c", "close_position", "Close position", id="positions.close")]

    def compose(self) -> ComposeResult:
        yield Static("Open positions   [dim]c close selected[/]", classes="panel-title")
        yield KeyedTable(COLUMNS, id="positions-table")
        yield Static("No open positions.", classes="empty-note", id="positions-empty")

    def show(self, state: TuiState) -> None:
        rows = {}
        for p in state.positions.values():
            side = str(p.get("side", ""))
            market = state.markets.get(p.get("symbol", ""), {})
            rows[p["id"]] = (
                p.get("symbol", ""), Text(side, style=GAIN if side == "LONG" else LOSS), str(p.get("size", "")),
                price(p.get("entry_price")), price(p.get("current_price")), signed(p.get("pnl")),
                signed(p.get("pnl_pct"), "%"), price(p.get("stop_loss")), price(p.get("take_profit")),
                sparkline(market.get("sparkline") or [], 12),
            )
        self.query_one(KeyedTable).sync(rows)
        self.query_one("#positions-empty").display = not rows

    def action_close_position(self) -> None:
        position_id = self.query_one(KeyedTable).selected_key
        if position_id is not None:
            self.post_message(PanelRequest("close_position", position_id))
