"""The TUI's state: REST snapshots merged with `/ws` events that raced them (no Textual, no network)."""

from __future__ import annotations

from typing import Any

from cli.tui.state import TuiState

JSON = dict[str, Any]


def ticker(symbol: str, price: str, **fields: Any) -> JSON:
    return {"type": "ticker_update", "data": {"symbol": symbol, "price": price, **fields}}


def position_event(position_id: str, status: str = "open", **fields: Any) -> JSON:
    return {"type": "position_update", "data": {"id": position_id, "status": status, **fields}}


def signal_event(signal_id: str, kind: str = "signal_created", **fields: Any) -> JSON:
    return {"type": kind, "data": {"id": signal_id, "trader_id": "t-1", "symbol": "BTCUSDT", **fields}}


def market(symbol: str, price: str) -> JSON:
    return {"symbol": symbol, "price": price, "change24h": "0.50", "volume24h": "10", "sparkline": [1.0, 2.0, 3.0]}


def position(position_id: str, symbol: str = "BTCUSDT", **fields: Any) -> JSON:
    return {"id": position_id, "symbol": symbol, "side": "LONG", "size": "0.010", "entry_price": "60000.00",
            "current_price": "60000.00", "pnl": "0.00", "status": "open", **fields}


def snapshot(**parts: Any) -> JSON:
    base: JSON = {"status": {"version": "1"}, "markets": [], "traders": [{"id": "t-1", "signal_count": 1}],
                  "signals": [], "positions": [], "balance": {}}
    return {**base, **parts}


def loaded(**parts: Any) -> TuiState:
    state = TuiState()
    state.load(snapshot(**parts))
    return state


def test_a_ticker_applied_after_the_request_beats_the_snapshots_older_price() -> None:
    state = loaded(markets=[market("BTCUSDT", "60000.00"), market("ETHUSDT", "3000.00")])
    requested_at = state.events_applied
    state.apply(ticker("BTCUSDT", "70000.00", change24h="1.50"))

    state.load(snapshot(markets=[market("BTCUSDT", "60000.00"), market("ETHUSDT", "3100.00")]), requested_at)

    assert state.markets["BTCUSDT"]["price"] == "70000.00"
    assert state.markets["BTCUSDT"]["change24h"] == "1.50"
    assert state.markets["BTCUSDT"]["sparkline"] == [1.0, 2.0, 70000.0]  # the snapshot's history, the live close
    assert state.markets["ETHUSDT"]["price"] == "3100.00"


def test_a_snapshot_requested_after_a_ticker_wins_and_the_ticker_is_forgotten() -> None:
    state = loaded(markets=[market("BTCUSDT", "60000.00")])
    state.apply(ticker("BTCUSDT", "70000.00"))
    requested_at = state.events_applied

    state.load(snapshot(markets=[market("BTCUSDT", "71000.00")]), requested_at)
    state.load(snapshot(markets=[market("BTCUSDT", "72000.00")]), state.events_applied)

    assert state.markets["BTCUSDT"]["price"] == "72000.00"


def test_a_load_without_a_stamp_replaces_everything() -> None:
    state = loaded(markets=[market("BTCUSDT", "60000.00")])
    state.apply(ticker("BTCUSDT", "70000.00"))

    state.load(snapshot(markets=[market("BTCUSDT", "60000.00")]))

    assert state.markets["BTCUSDT"]["price"] == "60000.00"


def test_a_position_closed_after_the_request_is_not_revived_by_the_snapshot() -> None:
    state = loaded(positions=[position("pos-1"), position("pos-2", "ETHUSDT")])
    requested_at = state.events_applied
    state.apply(position_event("pos-1", "closed"))

    state.load(snapshot(positions=[position("pos-1"), position("pos-2", "ETHUSDT")]), requested_at)

    assert list(state.positions) == ["pos-2"]


def test_a_position_opened_after_the_request_stays_and_a_newer_mark_keeps_its_figures() -> None:
    state = loaded(positions=[position("pos-1")])
    requested_at = state.events_applied
    state.apply(position_event("pos-1", current_price="61000.00", pnl="10.00", event="marked"))
    state.apply({"type": "position_update", "data": position("pos-2", "ETHUSDT", event="opened")})

    state.load(snapshot(positions=[position("pos-1", stop_loss="58800.00")]), requested_at)

    assert list(state.positions) == ["pos-1", "pos-2"]
    assert state.positions["pos-1"]["current_price"] == "61000.00"
    assert state.positions["pos-1"]["stop_loss"] == "58800.00"


def test_a_mark_delivered_after_the_close_or_for_an_unknown_position_adds_no_row() -> None:
    state = loaded(positions=[position("pos-1")])
    state.apply(position_event("pos-1", "closed"))

    late = state.apply(position_event("pos-1", current_price="61000.00", event="marked"))
    unknown = state.apply(position_event("pos-9", symbol="SOLUSDT", current_price="150.00", event="marked"))

    assert (late, unknown) == (set(), set())
    assert state.positions == {}


def test_a_closed_position_in_a_later_snapshot_stays_closed() -> None:
    state = loaded(positions=[position("pos-1")])
    state.apply(position_event("pos-1", "closed"))

    state.load(snapshot(positions=[position("pos-1")]), state.events_applied)  # a store that lags the events

    assert state.positions == {}


def test_signals_from_events_after_the_request_stay_on_top_and_are_counted_once() -> None:
    state = loaded(signals=[{"id": "sig-1", "trader_id": "t-1", "status": "analyzing"}])
    requested_at = state.events_applied
    state.apply(signal_event("sig-2"))
    state.apply(signal_event("sig-1", "signal_updated", status="executed"))

    state.load(snapshot(signals=[{"id": "sig-1", "trader_id": "t-1", "status": "analyzing"}],
                        traders=[{"id": "t-1", "signal_count": 1}]), requested_at)

    assert [(s["id"], s.get("status")) for s in state.signals] == [("sig-2", None), ("sig-1", "executed")]
    assert state.traders["t-1"]["signal_count"] == 2


def test_a_signal_event_for_a_signal_the_snapshot_already_holds_does_not_count_it_twice() -> None:
    state = loaded(signals=[{"id": "sig-2", "trader_id": "t-1"}], traders=[{"id": "t-1", "signal_count": 2}])

    state.apply(signal_event("sig-2"))

    assert [s["id"] for s in state.signals] == ["sig-2"]
    assert state.traders["t-1"]["signal_count"] == 2


def test_an_engine_status_event_after_the_request_beats_the_snapshots_status() -> None:
    state = loaded()
    requested_at = state.events_applied
    state.apply({"type": "engine", "data": {"version": "1", "feed": "stale"}})

    state.load(snapshot(status={"version": "1", "feed": "binance"}), requested_at)

    assert state.status["feed"] == "stale"


def test_events_before_the_first_snapshot_are_kept_by_it() -> None:
    state = TuiState()
    requested_at = state.events_applied
    state.apply(ticker("SOLUSDT", "150.00"))

    state.load(snapshot(markets=[market("BTCUSDT", "60000.00"), market("SOLUSDT", "140.00")]), requested_at)

    assert state.markets["SOLUSDT"]["price"] == "150.00"
    assert state.loaded
