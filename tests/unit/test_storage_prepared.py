"""Prepared statements (the Store's hot writes on the DBAPI cursor) and the SQL transaction plumbing."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from aitrader.models import (
    Balance,
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    PositionSide,
    PositionStatus,
)
from aitrader.storage.base import Conflict
from aitrader.storage.prepared import Prepared
from aitrader.storage.sql import SQLStorage
from aitrader.storage.transactions import _retry_locked


@pytest.fixture
def storage(tmp_path: Path) -> SQLStorage:
    return SQLStorage(f"sqlite:///{tmp_path / 'data.db'}")


def _order(**changes: object) -> Order:
    return Order.model_validate({
        "user_id": "u1", "client_order_id": "cid-1", "symbol": "BTCUSDT", "side": OrderSide.SELL,
        "type": OrderType.MARKET, "quantity": Decimal("0.00100000"), "status": OrderStatus.FILLED,
        "executed_qty": Decimal("0.001"), "cumulative_quote_qty": Decimal("65.4321"),
        "fills": [{"price": "65432.1", "qty": "0.001", "commission": "0.0654321", "commissionAsset": "USDT",
                   "tradeId": "7"}], "purpose": "exit", **changes,
    })


def test_a_prepared_insert_stores_what_sqlalchemy_reads_back_unchanged(storage: SQLStorage) -> None:
    order = _order(created_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC))
    table = Order.__table__  # type: ignore[attr-defined]
    prepared = Prepared(insert(table), storage.engine.dialect)

    with storage.engine.begin() as connection:
        changed, rows = prepared.execute(connection, {name: getattr(order, name) for name in Order.model_fields})

    assert (changed, rows) == (1, [])
    assert storage.get_order(order.id).model_dump() == order.model_dump()
    with storage.engine.connect() as connection:
        raw = connection.exec_driver_sql("SELECT quantity, side, fills FROM orders").one()
    assert raw[0] == "0.00100000" and raw[1] == "SELL"  # exact text and the enum's value, as the ORM writes them
    assert '"tradeId": "7"' in raw[2]


def test_a_prepared_update_returns_its_rows_converted_by_the_column_types(storage: SQLStorage) -> None:
    position = storage.create_position(Position.model_validate({
        "user_id": "u1", "symbol": "ETHUSDT", "side": PositionSide.LONG, "entry_price": Decimal("3000"),
        "size": Decimal("2"), "pnl": Decimal(0), "pnl_pct": Decimal(0), "fees": Decimal("0.6")}))
    table = Position.__table__  # type: ignore[attr-defined]
    statement = (update(table).where(table.c.id == bindparam("p_id"), table.c.status == bindparam("p_open"))
                 .values(status=bindparam("new_status"), pnl=bindparam("new_pnl")).returning(*table.c))
    prepared = Prepared(statement, storage.engine.dialect)
    values = {"p_id": position.id, "p_open": PositionStatus.OPEN, "new_status": PositionStatus.CLOSED,
              "new_pnl": Decimal("-12.50")}

    with storage.engine.begin() as connection:
        first = prepared.execute(connection, values)
        second = prepared.execute(connection, values)  # no longer open: nothing to change

    changed, [row] = first
    assert changed == 1
    assert row["status"] is PositionStatus.CLOSED and row["pnl"] == Decimal("-12.5")
    assert row["created_at"] == position.created_at and row["created_at"].tzinfo is not None
    assert second == (0, [])


def test_a_prepared_statement_raises_sqlalchemys_errors(storage: SQLStorage) -> None:
    order = _order()
    storage.create_order(order)
    prepared = Prepared(insert(Order.__table__), storage.engine.dialect)  # type: ignore[attr-defined]

    with pytest.raises(IntegrityError), storage.engine.begin() as connection:
        prepared.execute(connection, {name: getattr(order, name) for name in Order.model_fields})
    with pytest.raises(Conflict, match="client order id already exists"):
        storage.create_order(_order())


def test_a_prepared_statement_refuses_expanding_parameters(storage: SQLStorage) -> None:
    table = Order.__table__  # type: ignore[attr-defined]
    statement = select(table.c.id).where(table.c.id.in_(bindparam("ids", expanding=True)))

    with pytest.raises(ValueError, match="plain bound parameters"):
        Prepared(statement, storage.engine.dialect)


def test_apply_many_mixes_core_and_orm_calls_in_one_transaction(storage: SQLStorage) -> None:
    order = _order(status=OrderStatus.NEW, executed_qty=Decimal(0), cumulative_quote_qty=Decimal(0), fills=[])

    results = storage.apply_many([
        ("create_order", (order,), {}),
        ("update_order", (order.id,), {"status": OrderStatus.FILLED}),  # an ORM read and a validated write
        ("update_balances", ("u1", [_balance("USDT", "10.5")]), {}),
    ])

    assert results[1].status is OrderStatus.FILLED
    assert storage.get_order(order.id).status is OrderStatus.FILLED
    assert [(b.asset, b.free) for b in storage.get_balances("u1")] == [("USDT", Decimal("10.5"))]
    with pytest.raises(Conflict):
        storage.apply_many([("update_balances", ("u1", [_balance("USDT", "99")]), {}),
                            ("create_order", (order,), {})])  # a duplicate: the balance goes back too
    assert storage.get_balances("u1")[0].free == Decimal("10.5")


def _balance(asset: str, free: str) -> Balance:
    return Balance.model_construct(user_id="u1", asset=asset, free=Decimal(free), locked=Decimal(0))


def test_a_locked_database_is_tried_again_and_other_errors_are_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("aitrader.storage.transactions.time.sleep", lambda _s: None)
    calls: list[str] = []

    def locked_twice() -> str:
        calls.append("call")
        if len(calls) <= 2:
            raise OperationalError("COMMIT", {}, sqlite3.OperationalError("database is locked"))
        return "done"

    def broken() -> str:
        calls.append("broken")
        raise OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: x"))

    assert _retry_locked(locked_twice) == "done" and len(calls) == 3
    calls.clear()
    with pytest.raises(OperationalError, match="no such table"):
        _retry_locked(broken)
    assert calls == ["broken"]


def test_a_begin_that_finds_the_database_locked_raises_sqlalchemys_operational_error(tmp_path: Path) -> None:
    # Arrange: another connection holds the write lock; this engine's connection waits 1 ms for it
    from aitrader.storage.engine import create_storage_engine

    path = tmp_path / "locked.db"
    engine = create_storage_engine(f"sqlite:///{path}")
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA busy_timeout=1")  # kept by the pooled connection
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        # Act / Assert: the BEGIN IMMEDIATE of the engine's transaction is refused, as SQLAlchemy's error
        with pytest.raises(OperationalError, match="locked"), engine.begin():
            pass
    finally:
        blocker.close()
        engine.dispose()
