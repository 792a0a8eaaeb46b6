"""What the TUI knows about the engine: the last data received, kept while disconnected.

REST snapshots and `/ws` events race: a snapshot read by the engine before an event may be
applied after it. The state therefore counts the events it applies (`events_applied`), the app
stamps each snapshot request with that count, and `load()` keeps whatever events changed after
the stamp instead of the snapshot's older copy. Events are ordered, so anything newer the
snapshot holds still arrives over `/ws`.
"""

from __future__ import annotations

import contextlib
from collections import deque
from typing import Any

JSON = dict[str, Any]
MAX_SIGNALS = 500
MAX_LOGS = 2000
#: Closed position ids remembered so that a price mark published after the close does not revive one.
MAX_CLOSED = 1000
TICKER_FIELDS = ("price", "change24h", "volume24h")

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


def _tick(market: JSON, ticker: JSON) -> JSON:
    """``market`` with the ticker's fields, its sparkline ending at the ticker's price."""
    market.update({k: ticker[k] for k in TICKER_FIELDS if k in ticker})
    closes = market.setdefault("sparkline", [])
    with contextlib.suppress(KeyError, TypeError, ValueError):
        closes[-1:] = [float(ticker["price"])]
    return market


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
        #: Events applied so far: stamp a snapshot request with it and pass it to `load()`.
        self.events_applied = 0
        self._changed_at: dict[tuple[str, str], int] = {}  # (kind, key) -> events_applied after its last event
        self._closed: dict[str, None] = {}  # closed position ids, oldest first

    def load(self, snapshot: JSON, requested_at: int | None = None) -> None:
        """Take a REST snapshot; what events changed after ``requested_at`` (see module doc) is kept."""
        newer = {key for key, at in self._changed_at.items() if requested_at is not None and at > requested_at}
        if ("engine", "") not in newer:
            self.status = snapshot.get("status") or {}
        self.markets = self._merge_markets(snapshot.get("markets", []), {k for kind, k in newer if kind == "market"})
        self.positions = self._merge_positions(snapshot.get("positions", []),
                                               {k for kind, k in newer if kind == "position"})
        self.traders = {t["id"]: t for t in snapshot.get("traders", [])}
        self.signals = self._merge_signals(snapshot.get("signals", []), newer)
        self.balance = snapshot.get("balance") or {}
        self._changed_at = {key: self._changed_at[key] for key in newer}
        self.loaded = True

    def _merge_markets(self, rows: list[JSON], ticked: set[str]) -> dict[str, JSON]:
        markets = {m["symbol"]: m for m in rows}
        for symbol in ticked & self.markets.keys():  # the snapshot's sparkline, the live ticker
            markets[symbol] = _tick(markets.get(symbol) or {"symbol": symbol, "sparkline": []}, self.markets[symbol])
        return markets

    def _merge_positions(self, rows: list[JSON], changed: set[str]) -> dict[str, JSON]:
        positions = {p["id"]: p for p in rows if p.get("status") == "open" and p["id"] not in self._closed}
        for position_id in changed:
            if position_id in self.positions:
                positions[position_id] = {**positions.get(position_id, {}), **self.positions[position_id]}
            else:
                positions.pop(position_id, None)
        return positions

    def _merge_signals(self, rows: list[JSON], newer: set[tuple[str, str]]) -> list[JSON]:
        """The snapshot's signals with newer versions in place and newer signals on top."""
        fresh = {key for kind, key in newer if kind == "signal"}
        signals = list(rows)[:MAX_SIGNALS]
        if not fresh:
            return signals
        known = {s.get("id") for s in signals}
        latest = {s["id"]: s for s in self.signals if s.get("id") in fresh}
        added = [s for s in self.signals if s.get("id") in fresh and s["id"] not in known]
        for signal in added:  # the engine most likely counted the traders' signals without it too
            trader = self.traders.get(signal.get("trader_id", ""))
            if ("signal_created", signal["id"]) in newer and trader is not None:
                trader["signal_count"] = int(trader.get("signal_count") or 0) + 1
        return (added + [latest.get(s.get("id"), s) for s in signals])[:MAX_SIGNALS]

    def apply(self, event: JSON) -> set[str]:
        """Fold one `/ws` event into the state; returns the ids of the panels it changes."""
        self.events_applied += 1
        kind, data = event.get("type"), event.get("data") or {}
        if kind == "ticker_update":
            symbol = data["symbol"]
            _tick(self.markets.setdefault(symbol, {"symbol": symbol, "sparkline": []}), data)
            self._changed("market", symbol)
            return {"markets", "positions"} if any(p.get("symbol") == symbol for p in self.positions.values()) \
                else {"markets"}
        if kind in ("signal_created", "signal_updated"):
            known = any(s.get("id") == data.get("id") for s in self.signals)
            self.signals = [s for s in self.signals if s.get("id") != data.get("id")]
            self.signals.insert(0, data)
            del self.signals[MAX_SIGNALS:]
            self._changed("signal", str(data.get("id")))
            trader = self.traders.get(data.get("trader_id", ""))
            if kind == "signal_created" and not known:
                self._changed("signal_created", str(data.get("id")))
                if trader is not None:
                    trader["signal_count"] = int(trader.get("signal_count") or 0) + 1
            return {"signals", "ai", "traders"}
        if kind == "position_update":
            return self._position(data)
        if kind == "log":
            self.logs.append(data)
            self.log_count += 1
            return {"logs"}
        if kind == "engine":
            self.status = data
            self._changed("engine", "")
            return {"header", "ai", "deploy"}
        return set()

    def _position(self, data: JSON) -> set[str]:
        position_id = str(data.get("id"))
        if position_id in self._closed:
            return set()  # a mark published before the close but delivered after it
        if data.get("status") == "open":
            known = self.positions.get(position_id)
            if known is None and "side" not in data:
                return set()  # a price mark of a position not known yet: the next snapshot brings it whole
            # Price marks carry only the moving fields: merge them into what is known.
            self.positions[position_id] = {**(known or {}), **data}
        else:
            self.positions.pop(position_id, None)
            self._closed[position_id] = None
            if len(self._closed) > MAX_CLOSED:
                del self._closed[next(iter(self._closed))]
        self._changed("position", position_id)
        return {"positions", "header"}

    def _changed(self, kind: str, key: str) -> None:
        self._changed_at[(kind, key)] = self.events_applied

    def set_connection(self, connected: bool, note: str) -> None:
        self.connected = connected
        self.connection_note = note
