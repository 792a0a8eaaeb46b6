"""The replica's read state: rows validated and encoded once, bodies rebuilt only after a change."""

from __future__ import annotations

import asyncio
import json
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from aitrader.config import Settings
from aitrader.events import Event
from aitrader.models import Position
from aitrader.storage import SQLStorage
from serve import ApiService, LocalBackend
from serve.state import ReplicaState

_seq = iter(range(1, 1_000_000))


def event(type: str, data: dict[str, Any]) -> Event:
    channel = "tickers" if type == "ticker_update" else "positions"
    return Event(seq=next(_seq), channel=channel, type=type, time=0.0, data=data)


def tick(symbol: str, **fields: Any) -> Event:
    return event("ticker_update", {"symbol": symbol, **fields})


def position(position_id: str, created_at: str, **fields: Any) -> dict[str, Any]:
    return {"id": position_id, "symbol": "BTCUSDT", "side": "LONG", "size": "1", "entry_price": "100",
            "status": "open", "created_at": created_at, **fields}


def test_markets_body_is_cached_until_a_tick_changes_it() -> None:
    clock = iter(range(1_700_000_000, 1_800_000_000))
    state = ReplicaState(clock=lambda: float(next(clock)))
    state.apply(tick("ETHUSDT", price="3000", sparkline=[1.0, 2.0]))
    state.apply(tick("BTCUSDT", price=60000, change24h=1.5))
    first = state.markets_json()

    assert state.markets_json() is first
    body = json.loads(first)
    assert [m["symbol"] for m in body["markets"]] == ["BTCUSDT", "ETHUSDT"]
    assert body["markets"][0] == {"symbol": "BTCUSDT", "price": "60000", "change24h": "1.5", "volume24h": "0",
                                  "sparkline": []}
    assert body["timestamp"].endswith("Z")

    state.apply(tick("ETHUSDT", price="3001"))
    after = json.loads(state.markets_json())
    assert after["markets"][1]["price"] == "3001" and after["markets"][1]["sparkline"] == [1.0, 2.0]
    assert after["timestamp"] > body["timestamp"]


def test_a_market_that_does_not_match_the_schema_is_left_out_until_it_does() -> None:
    state = ReplicaState()
    state.apply(tick("BTCUSDT", price="60000"))
    state.apply(tick("NEWUSDT", change24h="2"))  # no price yet

    assert [m["symbol"] for m in json.loads(state.markets_json())["markets"]] == ["BTCUSDT"]
    state.apply(tick("NEWUSDT", price="1.25"))
    markets = json.loads(state.markets_json())["markets"]
    assert [(m["symbol"], m["price"], m["change24h"]) for m in markets] == [("BTCUSDT", "60000", "0"),
                                                                          ("NEWUSDT", "1.25", "2")]


def test_supervisor_snapshot_replaces_markets_but_an_empty_one_keeps_them() -> None:
    state = ReplicaState()
    state.apply(tick("OLDUSDT", price="1"))
    state.load_markets([{"symbol": "BTCUSDT", "price": "60000"}, {"symbol": "ETHUSDT", "price": "3000"}])
    state.load_markets([])

    assert [m["symbol"] for m in json.loads(state.markets_json())["markets"]] == ["BTCUSDT", "ETHUSDT"]


def test_open_positions_newest_first_with_marks_merged_and_closes_removed() -> None:
    state = ReplicaState()
    state.load_positions([position("a", "2026-01-01T00:00:00Z"), position("b", "2026-01-02T00:00:00Z"),
                          position("c", "2026-01-03T00:00:00Z", status="closed")])
    state.apply(event("position_update", {"id": "a", "status": "open", "current_price": "101.5"}))
    body = json.loads(state.open_positions_json())

    assert [p["id"] for p in body["positions"]] == ["b", "a"]
    assert body["positions"][1]["current_price"] == "101.5" and body["positions"][1]["entry_price"] == "100"
    state.apply(event("position_update", {"id": "b", "status": "closed"}))
    assert [p["id"] for p in json.loads(state.open_positions_json())["positions"]] == ["a"]
    assert len(state.open_positions) == 1


def test_a_storage_snapshot_drops_positions_it_no_longer_has() -> None:
    state = ReplicaState()
    state.load_positions([position("a", "2026-01-01T00:00:00Z"), position("b", "2026-01-02T00:00:00Z")])
    unchanged = state.open_positions_json()
    state.load_positions([position("a", "2026-01-01T00:00:00Z"), position("b", "2026-01-02T00:00:00Z")])
    assert state.open_positions_json() is unchanged

    state.load_positions([position("b", "2026-01-02T00:00:00Z")])
    assert [p["id"] for p in json.loads(state.open_positions_json())["positions"]] == ["b"]


def test_a_snapshot_read_before_a_close_does_not_revive_the_position() -> None:
    state = ReplicaState()
    state.load_positions([position("a", "2026-01-01T00:00:00Z"), position("b", "2026-01-02T00:00:00Z")])
    stamp = state.position_stamp  # a refresh starts reading storage ...
    stale = [position("a", "2026-01-01T00:00:00Z"), position("b", "2026-01-02T00:00:00Z")]
    state.apply(event("position_update", {**position("b", "2026-01-02T00:00:00Z"), "status": "closed"}))
    state.load_positions(stale, as_of=stamp)  # ... and lands after the close

    assert [p["id"] for p in json.loads(state.open_positions_json())["positions"]] == ["a"]
    assert len(state.open_positions) == 1


def test_without_a_stamp_events_since_the_previous_load_win_over_the_snapshot() -> None:
    state = ReplicaState()
    state.load_positions([position("a", "2026-01-01T00:00:00Z"), position("b", "2026-01-02T00:00:00Z")])
    stale = [position("a", "2026-01-01T00:00:00Z", current_price="100"), position("b", "2026-01-02T00:00:00Z")]
    state.apply(event("position_update", {"id": "b", "status": "closed"}))
    state.apply(event("position_update", position("c", "2026-01-03T00:00:00Z")))  # opened after the read
    state.apply(event("position_update", {"id": "a", "status": "open", "current_price": "105"}))
    state.load_positions(stale)

    body = json.loads(state.open_positions_json())["positions"]
    assert [(p["id"], p.get("current_price")) for p in body] == [("c", None), ("a", "105")]
    state.load_positions([position("a", "2026-01-01T00:00:00Z", current_price="106")])  # no event since: it rules
    assert [(p["id"], p["current_price"]) for p in json.loads(state.open_positions_json())["positions"]] == [
        ("a", "106")]


def test_a_late_mark_does_not_revive_a_closed_position_nor_create_a_partial_one() -> None:
    state = ReplicaState()
    state.load_positions([position("a", "2026-01-01T00:00:00Z")])
    state.apply(event("position_update", {"id": "a", "status": "closed"}))
    state.apply(event("position_update", {"id": "a", "status": "open", "current_price": "99", "event": "marked"}))
    state.apply(event("position_update", {"id": "z", "status": "open", "current_price": "1", "event": "marked"}))

    assert state.open_positions == {} and json.loads(state.open_positions_json()) == {"positions": []}
    state.load_positions([position("a", "2026-01-01T00:00:00Z")])  # a storage reader lagging behind the close
    assert state.open_positions == {}


class PausingReader:
    """A read-only storage whose next `list_positions` answers only once the test says so."""

    def __init__(self, storage: SQLStorage) -> None:
        self.storage = storage
        self.paused = False
        self.read_done = threading.Event()
        self.go_on = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.storage, name)

    def list_positions(self, *args: Any, **kwargs: Any) -> list[Position]:
        rows = self.storage.list_positions(*args, **kwargs)
        if self.paused:
            self.read_done.set()
            self.go_on.wait(10)
        return rows


async def test_a_refresh_that_read_storage_before_a_close_event_does_not_revive_the_position(tmp_path: Path) -> None:
    storage = SQLStorage(f"sqlite:///{tmp_path}/api.db")
    opened = storage.create_position(Position.model_validate({
        "user_id": "alice", "symbol": "ETHUSDT", "side": "LONG", "entry_price": Decimal("3000"), "size": "1"}))
    reader = PausingReader(storage)
    service = ApiService(LocalBackend(storage, user_id="alice"),
                         Settings(api_key=SecretStr("k" * 32), user_id="alice"), reader=reader)  # type: ignore[arg-type]
    await service.refresh()
    assert list(service.state.open_positions) == [opened.id]

    reader.paused = True
    refresh = asyncio.create_task(service.refresh())
    try:
        await asyncio.to_thread(reader.read_done.wait, 10)  # the refresh has read the position as open ...
        closed, _ = storage.close_position(opened.id, exit_price=Decimal("3100"), pnl=Decimal("100"),
                                           pnl_pct=Decimal("3.33"), reason="take_profit")
        service.fanout.dispatch(Event(seq=1, channel="positions", type="position_update", time=0.0,
                                      data={**closed.model_dump(mode="json"), "event": "closed"}))
        assert service.state.open_positions == {}  # ... the close event is applied ...
    finally:
        reader.go_on.set()
    await refresh  # ... then the older snapshot lands

    assert service.state.open_positions == {}
    assert json.loads(service.state.open_positions_json()) == {"positions": []}


def test_a_position_closed_through_this_replica_stays_closed_whatever_a_refresh_read() -> None:
    state = ReplicaState()
    state.load_positions([position("a", "2026-01-01T00:00:00Z")])
    state.position_closed("a")
    state.load_positions([position("a", "2026-01-01T00:00:00Z")])

    assert state.open_positions == {}


def test_an_engine_status_read_before_an_engine_event_does_not_replace_it() -> None:
    state = ReplicaState()
    before = state.engine_stamp
    state.apply(Event(seq=1, channel="engine", type="engine", time=0.0, data={"running": False, "feed": "stale"}))
    assert not state.load_engine({"running": True, "feed": "local"}, as_of=before)  # read began before the event
    assert state.engine == {"running": False, "feed": "stale"}
    assert state.load_engine({"running": True, "feed": "local"}, as_of=state.engine_stamp)
    assert state.engine == {"running": True, "feed": "local"}
