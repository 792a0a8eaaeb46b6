"""Panel 1: markets with price, 24h change, volume and a sparkline of recent closes."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from cli.tui.format import compact, price, signed, sparkline
from cli.tui.state import TuiState
from cli.tui.widgets.table import KeyedTable

COLUMNS = (("symbol", "Symbol"), ("price", "Price"), ("change", "24h %"), ("volume", "Volume 24h"),
           ("trend", "Trend"))


class MarketsPanel(Vertical):
    """Every connected symbol's ticker."""

    def compose(self) -> ComposeResult:
        yield Static("Markets", classes="panel-title")
        yield KeyedTable(COLUMNS, id="markets-table")
        yield Static("No market data yet.", classes="empty-note", id="markets-empty")

    def show(self, state: TuiState) -> None:
        rows = {
            symbol: (symbol, price(m.get("price")), signed(m.get("change24h"), "%"), compact(m.get("volume24h")),
                     sparkline(m.get("sparkline") or []))
            for symbol, m in state.markets.items()
        }
        self.query_one(KeyedTable).sync(rows)
        self.query_one("#markets-empty").display = not rows
