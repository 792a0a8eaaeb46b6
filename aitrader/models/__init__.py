"""The domain model: tables, enums and the small value types around them.

The names load on first use: the enums and `Fill` are plain Python, while the tables pull in
SQLModel and SQLAlchemy (about half a CPU-second to import). An actor that only needs a status
enum, or that merely holds a handle to an actor importing this package, does not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aitrader.lazy import lazy_names

if TYPE_CHECKING:
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

_HOMES = {
    **dict.fromkeys(("normalize", "utcnow"), "aitrader.models.columns"),
    **dict.fromkeys(
        (
            "MAX_SIGNAL_CODE_BYTES", "MIN_CHECK_INTERVAL_S", "Balance", "Heartbeat", "Order", "Position", "Signal",
            "Trader", "check_protective_levels", "check_symbol", "check_timeframe", "new_id", "signal_id_for",
        ),
        "aitrader.models.entities",
    ),
    **dict.fromkeys(
        (
            "OrderSide", "OrderStatus", "OrderType", "PositionSide", "PositionStatus", "SignalStatus", "SignalType",
            "TraderStatus", "TradingMode",
        ),
        "aitrader.models.enums",
    ),
    "Fill": "aitrader.models.fills",
}

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


__getattr__ = lazy_names(__name__, _HOMES, globals())


def __dir__() -> list[str]:
    return sorted(__all__)
