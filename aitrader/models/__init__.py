"""The domain model: tables, enums and the small value types around them."""

from aitrader.models.columns import normalize, utcnow
from aitrader.models.entities import (
    MAX_SIGNAL_CODE_BYTES,
    MIN_CHECK_INTERVAL_S,
    Balance,
    Heartbeat,
    Order,
    Position,
    Signal,
    Trader,
    check_protective_levels,
    check_symbol,
    check_timeframe,
    new_id,
    signal_id_for,
)
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
from aitrader.models.fills import Fill

__all__ = [
    "MAX_SIGNAL_CODE_BYTES",
    "MIN_CHECK_INTERVAL_S",
    "Balance",
    "Fill",
    "Heartbeat",
    "Order",
    "OrderSide",
    "OrderStatus",
    "OrderType",
    "Position",
    "PositionSide",
    "PositionStatus",
    "Signal",
    "SignalStatus",
    "SignalType",
    "Trader",
    "TraderStatus",
    "TradingMode",
    "check_protective_levels",
    "check_symbol",
    "check_timeframe",
    "new_id",
    "normalize",
    "signal_id_for",
    "utcnow",
]
