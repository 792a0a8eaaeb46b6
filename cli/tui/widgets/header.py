"""The header line: version, user, feed, connection, equity and total P&L."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from cli.tui.format import GAIN, LOSS, money, signed
from cli.tui.state import PANELS, TuiState

FEED_STYLES = {"binance": f"bold {GAIN}", "local": "bold reverse #e0af68", "stale": f"bold reverse {LOSS}"}


class StatusHeader(Static):
    """Engine status at a glance; `show()` redraws it from the state."""

    def show(self, state: TuiState) -> None:
        status = state.status
        line = Text()
        line.append(" aitrader ", style="bold reverse")
        line.append(f" v{status.get('version', '?')} ")
        line.append(f"{status.get('user_id', '—')} ", style="bold")
        mode = str(status.get("mode", "?")).upper()
        line.append(f" {mode} ", style=f"bold reverse {LOSS}" if mode == "LIVE" else "bold")
        feed = str(status.get("feed", "?"))
        line.append(" feed ")
        line.append(f" {feed} ", style=FEED_STYLES.get(feed, ""))
        line.append("  ")
        if state.connected:
            line.append("● connected", style=f"bold {GAIN}")
        else:
            line.append(f"○ {state.connection_note}", style=f"bold {LOSS}")
        line.append("  equity ")
        line.append(money(status.get("equity") or state.balance.get("equity")), style="bold")
        line.append("  P&L ")
        line.append_text(signed((status.get("metrics") or {}).get("total_pnl")))
        if status.get("feed_note"):
            line.append(f"\n {status['feed_note']}", style="#e0af68")
        self.update(line)


class PanelBar(Static):
    """The panel tabs: ``1 Markets  2 Traders …`` with the current one highlighted."""

    def show(self, current: str) -> None:
        line = Text()
        for number, (panel_id, title) in enumerate(PANELS, start=1):
            style = "bold reverse" if panel_id == current else ""
            line.append(f" {number} {title} ", style=style)
            line.append(" ")
        line.append(" ? help  q quit", style="dim")
        self.update(line)
