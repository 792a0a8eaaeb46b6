"""Replica-local read state: markets, open positions and engine status, kept fresh from events.

The hot reads (`/api/markets`, `/api/positions?status=open`, `/status`) are answered from here
without an actor hop: the event pump applies ``ticker_update``, ``position_update`` and
``engine`` events as they arrive, and a periodic refresh (supervisor + read-only storage)
repairs anything missed.

Refreshes and events race: a storage snapshot read before an event may land after it (a position
closed by an event would come back from the older snapshot). Like the TUI's state, the replica
counts the position events it applies (`position_stamp`); `load_positions` keeps what events
changed after the stamp taken before the read instead of the snapshot's copy, and remembers
closed ids so that neither a stale snapshot nor a late price mark revives a closed position.

Serving must stay cheap however fast events arrive (hundreds of ticks a second, each of which
changes the snapshot): every market and position is validated and JSON-encoded once, when it
changes, and a response body is only the join of those encoded rows, cached until the next
change. A row that does not match its schema is left out (and logged) rather than served.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError

from aitrader.events import Event
from serve.schemas import Market, PositionOut

log = logging.getLogger("aitrader.serve")

_MARKET_FIELDS = ("price", "change24h", "volume24h")
SPARKLINE_POINTS = 60
#: Closed position ids remembered so that a stale snapshot or a late mark does not revive one.
MAX_CLOSED = 10_000


class EncodedRows:
    """Rows keyed by id, each kept with its schema-checked JSON, joined into one array on demand."""

    def __init__(self, schema: type[BaseModel], order: Callable[[dict[str, Any]], Any], reverse: bool = False) -> None:
        self.schema = schema
        self.order = order
        self.reverse = reverse
        self.rows: dict[str, dict[str, Any]] = {}
        self._encoded: dict[str, bytes] = {}
        self._keys: list[str] | None = None  # encoded keys in order; re-sorted only when that can change
        self._array: bytes | None = None

    def put(self, key: str, row: dict[str, Any]) -> None:
        """Store ``row`` under ``key`` and encode it (unchanged rows cost one comparison)."""
        old = self.rows.get(key)
        if old == row and key in self._encoded:
            return
        self.rows[key] = row
        if key not in self._encoded or old is None or self.order(old) != self.order(row):
            self._keys = None
        try:
            self._encoded[key] = self.schema.model_validate(row).model_dump_json().encode()
        except ValidationError as exc:
            self._encoded.pop(key, None)
            self._keys = None
            log.warning("%s %s left out: it does not match the schema (%d problems)", self.schema.__name__, key,
                        exc.error_count())
        self._array = None

    def pop(self, key: str) -> None:
        if self.rows.pop(key, None) is not None:
            self._encoded.pop(key, None)
            self._keys = self._array = None

    def replace(self, rows: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Make the table exactly ``rows``, re-encoding only the ones that changed."""
        fresh = dict(rows)
        for key in [k for k in self.rows if k not in fresh]:
            self.pop(key)
        for key, row in fresh.items():
            self.put(key, row)

    def array(self) -> bytes:
        """The JSON array of every valid row, in order (cached until a row changes)."""
        if self._array is None:
            if self._keys is None:
                self._keys = sorted(self._encoded, key=lambda k: self.order(self.rows[k]), reverse=self.reverse)
            self._array = b"[" + b",".join([self._encoded[k] for k in self._keys]) + b"]"
        return self._array

    def __len__(self) -> int:
        return len(self.rows)


class ReplicaState:
    """The latest markets, open positions and engine status this replica has seen."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.markets = EncodedRows(Market, lambda m: m["symbol"])
        self.positions = EncodedRows(PositionOut, lambda p: str(p.get("created_at") or ""), reverse=True)
        self.engine: dict[str, Any] | None = None
        #: Engine events applied so far: a status read that started before one must not replace it.
        self.engine_stamp = 0
        #: Position events applied so far: take it before a storage read, pass it to `load_positions`.
        self.position_stamp = 0
        self._position_changed_at: dict[str, int] = {}  # id -> position_stamp after its last event
        self._positions_loaded_at = 0  # position_stamp when the last snapshot was loaded
        self._closed: dict[str, None] = {}  # closed position ids, oldest first
        self.local_counts: dict[str, int] = {}
        self.markets_at = clock()
        self._bodies: dict[str, tuple[object, bytes]] = {}

    @property
    def open_positions(self) -> dict[str, dict[str, Any]]:
        return self.positions.rows

    # ---- updates ----------------------------------------------------------------------------
    def apply(self, event: Event) -> None:
        """Fold one hub event into the state (events of other types are ignored)."""
        data = event.data
        if event.type == "ticker_update" and isinstance(data.get("symbol"), str):
            self._tick(data)
        elif event.type == "position_update" and isinstance(data.get("id"), str):
            self._position(data["id"], data)
        elif event.type == "engine" and data:
            self.engine = data
            self.engine_stamp += 1

    def load_engine(self, status: dict[str, Any], as_of: int) -> bool:
        """Take a status read after ``engine_stamp`` was ``as_of``, unless an engine event came
        since (it is newer); True when taken."""
        if self.engine_stamp != as_of:
            return False
        self.engine = status
        return True

    def position_closed(self, position_id: str) -> None:
        """Drop a position this replica saw closed (e.g. by its own close route) before the event came."""
        self._position(position_id, {"id": position_id, "status": "closed"})

    def _position(self, position_id: str, data: dict[str, Any]) -> None:
        if position_id in self._closed:
            return  # a mark published before the close but delivered after it
        if data.get("status") == "open":
            known = self.positions.rows.get(position_id)
            if known is None and "side" not in data:
                return  # a price mark of a position not known yet: the next snapshot brings it whole
            # Price marks carry only the moving fields: merge them into what is known.
            self.positions.put(position_id, {**(known or {}), **data})
        else:
            self.positions.pop(position_id)
            self._closed[position_id] = None
            if len(self._closed) > MAX_CLOSED:
                del self._closed[next(iter(self._closed))]
        self.position_stamp += 1
        self._position_changed_at[position_id] = self.position_stamp

    def _tick(self, data: dict[str, Any]) -> None:
        known = self.markets.rows.get(data["symbol"])
        market = dict(known) if known else {"symbol": data["symbol"], "sparkline": []}
        for name in _MARKET_FIELDS:
            if name in data:
                market[name] = data[name]
        if "sparkline" in data and isinstance(data["sparkline"], list):
            market["sparkline"] = data["sparkline"][-SPARKLINE_POINTS:]
        self.markets.put(data["symbol"], market)
        self.markets_at = self._clock()

    def load_markets(self, rows: list[dict[str, Any]]) -> None:
        """Replace the market table with the supervisor's (an empty answer keeps what we have)."""
        if rows:
            self.markets.replace((row["symbol"], dict(row)) for row in rows if isinstance(row.get("symbol"), str))
            self.markets_at = self._clock()

    def load_positions(self, rows: list[dict[str, Any]], as_of: int | None = None) -> None:
        """Replace the open positions with a storage snapshot read after ``position_stamp`` was ``as_of``.

        Positions that events changed after ``as_of`` keep their event-driven version (merged over
        the snapshot's row, or absent if an event closed them). Without ``as_of``, every event since
        the previous load counts as newer: safe, as replaying an event already in the snapshot
        changes nothing that the next event would not.
        """
        stamp = self._positions_loaded_at if as_of is None else as_of
        fresh = {row["id"]: row for row in rows if row.get("status") == "open" and row["id"] not in self._closed}
        changed = {key for key, at in self._position_changed_at.items() if at > stamp}
        for key in changed:
            newer = self.positions.rows.get(key)
            if newer is None:
                fresh.pop(key, None)
            else:
                fresh[key] = {**fresh.get(key, {}), **newer}
        self.positions.replace(fresh.items())
        self._position_changed_at = {key: self._position_changed_at[key] for key in changed}
        self._positions_loaded_at = self.position_stamp

    # ---- reads ------------------------------------------------------------------------------
    def markets_json(self) -> bytes:
        array = self.markets.array()
        return self._body("markets", (array, self.markets_at), lambda: b'{"markets":' + array + b',"timestamp":"'
                          + datetime.fromtimestamp(self.markets_at, UTC).isoformat().replace("+00:00", "Z").encode()
                          + b'"}')

    def open_positions_json(self) -> bytes:
        array = self.positions.array()
        return self._body("positions", array, lambda: b'{"positions":' + array + b"}")

    def _body(self, name: str, source: object, build: Callable[[], bytes]) -> bytes:
        """The response body built from ``source``, rebuilt only when ``source`` changed."""
        cached = self._bodies.get(name)
        if cached is None or cached[0] != source:
            cached = self._bodies[name] = (source, build())
        return cached[1]
