"""The storage contract: every backend (SQLite and a real PostgreSQL) behaves the same."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from aitrader.models import (
    Balance,
    Order,
    OrderStatus,
    Position,
    PositionStatus,
    Signal,
    SignalStatus,
    Trader,
    TraderStatus,
)
from aitrader.storage import Conflict, NotFound, SQLStorage, Storage, sqlite_url
from aitrader.storage.migrations import LATEST_VERSION, current_version

TABLES = "orders, positions, signals, traders, balances, heartbeats"


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SQLStorage]:
    if request.param == "sqlite":
        store = SQLStorage(sqlite_url(tmp_path / "contract.db"))
    else:
        store = SQLStorage(request.getfixturevalue("postgres_url"))
        with store.engine.begin() as connection:
            connection.execute(text(f"TRUNCATE {TABLES} CASCADE"))
    yield store
    store.close()


def make_trader(user_id: str = "alice", name: str = "rsi dip", **extra: object) -> Trader:
    return Trader.model_validate(
        {
            "user_id": user_id,
            "name": name,
            "symbols": ["BTCUSDT", "ETHUSDT"],
            "timeframes": ["1m", "5m"],
            "signal_code": "rsi(close, 14) < 30",
            **extra,
        }
    )


def make_signal(trader: Trader, candle_time: int = 1_700_000_000_000, **extra: object) -> Signal:
    return Signal.model_validate(
        {
            "trader_id": trader.id,
            "user_id": trader.user_id,
            "symbol": "BTCUSDT",
            "timeframe": "1m",
            "candle_time": candle_time,
            "trigger_price": Decimal("64000.12"),
            **extra,
        }
    )


def make_position(user_id: str = "alice", **extra: object) -> Position:
    return Position.model_validate(
        {
            "user_id": user_id,
            "symbol": "BTCUSDT",
            "side": "LONG",
            "entry_price": Decimal("64000.10"),
            "size": Decimal("0.00123456"),
            "stop_loss": Decimal("63000"),
            "take_profit": Decimal("66000"),
            **extra,
        }
    )


def test_backend_satisfies_protocol(storage: SQLStorage) -> None:
    assert isinstance(storage, Storage)
    assert current_version(storage.engine) == LATEST_VERSION


def test_migrate_twice_changes_nothing(storage: SQLStorage) -> None:
    assert storage.migrate() == []
    assert current_version(storage.engine) == LATEST_VERSION


def test_trader_round_trip_and_active_filter(storage: SQLStorage) -> None:
    active = storage.create_trader(make_trader(stop_loss_pct=Decimal("1.5")))
    storage.create_trader(make_trader(name="paused", status=TraderStatus.INACTIVE))
    storage.create_trader(make_trader(user_id="bob"))

    loaded = storage.get_trader(active.id)
    assert loaded.symbols == ["BTCUSDT", "ETHUSDT"]
    assert loaded.timeframes == ["1m", "5m"]
    assert loaded.stop_loss_pct == Decimal("1.5")
    assert loaded.created_at.tzinfo is not None
    assert [t.id for t in storage.list_traders("alice", active_only=True)] == [active.id]
    assert len(storage.list_traders("alice")) == 2


def test_trader_name_is_unique_per_user(storage: SQLStorage) -> None:
    storage.create_trader(make_trader())
    with pytest.raises(Conflict, match="already exists"):
        storage.create_trader(make_trader())


def test_update_trader_validates_and_stamps(storage: SQLStorage) -> None:
    trader = storage.create_trader(make_trader())
    updated = storage.update_trader(trader.id, status=TraderStatus.INACTIVE, symbols=["solusdt"])
    assert updated.status is TraderStatus.INACTIVE
    assert updated.symbols == ["SOLUSDT"]
    assert updated.updated_at >= trader.updated_at
    with pytest.raises(ValueError, match="Binance interval"):
        storage.update_trader(trader.id, timeframes=["7m"])
    with pytest.raises(ValueError, match="no field"):
        storage.update_trader(trader.id, colour="red")
    assert storage.get_trader(trader.id).timeframes == ["1m", "5m"]


def test_delete_trader_cascades_to_signals(storage: SQLStorage) -> None:
    trader = storage.create_trader(make_trader())
    storage.create_signal(make_signal(trader))
    storage.delete_trader(trader.id)
    with pytest.raises(NotFound):
        storage.get_trader(trader.id)
    assert storage.list_signals(trader_id=trader.id) == []
    with pytest.raises(NotFound):
        storage.delete_trader(trader.id)


def test_signal_is_created_once_per_candle(storage: SQLStorage) -> None:
    trader = storage.create_trader(make_trader())
    first, created = storage.create_signal(make_signal(trader, meta={"conditions": ["rsi(close, 14) < 30"]}))
    again, created_again = storage.create_signal(make_signal(trader))
    assert created and not created_again
    assert again.id == first.id
    assert again.meta == {"conditions": ["rsi(close, 14) < 30"]}
    storage.create_signal(make_signal(trader, candle_time=1_700_000_060_000))
    assert len(storage.list_signals(trader_id=trader.id)) == 2


def test_signal_queries_and_update(storage: SQLStorage) -> None:
    trader = storage.create_trader(make_trader())
    for i in range(5):
        storage.create_signal(make_signal(trader, candle_time=1_700_000_000_000 + i * 60_000))
    storage.create_signal(make_signal(trader, symbol="ETHUSDT"))
    newest = storage.list_signals(trader_id=trader.id, limit=3)
    assert len(newest) == 3
    assert newest[0].symbol == "ETHUSDT"  # newest first
    assert [s.created_at for s in newest] == sorted((s.created_at for s in newest), reverse=True)
    assert len(storage.list_signals(symbol="ETHUSDT")) == 1
    target = newest[0]
    storage.update_signal(target.id, status=SignalStatus.EXECUTED, confidence=72.5, reasoning="trend up")
    done = storage.list_signals(user_id="alice", status=SignalStatus.EXECUTED)
    assert [s.id for s in done] == [target.id]
    assert done[0].confidence == 72.5


def test_decimal_amounts_are_exact(storage: SQLStorage) -> None:
    position = storage.create_position(make_position(size=Decimal("0.00000001"), entry_price=Decimal("0.1"), stop_loss=None, take_profit=None))
    loaded = storage.get_position(position.id)
    assert loaded.size == Decimal("0.00000001")
    assert loaded.entry_price + Decimal("0.2") == Decimal("0.3")


def test_positions_open_list_and_close_exactly_once(storage: SQLStorage) -> None:
    position = storage.create_position(make_position())
    storage.create_position(make_position(user_id="bob"))
    assert [p.id for p in storage.list_positions("alice", status=PositionStatus.OPEN)] == [position.id]

    kwargs = {"exit_price": Decimal("66000"), "pnl": Decimal("2.44"), "pnl_pct": Decimal("3.12"), "reason": "tp"}
    closed, first = storage.close_position(position.id, **kwargs)  # type: ignore[arg-type]
    again, second = storage.close_position(position.id, **kwargs)  # type: ignore[arg-type]
    assert (first, second) == (True, False)
    assert closed.status is PositionStatus.CLOSED
    assert closed.closed_at is not None
    assert again.exit_price == Decimal("66000")
    assert closed == again == storage.get_position(position.id)  # the row read back is the stored row
    assert storage.list_positions("alice", status=PositionStatus.OPEN) == []
    with pytest.raises(NotFound):
        storage.close_position("missing", **kwargs)  # type: ignore[arg-type]


def test_position_update_keeps_levels_valid(storage: SQLStorage) -> None:
    position = storage.create_position(make_position())
    moved = storage.update_position(position.id, current_price=Decimal("65000"), pnl=Decimal("1.23"))
    assert moved.current_price == Decimal("65000")
    with pytest.raises(ValueError, match="stop_loss"):
        storage.update_position(position.id, stop_loss=Decimal("70000"))


def test_a_pnl_mark_is_stored_exactly_and_checked(storage: SQLStorage) -> None:
    position = storage.create_position(make_position())
    marked = storage.update_position(position.id, current_price=Decimal("64001.5"), best_price=Decimal("64002"),
                                     pnl=Decimal("0.00185184"), pnl_pct=Decimal("0.0023"))
    loaded = storage.get_position(position.id)
    assert marked == loaded and loaded.pnl == Decimal("0.00185184") and loaded.best_price == Decimal("64002")
    assert loaded.updated_at > position.updated_at and loaded.stop_loss == Decimal("63000")
    with pytest.raises(ValueError, match="pnl"):
        storage.update_position(position.id, pnl=None)
    with pytest.raises(NotFound):
        storage.update_position("missing", current_price=Decimal(1))


def test_queued_marks_apply_at_once_last_wins_and_skip_closed_positions(storage: SQLStorage) -> None:
    # Arrange: two open positions, one of them then closed
    kept = storage.create_position(make_position())
    closed = storage.create_position(make_position())
    storage.close_position(closed.id, exit_price=Decimal("63500"), pnl=Decimal("-0.6"), pnl_pct=Decimal("-0.8"),
                           reason="stop_loss")
    # Act: marks of both (two of `kept`, the later one winning) and of an unknown id
    storage.mark_positions([
        (kept.id, {"current_price": Decimal("64100"), "pnl": Decimal("0.1"), "pnl_pct": Decimal("0.2")}),
        (closed.id, {"current_price": Decimal("1"), "pnl": Decimal("-999"), "pnl_pct": Decimal("-99")}),
        (kept.id, {"current_price": Decimal("64200.25"), "pnl": Decimal("0.24"), "pnl_pct": Decimal("0.3")}),
        ("missing", {"current_price": Decimal("1")}),
    ])
    # Assert
    marked, untouched = storage.get_position(kept.id), storage.get_position(closed.id)
    assert (marked.current_price, marked.pnl, marked.pnl_pct) == (Decimal("64200.25"), Decimal("0.24"), Decimal("0.3"))
    assert marked.updated_at > kept.updated_at and marked.stop_loss == Decimal("63000")
    assert (untouched.current_price, untouched.pnl) == (Decimal("63500"), Decimal("-0.6"))
    with pytest.raises(ValueError, match="stop_loss"):
        storage.mark_positions([(kept.id, {"stop_loss": Decimal("1")})])
    with pytest.raises(ValueError, match="pnl"):
        storage.mark_positions([(kept.id, {"pnl": None})])


def test_orders_by_client_id_and_status(storage: SQLStorage) -> None:
    order = storage.create_order(
        Order.model_validate(
            {
                "user_id": "alice",
                "client_order_id": "at-abc-entry",
                "symbol": "BTCUSDT",
                "side": "BUY",
                "type": "LIMIT",
                "quantity": Decimal("0.001"),
                "price": Decimal("60000"),
            }
        )
    )
    assert storage.get_order_by_client_id("at-abc-entry") == storage.get_order(order.id)
    assert storage.get_order_by_client_id("missing") is None
    fills = [{"price": "60000", "qty": "0.001", "commission": "0.000001", "commission_asset": "BTC"}]
    storage.update_order(order.id, status=OrderStatus.FILLED, executed_qty=Decimal("0.001"), fills=fills)
    assert storage.get_order(order.id).fills == fills
    assert storage.list_orders("alice", status=[OrderStatus.NEW]) == []
    assert len(storage.list_orders("alice", status=[OrderStatus.FILLED])) == 1
    with pytest.raises(Conflict):
        storage.create_order(Order.model_validate({**order.model_dump(), "id": "other"}))


def test_balances_replace_atomically(storage: SQLStorage) -> None:
    storage.set_balances("alice", [Balance(user_id="alice", asset="USDT", free=Decimal("10000"), locked=Decimal(0))])
    storage.set_balances(
        "alice",
        [
            Balance(user_id="alice", asset="USDT", free=Decimal("9000.5"), locked=Decimal("10")),
            Balance(user_id="alice", asset="BTC", free=Decimal("0.015"), locked=Decimal(0)),
        ],
    )
    balances = {b.asset: (b.free, b.locked) for b in storage.get_balances("alice")}
    assert balances == {"BTC": (Decimal("0.015"), Decimal(0)), "USDT": (Decimal("9000.5"), Decimal("10"))}
    assert storage.get_balances("bob") == []


def balance(asset: str, free: str, locked: str = "0") -> Balance:
    return Balance(user_id="alice", asset=asset, free=Decimal(free), locked=Decimal(locked))


def test_set_balances_drops_assets_not_given_and_keeps_other_users(storage: SQLStorage) -> None:
    storage.set_balances("alice", [balance("USDT", "10"), balance("BTC", "1"), balance("ETH", "2")])
    storage.set_balances("bob", [Balance(user_id="bob", asset="USDT", free=Decimal(5), locked=Decimal(0))])
    storage.set_balances("alice", [balance("USDT", "10"), balance("ETH", "3")])
    assert {b.asset: b.free for b in storage.get_balances("alice")} == {"ETH": Decimal(3), "USDT": Decimal(10)}
    assert {b.asset: b.free for b in storage.get_balances("bob")} == {"USDT": Decimal(5)}


def test_update_balances_writes_only_the_assets_given(storage: SQLStorage) -> None:
    storage.set_balances("alice", [balance("USDT", "10000"), balance("BTC", "1")])
    storage.update_balances("alice", [balance("USDT", "9899.9", "0.5"), balance("ETH", "0.25")])
    balances = {b.asset: (b.free, b.locked) for b in storage.get_balances("alice")}
    assert balances == {"BTC": (Decimal(1), Decimal(0)), "ETH": (Decimal("0.25"), Decimal(0)),
                        "USDT": (Decimal("9899.9"), Decimal("0.5"))}


def test_apply_many_commits_every_write_together(storage: SQLStorage) -> None:
    position = storage.create_position(make_position())
    order = Order.model_validate({"user_id": "alice", "client_order_id": "exit-1", "symbol": "BTCUSDT",
                                  "side": "SELL", "type": "MARKET", "quantity": Decimal("0.00123456")})
    close = {"exit_price": Decimal("64100"), "pnl": Decimal("0.1"), "pnl_pct": Decimal("0.15"), "reason": "sl",
             "status": PositionStatus.STOPPED, "exit_order_id": order.id}
    results = storage.apply_many([
        ("create_order", (order,), {}),
        ("update_balances", ("alice", [balance("USDT", "79.1")]), {}),
        ("close_position", (position.id,), close),
    ])
    assert results[0].id == order.id and results[1] is None
    closed, closed_now = results[2]
    assert closed_now and closed.status is PositionStatus.STOPPED and closed.exit_order_id == order.id
    assert storage.get_position(position.id).status is PositionStatus.STOPPED
    assert storage.get_order_by_client_id("exit-1") is not None
    assert [b.free for b in storage.get_balances("alice")] == [Decimal("79.1")]


def test_apply_many_writes_nothing_when_one_write_fails(storage: SQLStorage) -> None:
    position = storage.create_position(make_position())
    first = Order.model_validate({"user_id": "alice", "client_order_id": "dup", "symbol": "BTCUSDT",
                                  "side": "BUY", "type": "MARKET", "quantity": Decimal("1")})
    storage.create_order(first)
    again = Order.model_validate({**first.model_dump(), "id": "another"})
    close = {"exit_price": Decimal("64100"), "pnl": Decimal("0.1"), "pnl_pct": Decimal("0.15"), "reason": "sl"}
    with pytest.raises(Conflict):
        storage.apply_many([
            ("update_balances", ("alice", [balance("USDT", "1")]), {}),
            ("close_position", (position.id,), close),
            ("create_order", (again,), {}),  # the client order id is taken: the whole message is refused
        ])
    assert storage.get_balances("alice") == []
    assert storage.get_position(position.id).status is PositionStatus.OPEN
    # and the storage is usable afterwards
    storage.update_balances("alice", [balance("USDT", "2")])
    assert [b.free for b in storage.get_balances("alice")] == [Decimal(2)]


def test_heartbeat_upserts(storage: SQLStorage) -> None:
    assert storage.get_heartbeat("supervisor") is None
    storage.heartbeat("supervisor", "alice", {"running": True})
    storage.heartbeat("supervisor", "alice", {"running": False})
    beat = storage.get_heartbeat("supervisor")
    assert beat is not None
    assert beat.info == {"running": False}


def test_missing_rows_raise_not_found(storage: SQLStorage) -> None:
    for get in (storage.get_trader, storage.get_signal, storage.get_position, storage.get_order):
        with pytest.raises(NotFound):
            get("nope")
    with pytest.raises(NotFound):
        storage.update_position("nope", pnl=Decimal(1))
