"""What the TUI knows about the engine: the last data received, kept while disconnected."""

from __future__ import annotations

import contextlib
from collections import deque
from typing import Any

JSON = dict[str, Any]
MAX_SIGNALS = 500
MAX_LOGS = 2000

#: Panel ids in key order (1-7) with their titles.
PANELS: tuple[tuple[str, str], ...] = (
    ("markets", "Markets"),
    ("traders", "Traders"),
    ("signals", "Signals"),
    ("positions", "Positions"),
    ("ai", "AI"),
    ("logs", "Logs"),
    ("deploy", "Deploy"),
)


class TuiState:
    """The engine's data as last seen through REST snapshots and WebSocket events."""

    def __init__(self, address: str = "") -> None:
        self.address = address
        self.status: JSON = {}
        self.markets: dict[str, JSON] = {}
        self.traders: dict[str, JSON] = {}
        self.signals: list[JSON] = []
        self.positions: dict[str, JSON] = {}
        self.balance: JSON = {}
        self.logs: deque[JSON] = deque(maxlen=MAX_LOGS)
        self.log_count = 0
        self.connected = False
        self.connection_note = "connecting…"
        self.loaded = False

    def load(self, snapshot: JSON) -> None:
        """Replace everything with a REST snapshot (initial load, or after a resync)."""
        self.status = snapshot.get("status") or {}
        self.markets = {m["symbol"]: m for m in snapshot.get("markets", [])}
        self.traders = {t["id"]: t for t in snapshot.get("traders", [])}
        self.signals = list(snapshot.get("signals", []))[:MAX_SIGNALS]
        self.positions = {p["id"]: p for p in snapshot.get("positions", []) if p.get("status") == "open"}
        self.balance = snapshot.get("balance") or {}
        self.loaded = True

    def apply(self, event: JSON) -> set[str]:
        """Fold one `/ws` event into the state; returns the ids of the panels it changes."""
        kind, data = event.get("type"), event.get("data") or {}
        if kind == "ticker_update":
            market = self.markets.setdefault(data["symbol"], {"symbol": data["symbol"], "sparkline": []})
            market.update({k: data[k] for k in ("price", "change24h", "volume24h") if k in data})
            closes = market.setdefault("sparkline", [])
            with contextlib.suppress(KeyError, TypeError, ValueError):
                closes[-1:] = [float(data["price"])]
            return {"markets", "positions"} if any(p["symbol"] == data["symbol"] for p in self.positions.values()) \
                else {"markets"}
        if kind in ("signal_created", "signal_updated"):
            self.signals = [s for s in self.signals if s.get("id") != data.get("id")]
            self.signals.insert(0, data)
            del self.signals[MAX_SIGNALS:]
            trader = self.traders.get(data.get("trader_id", ""))
            if kind == "signal_created" and trader is not None:
                trader["signal_count"] = int(trader.get("signal_count") or 0) + 1
            return {"signals", "ai", "traders"}
        if kind == "position_update":
            if data.get("status") == "open":
                # Price marks carry only the moving fields: merge them into what is known.
                self.positions[data["id"]] = {**self.positions.get(data["id"], {}), **data}
            else:
                self.positions.pop(str(data.get("id")), None)
            return {"positions", "header"}
        if kind == "log":
            self.logs.append(data)
            self.log_count += 1
            return {"logs"}
        if kind == "engine":
            self.status = data
            return {"header", "ai", "deploy"}
        return set()

    def set_connection(self, connected: bool, note: str) -> None:
        self.connected = connected
        self.connection_note = note
