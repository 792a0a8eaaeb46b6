"""The replica's read state: rows validated and encoded once, bodies rebuilt only after a change."""

from __future__ import annotations

import json
from typing import Any

from aitrader.events import Event
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
