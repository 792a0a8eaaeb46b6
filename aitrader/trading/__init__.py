"""The trading core: symbol rules, the Broker protocol, paper and live brokers, sizing and errors."""

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
