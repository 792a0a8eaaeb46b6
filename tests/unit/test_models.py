from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from aitrader.models import (
    Fill,
    Order,
    Position,
    PositionSide,
    Signal,
    Trader,
    check_protective_levels,
    normalize,
    signal_id_for,
)


def trader(**extra: object) -> Trader:
    return Trader.model_validate({"user_id": "u", "name": "t", "symbols": ["btcusdt"], "signal_code": "close[-1] > 0", **extra})


def test_trader_normalises_symbols_and_deduplicates() -> None:
    assert trader(symbols=["btcusdt", "BTCUSDT", " ethusdt "]).symbols == ["BTCUSDT", "ETHUSDT"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("symbols", ["BTC-USDT"], "not a Binance symbol"),
        ("symbols", [], "at least one symbol"),
        ("timeframes", ["7m"], "not a Binance interval"),
        ("check_interval", 59, "greater than or equal to 60"),
        ("signal_code", "x" * (10 * 1024 + 1), "10 KB"),
        ("signal_code", "   ", "empty"),
        ("stop_loss_pct", Decimal("0"), "percentage"),
    ],
)
def test_trader_rejects_bad_fields(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        trader(**{field: value})


def test_signal_id_is_deterministic_per_candle() -> None:
    data = {"trader_id": "t1", "user_id": "u", "symbol": "BTCUSDT", "timeframe": "1m", "candle_time": 60_000}
    first, second = Signal.model_validate(data), Signal.model_validate(data)
    assert first.id == second.id == signal_id_for("t1", "BTCUSDT", "1m", 60_000)
    assert Signal.model_validate({**data, "candle_time": 120_000}).id != first.id


@pytest.mark.parametrize(
    ("side", "stop_loss", "take_profit", "ok"),
    [
        (PositionSide.LONG, "90", "110", True),
        (PositionSide.LONG, "110", None, False),
        (PositionSide.LONG, None, "90", False),
        (PositionSide.SHORT, "110", "90", True),
        (PositionSide.SHORT, "90", None, False),
        (PositionSide.SHORT, None, "110", False),
        (PositionSide.LONG, "100", None, False),
    ],
)
def test_protective_levels_on_the_right_side(side: PositionSide, stop_loss: str | None, take_profit: str | None, ok: bool) -> None:
    data = {
        "user_id": "u",
        "symbol": "BTCUSDT",
        "side": side,
        "entry_price": Decimal("100"),
        "size": Decimal("1"),
        "stop_loss": Decimal(stop_loss) if stop_loss else None,
        "take_profit": Decimal(take_profit) if take_profit else None,
    }
    if ok:
        Position.model_validate(data)
    else:
        with pytest.raises(ValidationError, match="must be"):
            Position.model_validate(data)


def test_protective_levels_ignore_missing_entry() -> None:
    check_protective_levels(PositionSide.LONG, None, Decimal(1), Decimal(2))


def test_position_size_must_be_positive() -> None:
    with pytest.raises(ValidationError, match="greater than zero"):
        Position.model_validate({"user_id": "u", "symbol": "BTCUSDT", "side": "LONG", "entry_price": 1, "size": 0})


def test_order_needs_exactly_one_amount_and_limit_price() -> None:
    base = {"user_id": "u", "client_order_id": "c1", "symbol": "BTCUSDT", "side": "BUY"}
    with pytest.raises(ValidationError, match="exactly one"):
        Order.model_validate({**base, "type": "MARKET"})
    with pytest.raises(ValidationError, match="needs a price"):
        Order.model_validate({**base, "type": "LIMIT", "quantity": "1"})
    order = Order.model_validate({**base, "type": "MARKET", "quote_quantity": "25.5"})
    assert order.quote_quantity == Decimal("25.5")


def test_fill_json_round_trip_is_exact() -> None:
    fill = Fill(price=Decimal("64000.01"), qty=Decimal("0.00015"), commission=Decimal("0.00000015"), commission_asset="BTC")
    assert Fill.from_json(fill.to_json()) == fill


def test_normalize_keeps_plain_notation() -> None:
    assert str(normalize(Decimal("1.500"))) == "1.5"
    assert str(normalize(Decimal("100.000"))) == "100"
    assert format(normalize(Decimal("0.00000001")), "f") == "0.00000001"
