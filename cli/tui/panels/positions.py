"""Panel 4: open positions with P&L, stop-loss / take-profit, and closing one by hand."""

from __future__ import annotations

from typing import Any

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
SHOWN_FIELDS = ("symbol", "side", "size", "entry_price", "current_price", "pnl", "pnl_pct", "stop_loss",
                "take_profit")
TREND_WIDTH = 12


def _cells(fields: tuple[Any, ...], closes: tuple[float, ...]) -> tuple[Any, ...]:
    symbol, side, size, entry, current, pnl, pnl_pct, stop_loss, take_profit = fields
    side = str(side or "")
    return (symbol or "", Text(side, style=GAIN if side == "LONG" else LOSS), "" if size is None else str(size),
            price(entry), price(current), signed(pnl), signed(pnl_pct, "%"), price(stop_loss), price(take_profit),
            sparkline(closes, TREND_WIDTH))


class PositionsPanel(Vertical):
    """Open positions; ``c`` closes the selected one after a confirmation."""

    BINDINGS = [Binding("c", "close_position", "Close position", id="positions.close")]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: position id -> (the fields shown, the cells made from them): unchanged positions are not reformatted.
        self._made: dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]] = {}

    def compose(self) -> ComposeResult:
        yield Static("Open positions   [dim]c close selected[/]", classes="panel-title")
        yield KeyedTable(COLUMNS, id="positions-table")
        yield Static("No open positions.", classes="empty-note", id="positions-empty")

    def show(self, state: TuiState) -> None:
        made, rows = self._made, {}
        for position_id, position in state.positions.items():
            market = state.markets.get(position.get("symbol", ""), {})
            closes = tuple((market.get("sparkline") or ())[-TREND_WIDTH:])
            fields = tuple([position.get(name) for name in SHOWN_FIELDS])
            known = made.get(position_id)
            if known is None or known[0] != (fields, closes):
                known = made[position_id] = ((fields, closes), _cells(fields, closes))
            rows[position_id] = known[1]
        if len(made) > len(rows):
            self._made = {position_id: made[position_id] for position_id in rows}
        self.query_one(KeyedTable).sync(rows)
        self.query_one("#positions-empty").display = not rows

    def action_close_position(self) -> None:
        position_id = self.query_one(KeyedTable).selected_key
        if position_id is not None:
            self.post_message(PanelRequest("close_position", position_id))
