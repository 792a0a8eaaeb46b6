"""The trading core: symbol rules, the Broker protocol, paper and live brokers, sizing and errors.

The names load on first use (`aitrader.lazy`): importing any module of this package runs this
file, and the Monitor, which only needs `aitrader.trading.position_book`, would otherwise load the
paper broker's storage models (SQLModel, SQLAlchemy: about half a CPU-second) as it starts.
`LiveBroker` and `binance_client` load python-binance (and aiohttp), which only live mode needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aitrader.lazy import lazy_names

if TYPE_CHECKING:
    from aitrader.trading.broker import (
        ENTRY,
        EXIT,
        MANUAL,
        AssetBalance,
        Broker,
        OrderResult,
        SubmitOrder,
        client_order_id_for,
    )
    from aitrader.trading.circuit import CircuitBreaker, CircuitState
    from aitrader.trading.errors import (
        CircuitOpen,
        DuplicateOrder,
        FilterFailure,
        InsufficientBalance,
        OrderRejected,
        ReconciliationMismatch,
        RiskLimitReached,
        SizingError,
        TemporaryError,
        TradingError,
        UnknownOrder,
    )
    from aitrader.trading.live import LiveBroker, binance_client
    from aitrader.trading.paper import PaperBroker
    from aitrader.trading.rules import SymbolRules, rules_from_exchange_info

_HOMES = {
    **dict.fromkeys(
        ("ENTRY", "EXIT", "MANUAL", "AssetBalance", "Broker", "OrderResult", "SubmitOrder", "client_order_id_for"),
        "aitrader.trading.broker",
    ),
    **dict.fromkeys(("CircuitBreaker", "CircuitState"), "aitrader.trading.circuit"),
    **dict.fromkeys(
        (
            "CircuitOpen", "DuplicateOrder", "FilterFailure", "InsufficientBalance", "OrderRejected",
            "ReconciliationMismatch", "RiskLimitReached", "SizingError", "TemporaryError", "TradingError",
            "UnknownOrder",
        ),
        "aitrader.trading.errors",
    ),
    **dict.fromkeys(("LiveBroker", "binance_client"), "aitrader.trading.live"),
    "PaperBroker": "aitrader.trading.paper",
    **dict.fromkeys(("SymbolRules", "rules_from_exchange_info"), "aitrader.trading.rules"),
}

__getattr__ = lazy_names(__name__, _HOMES, globals())

__all__ = [
    "ENTRY",
    "EXIT",
    "MANUAL",
    "AssetBalance",
    "Broker",
    "CircuitBreaker",
    "CircuitOpen",
    "CircuitState",
    "DuplicateOrder",
    "FilterFailure",
    "InsufficientBalance",
    "LiveBroker",
    "OrderRejected",
    "OrderResult",
    "PaperBroker",
    "ReconciliationMismatch",
    "RiskLimitReached",
    "SizingError",
    "SubmitOrder",
    "SymbolRules",
    "TemporaryError",
    "TradingError",
    "UnknownOrder",
    "binance_client",
    "client_order_id_for",
    "rules_from_exchange_info",
]
