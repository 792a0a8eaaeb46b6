"""The trading core: symbol rules, the Broker protocol, paper and live brokers, sizing and errors.

`LiveBroker` and `binance_client` load python-binance (and aiohttp) on first use: only live mode
needs them, and every engine process that imports this package would otherwise pay for them.
"""

from typing import TYPE_CHECKING, Any

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
from aitrader.trading.paper import PaperBroker
from aitrader.trading.rules import SymbolRules, rules_from_exchange_info

if TYPE_CHECKING:
    from aitrader.trading.live import LiveBroker, binance_client


def __getattr__(name: str) -> Any:
    if name in ("LiveBroker", "binance_client"):
        from aitrader.trading import live

        return getattr(live, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
