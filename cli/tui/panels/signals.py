"""Panel 3: signals, newest first, with the candle that fired them and the conditions that matched."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from cli.tui.format import MUTED, candle_clock, price
from cli.tui.state import TuiState
from cli.tui.widgets.table import KeyedTable

#: "Candle" is the open time of the candle whose close the filter matched (not when the signal was stored).
COLUMNS = (("candle", "Candle (UTC)"), ("trader", "Trader"), ("symbol", "Symbol"), ("tf", "TF"), ("status", "Status"),
           ("price", "Trigger"), ("confidence", "Conf."), ("conditions", "Conditions matched"))
STATUS_STYLES = {"pending": "#e0af68", "analyzing": "#7aa2f7", "executed": "#9ece6a", "cancelled": MUTED,
                 "signal only": MUTED}
SHOWN = 200
#: With neither AI analysis nor auto-trading on, nothing ever acts on a signal: "pending" would
#: read as stuck, so such signals say what they are.
SIGNAL_ONLY = "signal only"


class SignalsPanel(Vertical):
    """The latest signals from every trader."""

    def compose(self) -> ComposeResult:
        yield Static("Signals", classes="panel-title")
        yield KeyedTable(COLUMNS, id="signals-table")
        yield Static("No signals yet: they appear here as traders' filters match.", classes="empty-note",
                     id="signals-empty")

    def show(self, state: TuiState) -> None:
        rows = {}
        engine = state.status
        signals_only = bool(engine) and not engine.get("auto_trading") and not engine.get("ai_analysis")
        # Newest candle first: the first checks after a start cover older candles than later ones.
        for s in sorted(state.signals[:SHOWN], key=lambda s: s.get("candle_time") or 0, reverse=True):
            confidence = s.get("confidence")
            status = str(s.get("status", ""))
            if status == "pending" and signals_only:
                status = SIGNAL_ONLY
            rows[s["id"]] = (
                candle_clock(s.get("candle_time")), s.get("trader_name", ""), s.get("symbol", ""),
                s.get("timeframe", ""),
                Text(status, style=STATUS_STYLES.get(status, "")), price(s.get("trigger_price")),
                "—" if confidence is None else f"{confidence:.0%}", " · ".join(s.get("conditions") or []),
            )
        self.query_one(KeyedTable).sync(rows)
        self.query_one("#signals-empty").display = not rows
