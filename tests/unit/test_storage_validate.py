"""`validated` checks a table model's data exactly as ``model_validate`` does (without a table row's cost)."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from aitrader.models import Order, Position, Signal
from aitrader.storage.validate import validated, validated_values

ORDER = {"user_id": "u1", "client_order_id": "cid-1", "symbol": "btcusdt", "side": "SELL", "type": "LIMIT",
         "quantity": "0.5", "price": "65000.10", "fills": [{"price": "65000.1", "qty": "0.5"}]}
POSITION = {"user_id": "u1", "symbol": "ETHUSDT", "side": "LONG", "entry_price": "3000", "size": "2",
            "stop_loss": "2900", "pnl": "0", "pnl_pct": "0", "fees": "0.6"}
SIGNAL = {"user_id": "u1", "trader_id": "t1", "symbol": "BTCUSDT", "timeframe": "1m", "candle_time": 1_700_000_000_000,
          "trigger_price": "65000"}


@pytest.mark.parametrize(("model", "data"), [(Order, ORDER), (Position, POSITION), (Signal, SIGNAL)])
def test_valid_data_comes_out_as_model_validate_makes_it(model: Any, data: dict[str, Any]) -> None:
    fixed = {"id": "a" * 32, **data} if model is not Signal else data  # Signal's id is derived from its fields
    expected = model.model_validate(fixed).model_dump(exclude={"created_at", "updated_at"})

    row = validated(model, fixed)

    assert type(row) is model
    assert row.model_dump(exclude={"created_at", "updated_at"}) == expected
    assert set(validated_values(model, fixed)) == set(model.model_fields)


@pytest.mark.parametrize(("model", "data", "error"), [
    (Order, {**ORDER, "symbol": "not a symbol"}, "is not a Binance symbol"),  # field validator
    (Order, {**ORDER, "quote_quantity": "10"}, "exactly one of quantity or quote_quantity"),  # model validator
    (Order, {**ORDER, "price": "-1"}, "price must be greater than zero"),
    (Order, {**ORDER, "side": "SIDEWAYS"}, "side"),  # field type
    (Order, {**ORDER, "client_order_id": "x" * 37}, "at most 36 characters"),
    (Position, {**POSITION, "stop_loss": "3100"}, "stop_loss 3100 must be below"),
    (Position, {**POSITION, "size": "0"}, "must be greater than zero"),
])
def test_invalid_data_is_refused_as_model_validate_refuses_it(model: Any, data: dict[str, Any], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        model.model_validate(data)
    with pytest.raises(ValidationError, match=error):
        validated(model, data)


def test_a_model_validator_works_in_a_fresh_process_before_any_table_row_exists() -> None:
    code = ("from aitrader.models import Order; from aitrader.storage.validate import validated;\n"
            "o = validated(Order, dict(user_id='u', client_order_id='c', symbol='BTCUSDT', side='BUY', "
            "type='MARKET', quantity='1')); print(o.quantity)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout

    assert out.strip() == str(Decimal(1))
