"""Statuses and sides, stored as their string values."""

from __future__ import annotations

from enum import StrEnum


class TraderStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


class SignalType(StrEnum):
    ENTRY = "entry"
    EXIT = "exit"
    SCALE = "scale"


class SignalStatus(StrEnum):
    PENDING = "pending"
    ANALYZING = "analyzing"
    EXECUTED = "executed"
    CANCELLED = "cancelled"


class PositionSide(StrEnum):
    LONG = "LONG"
    SHORT = "SHORT"

    @property
    def entry_order_side(self) -> OrderSide:
        return OrderSide.BUY if self is PositionSide.LONG else OrderSide.SELL

    @property
    def exit_order_side(self) -> OrderSide:
        return OrderSide.SELL if self is PositionSide.LONG else OrderSide.BUY


class PositionStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    STOPPED = "stopped"


class OrderSide(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


class OrderStatus(StrEnum):
    """Binance's order statuses, plus PENDING_SUBMIT for an order stored but not yet acknowledged."""

    PENDING_SUBMIT = "PENDING_SUBMIT"
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_final(self) -> bool:
        return self in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED)


class TradingMode(StrEnum):
    PAPER = "paper"
    LIVE = "live"
