"""The msgpack form of storage calls between the Executor and the Store (aitrader.storage.wire)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from aitrader.models import Balance, Order, OrderSide, OrderStatus, OrderType, Position, PositionStatus
from aitrader.storage.sql import SQLStorage
from aitrader.storage.wire import (
    decode_close_request,
    decode_results,
    decode_view,
    decode_writes,
    encode_close_request,
    encode_results,
    encode_view,
    encode_writes,
)


def _order() -> Order:
    return Order.model_validate({
        "user_id": "u1", "client_order_id": "cid-1", "symbol": "BTCUSDT", "side": OrderSide.SELL,
        "type": OrderType.MARKET, "quantity": Decimal("0.00100000"), "status": OrderStatus.FILLED,
        "executed_qty": Decimal("0.001"), "cumulative_quote_qty": Decimal("65.4321"),
        "fills": [{"price": "65432.1", "qty": "0.001", "commission": "0.0654321", "commission_asset": "USDT",
                   "trade_id": "7"}],
        "position_id": "p" * 32, "purpose": "exit",
    })


def _position() -> Position:
    return Position.model_validate({
        "user_id": "u1", "symbol": "BTCUSDT", "side": "LONG", "entry_price": Decimal("65000"),
        "size": Decimal("0.001"), "stop_loss": Decimal("64000.5"), "pnl": Decimal("-0.065"),
        "pnl_pct": Decimal("-0.1"), "fees": Decimal("0.065"), "status": PositionStatus.STOPPED,
        "closed_at": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
    })


def test_writes_round_trip_with_models_decimals_enums_and_datetimes() -> None:
    # Arrange
    order = _order()
    balances = [Balance.model_validate({"user_id": "u1", "asset": "USDT", "free": Decimal("9934.5679"),
                                        "locked": Decimal(0)})]
    writes = [
        ("update_balances", ("u1", balances), {}),
        ("create_order", (order,), {}),
        ("close_position", ("p" * 32,), {"exit_price": Decimal("65432.1"), "reason": "stop_loss",
                                         "status": PositionStatus.STOPPED, "exit_order_id": None}),
    ]

    # Act
    decoded = decode_writes(encode_writes(writes))

    # Assert
    assert [method for method, _args, _kwargs in decoded] == ["update_balances", "create_order", "close_position"]
    assert all(isinstance(args, tuple) for _method, args, _kwargs in decoded)
    sent_order = decoded[1][1][0]
    assert isinstance(sent_order, Order)
    assert sent_order.model_dump() == order.model_dump()
    assert sent_order.quantity == Decimal("0.00100000") and str(sent_order.quantity) == "0.00100000"
    assert sent_order.status is OrderStatus.FILLED and sent_order.created_at.tzinfo is not None
    [balance] = decoded[0][1][1]
    assert isinstance(balance, Balance) and balance.free == Decimal("9934.5679")
    assert decoded[2][2] == writes[2][2] and decoded[2][2]["status"] is PositionStatus.STOPPED


def test_results_round_trip_a_close() -> None:
    position = _position()

    [(closed, closed_now)] = decode_results(encode_results([(position, True)]))

    assert isinstance(closed, Position) and closed_now is True
    assert closed.model_dump() == position.model_dump()
    assert closed.closed_at == datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def test_a_value_it_cannot_carry_is_refused_before_sending() -> None:
    with pytest.raises(TypeError, match="cannot send a object"):
        encode_writes([("create_order", (object(),), {})])


def test_decoded_writes_apply_to_sqlite_and_storage_still_validates(tmp_path: Path) -> None:
    # Arrange
    storage = SQLStorage(f"sqlite:///{tmp_path / 'wire.db'}")
    order = _order()
    bad = Order.model_construct(**{**order.model_dump(), "id": "x" * 32, "client_order_id": "cid-2",
                                   "quantity": Decimal(-1)})

    # Act
    storage.apply_many(decode_writes(encode_writes([("create_order", (order,), {})])))

    # Assert: stored as sent; a row that fails the model's rules is refused by storage, not by the wire
    assert storage.get_order(order.id).model_dump() == order.model_dump()
    with pytest.raises(ValueError, match="quantity must be greater than zero"):
        storage.apply_many(decode_writes(encode_writes([("create_order", (bad,), {})])))
    assert storage.get_order_by_client_id("cid-2") is None


def test_a_close_request_and_a_view_round_trip() -> None:
    assert decode_close_request(encode_close_request("p1", "stop_loss", "64999.99")) == ("p1", "stop_loss", "64999.99")
    assert decode_view(encode_view({"id": "p1", "status": "stopped", "exit_price": None})) == {
        "id": "p1", "status": "stopped", "exit_price": None}
