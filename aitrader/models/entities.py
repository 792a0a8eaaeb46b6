"""The domain tables: Trader, Signal, Position, Order (with fills), Balance, Heartbeat.

Table models skip validation in ``__init__`` (SQLModel's rule), so build them from user input
with ``Model.model_validate({...})``; the storage layer re-validates everything it writes.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any, Self

from pydantic import field_validator, model_validator
from sqlalchemy import BigInteger, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from aitrader.intervals import INTERVALS
from aitrader.models.columns import DecimalType, JSONType, UTCDateTime, enum_type, utcnow
from aitrader.models.enums import (
    OrderSide,
    OrderStatus,
    OrderType,
    PositionSide,
    PositionStatus,
    SignalStatus,
    SignalType,
    TraderStatus,
    TradingMode,
)

MAX_SIGNAL_CODE_BYTES = 10 * 1024
MIN_CHECK_INTERVAL_S = 60
SYMBOL_PATTERN = re.compile(r"^[A-Z0-9]{2,20}$")
_SIGNAL_NAMESPACE = uuid.UUID("6f1c1e0e-8a59-4f7e-9d8b-3a1f2f6f9a10")


def new_id() -> str:
    return uuid.uuid4().hex


def signal_id_for(trader_id: str, symbol: str, timeframe: str, candle_time: int) -> str:
    """The one id a signal for (trader, symbol, candle) can have: retries cannot duplicate it."""
    return uuid.uuid5(_SIGNAL_NAMESPACE, f"{trader_id}|{symbol}|{timeframe}|{candle_time}").hex


def _money(nullable: bool = True) -> Any:
    return Field(default=None if nullable else Decimal(0), sa_type=DecimalType, nullable=nullable)


def _created() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def check_symbol(symbol: str) -> str:
    symbol = symbol.strip().upper()
    if not SYMBOL_PATTERN.match(symbol):
        raise ValueError(f"{symbol!r} is not a Binance symbol; use upper-case letters and digits, e.g. BTCUSDT")
    return symbol


def check_timeframe(timeframe: str) -> str:
    if timeframe not in INTERVALS:
        raise ValueError(f"{timeframe!r} is not a Binance interval; use one of {', '.join(INTERVALS)}")
    return timeframe


def check_protective_levels(
    side: PositionSide, entry: Decimal | None, stop_loss: Decimal | None, take_profit: Decimal | None
) -> None:
    """Stop-loss below and take-profit above a LONG's entry; the other way round for a SHORT."""
    if entry is None:
        return
    long = side is PositionSide.LONG
    if stop_loss is not None and (stop_loss >= entry if long else stop_loss <= entry):
        where = "below" if long else "above"
        raise ValueError(f"stop_loss {stop_loss} must be {where} the entry price {entry} for a {side} position")
    if take_profit is not None and (take_profit <= entry if long else take_profit >= entry):
        where = "above" if long else "below"
        raise ValueError(f"take_profit {take_profit} must be {where} the entry price {entry} for a {side} position")


class Trader(SQLModel, table=True):
    """A named filter over a set of symbols and timeframes, checked on a schedule."""

    __tablename__ = "traders"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_traders_user_name"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    user_id: str = Field(index=True, max_length=64)
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=2000)
    symbols: list[str] = Field(default_factory=list, sa_type=JSONType)
    timeframes: list[str] = Field(default_factory=lambda: ["1m"], sa_type=JSONType)
    check_interval: int = Field(default=MIN_CHECK_INTERVAL_S, ge=MIN_CHECK_INTERVAL_S)
    signal_code: str = Field(sa_type=Text)
    reanalysis_interval: int | None = Field(default=None, ge=60)
    status: TraderStatus = Field(default=TraderStatus.ACTIVE, sa_type=enum_type(TraderStatus), index=True)
    auto_trade: bool = False
    stop_loss_pct: Decimal | None = _money()
    take_profit_pct: Decimal | None = _money()
    trailing_stop_pct: Decimal | None = _money()
    created_at: datetime = _created()
    updated_at: datetime = _created()

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("a trader needs at least one symbol, e.g. ['BTCUSDT']")
        return list(dict.fromkeys(check_symbol(s) for s in value))

    @field_validator("timeframes")
    @classmethod
    def _timeframes(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("a trader needs at least one timeframe, e.g. ['1m']")
        return list(dict.fromkeys(check_timeframe(t) for t in value))

    @field_validator("signal_code")
    @classmethod
    def _code(cls, value: str) -> str:
        size = len(value.encode())
        if size > MAX_SIGNAL_CODE_BYTES:
            raise ValueError(f"signal_code is {size} bytes; keep it under {MAX_SIGNAL_CODE_BYTES} (10 KB)")
        if not value.strip():
            raise ValueError("signal_code is empty; write a filter such as: rsi(close, 14) < 30")
        return value

    @field_validator("stop_loss_pct", "take_profit_pct", "trailing_stop_pct")
    @classmethod
    def _pct(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and not (Decimal(0) < value < Decimal(100)):
            raise ValueError(f"{value} is not a percentage between 0 and 100 (exclusive)")
        return value


class Signal(SQLModel, table=True):
    """A filter match: one per (trader, symbol, timeframe, candle)."""

    __tablename__ = "signals"
    __table_args__ = (
        UniqueConstraint("trader_id", "symbol", "timeframe", "candle_time", name="uq_signals_candle"),
        Index("ix_signals_trader_created", "trader_id", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=32)
    trader_id: str = Field(foreign_key="traders.id", ondelete="CASCADE", max_length=32)
    user_id: str = Field(index=True, max_length=64)
    symbol: str = Field(index=True, max_length=20)
    timeframe: str = Field(max_length=4)
    candle_time: int = Field(sa_type=BigInteger)
    signal_type: SignalType = Field(default=SignalType.ENTRY, sa_type=enum_type(SignalType))
    status: SignalStatus = Field(default=SignalStatus.PENDING, sa_type=enum_type(SignalStatus), index=True)
    trigger_price: Decimal | None = _money()
    target_price: Decimal | None = _money()
    stop_loss: Decimal | None = _money()
    confidence: float | None = Field(default=None, ge=0, le=100)
    reasoning: str | None = Field(default=None, sa_type=Text)
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column("metadata", JSONType))
    created_at: datetime = _created()
    updated_at: datetime = _created()

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, value: str) -> str:
        return check_symbol(value)

    @field_validator("timeframe")
    @classmethod
    def _timeframe(cls, value: str) -> str:
        return check_timeframe(value)

    @model_validator(mode="before")
    @classmethod
    def _deterministic_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("id"):
            keys = ("trader_id", "symbol", "timeframe", "candle_time")
            if all(data.get(k) is not None for k in keys):
                data = {**data, "id": signal_id_for(*(data[k] for k in keys))}
        return data


class Position(SQLModel, table=True):
    """An open or closed exposure in one symbol, with its protective levels and P&L."""

    __tablename__ = "positions"
    __table_args__ = (Index("ix_positions_user_status", "user_id", "status"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    user_id: str = Field(max_length=64)
    trader_id: str | None = Field(default=None, foreign_key="traders.id", ondelete="SET NULL", max_length=32)
    signal_id: str | None = Field(default=None, foreign_key="signals.id", ondelete="SET NULL", max_length=32)
    symbol: str = Field(index=True, max_length=20)
    side: PositionSide = Field(sa_type=enum_type(PositionSide))
    mode: TradingMode = Field(default=TradingMode.PAPER, sa_type=enum_type(TradingMode))
    entry_price: Decimal = _money(nullable=False)
    current_price: Decimal | None = _money()
    size: Decimal = _money(nullable=False)
    stop_loss: Decimal | None = _money()
    take_profit: Decimal | None = _money()
    trailing_stop_pct: Decimal | None = _money()
    best_price: Decimal | None = _money()
    pnl: Decimal = _money(nullable=False)
    pnl_pct: Decimal = _money(nullable=False)
    fees: Decimal = _money(nullable=False)
    status: PositionStatus = Field(default=PositionStatus.OPEN, sa_type=enum_type(PositionStatus))
    exit_price: Decimal | None = _money()
    close_reason: str | None = Field(default=None, max_length=64)
    entry_order_id: str | None = Field(default=None, max_length=32)
    exit_order_id: str | None = Field(default=None, max_length=32)
    created_at: datetime = _created()
    updated_at: datetime = _created()
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, value: str) -> str:
        return check_symbol(value)

    @field_validator("size", "entry_price")
    @classmethod
    def _positive(cls, value: Decimal) -> Decimal:
        if value <= 0:
            raise ValueError(f"must be greater than zero, got {value}")
        return value

    @model_validator(mode="after")
    def _levels(self) -> Self:
        check_protective_levels(self.side, self.entry_price, self.stop_loss, self.take_profit)
        return self


class Order(SQLModel, table=True):
    """An order sent (or about to be sent) to a broker, stored before it is sent."""

    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_user_created", "user_id", "created_at"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    user_id: str = Field(max_length=64)
    client_order_id: str = Field(unique=True, max_length=36)
    exchange_order_id: str | None = Field(default=None, max_length=32)
    symbol: str = Field(max_length=20)
    side: OrderSide = Field(sa_type=enum_type(OrderSide))
    type: OrderType = Field(sa_type=enum_type(OrderType))
    mode: TradingMode = Field(default=TradingMode.PAPER, sa_type=enum_type(TradingMode))
    quantity: Decimal | None = _money()
    quote_quantity: Decimal | None = _money()
    price: Decimal | None = _money()
    status: OrderStatus = Field(default=OrderStatus.PENDING_SUBMIT, sa_type=enum_type(OrderStatus), index=True)
    executed_qty: Decimal = _money(nullable=False)
    cumulative_quote_qty: Decimal = _money(nullable=False)
    fills: list[dict[str, str]] = Field(default_factory=list, sa_type=JSONType)
    position_id: str | None = Field(default=None, index=True, max_length=32)
    signal_id: str | None = Field(default=None, max_length=32)
    purpose: str = Field(default="manual", max_length=16)
    error: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = _created()
    updated_at: datetime = _created()

    @field_validator("symbol")
    @classmethod
    def _symbol(cls, value: str) -> str:
        return check_symbol(value)

    @model_validator(mode="after")
    def _amounts(self) -> Self:
        if (self.quantity is None) == (self.quote_quantity is None):
            raise ValueError("give exactly one of quantity or quote_quantity")
        for name in ("quantity", "quote_quantity", "price"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be greater than zero, got {value}")
        if self.type is OrderType.LIMIT and self.price is None:
            raise ValueError("a LIMIT order needs a price")
        return self


class Balance(SQLModel, table=True):
    """Free and locked amounts of one asset for one user."""

    __tablename__ = "balances"

    user_id: str = Field(primary_key=True, max_length=64)
    asset: str = Field(primary_key=True, max_length=16)
    free: Decimal = _money(nullable=False)
    locked: Decimal = _money(nullable=False)
    updated_at: datetime = _created()


class Heartbeat(SQLModel, table=True):
    """The last sign of life of one engine component."""

    __tablename__ = "heartbeats"

    component: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(default="", max_length=64)
    at: datetime = _created()
    info: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
