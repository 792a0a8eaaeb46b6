"""Replica-local read state: markets, open positions and engine status, kept fresh from events.

The hot reads (`/api/markets`, `/api/positions?status=open`, `/status`) are answered from here
without an actor hop: the event pump applies ``ticker_update``, ``position_update`` and
``engine`` events as they arrive, and a periodic refresh (supervisor + read-only storage)
repairs anything missed. JSON bodies are encoded once per change and reused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter

from aitrader.events import Event
from serve.schemas import Markets, PositionOut

_POSITIONS = TypeAdapter(list[PositionOut])
_MARKET_FIELDS = ("price", "change24h", "volume24h")
SPARKLINE_POINTS = 60


class ReplicaState:
    """The latest markets, open positions and engine status this replica has seen."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.markets: dict[str, dict[str, Any]] = {}
        self.open_positions: dict[str, dict[str, Any]] = {}
        self.engine: dict[str, Any] | None = None
        self.local_counts: dict[str, int] = {}
        self.markets_at = clock()
        self._markets_json: bytes | None = None
        self._positions_json: bytes | None = None

    # ---- updates ----------------------------------------------------------------------------
    def apply(self, event: Event) -> None:
        """Fold one hub event into the state (events of other types are ignored)."""
        data = event.data
        if event.type == "ticker_update" and isinstance(data.get("symbol"), str):
            self._tick(data)
        elif event.type == "position_update" and isinstance(data.get("id"), str):
            if data.get("status") == "open":
                # Price marks carry only the moving fields: merge them into what is known.
                self.open_positions[data["id"]] = {**self.open_positions.get(data["id"], {}), **data}
            else:
                self.open_positions.pop(data["id"], None)
            self._positions_json = None
        elif event.type == "engine" and data:
            self.engine = data

    def _tick(self, data: dict[str, Any]) -> None:
        market = self.markets.get(data["symbol"])
        if market is None:
            market = self.markets[data["symbol"]] = {"symbol": data["symbol"], "sparkline": []}
        for name in _MARKET_FIELDS:
            if name in data:
                market[name] = data[name]
        if "sparkline" in data and isinstance(data["sparkline"], list):
            market["sparkline"] = data["sparkline"][-SPARKLINE_POINTS:]
        self.markets_at = self._clock()
        self._markets_json = None

    def load_markets(self, rows: list[dict[str, Any]]) -> None:
        """Replace the market table with the supervisor's (an empty answer keeps what we have)."""
        if rows:
            self.markets = {row["symbol"]: dict(row) for row in rows if isinstance(row.get("symbol"), str)}
            self.markets_at = self._clock()
            self._markets_json = None

    def load_positions(self, rows: list[dict[str, Any]]) -> None:
        """Replace the open positions with a storage snapshot."""
        self.open_positions = {row["id"]: row for row in rows if row.get("status") == "open"}
        self._positions_json = None

    # ---- reads ------------------------------------------------------------------------------
    def markets_json(self) -> bytes:
        if self._markets_json is None:
            body = Markets.model_validate({
                "markets": sorted(self.markets.values(), key=lambda m: m["symbol"]),
                "timestamp": datetime.fromtimestamp(self.markets_at, UTC),
            })
            self._markets_json = body.model_dump_json().encode()
        return self._markets_json

    def open_positions_json(self) -> bytes:
        if self._positions_json is None:
            rows = sorted(self.open_positions.values(), key=lambda p: str(p.get("created_at") or ""), reverse=True)
            positions = _POSITIONS.validate_python(rows)
            self._positions_json = b'{"positions":' + _POSITIONS.dump_json(positions) + b"}"
        return self._positions_json
