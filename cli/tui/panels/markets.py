"""Panel 1: markets with price, 24h change, volume and a sparkline of recent closes."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from cli.tui.format import compact, price, signed, sparkline
from cli.tui.state import TuiState
from cli.tui.widgets.table import KeyedTable

COLUMNS = (("symbol", "Symbol"), ("price", "Price"), ("change", "24h %"), ("volume", "Volume 24h"),
           ("trend", "Trend"))
TREND_WIDTH = 16


class MarketsPanel(Vertical):
    """Every connected symbol's ticker."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: symbol -> (the ticker fields shown, the cells made from them): unchanged tickers are not reformatted.
        self._made: dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]] = {}

    def compose(self) -> ComposeResult:
        yield Static("Markets", classes="panel-title")
        yield KeyedTable(COLUMNS, id="markets-table")
        yield Static("No market data yet.", classes="empty-note", id="markets-empty")

    def show(self, state: TuiState) -> None:
        made, rows = self._made, {}
        for symbol, market in state.markets.items():
            closes = tuple((market.get("sparkline") or ())[-TREND_WIDTH:])
            fields = (market.get("price"), market.get("change24h"), market.get("volume24h"), closes)
            known = made.get(symbol)
            if known is None or known[0] != fields:
                cells = (symbol, price(fields[0]), signed(fields[1], "%"), compact(fields[2]),
                         sparkline(closes, TREND_WIDTH))
                known = made[symbol] = (fields, cells)
            rows[symbol] = known[1]
        if len(made) > len(rows):
            self._made = {symbol: made[symbol] for symbol in rows}
        self.query_one(KeyedTable).sync(rows)
        self.query_one("#markets-empty").display = not rows
