"""Local exchange speaking Binance's Spot wire protocol over a seeded synthetic market."""

from aitrader.exchange.auth import LOCAL_API_KEY, LOCAL_API_SECRET, secret_for
from aitrader.exchange.clock import ManualClock, MarketClock, ScaledClock
from aitrader.exchange.faults import Faults
from aitrader.exchange.market import Candle, SyntheticMarket
from aitrader.exchange.server import ExchangeConfig, ExchangeThread, LocalExchange, main, start_in_thread
from aitrader.exchange.symbols import DEFAULT_SYMBOLS, SymbolSpec, benchmark_symbols

__all__ = [
    "DEFAULT_SYMBOLS",
    "LOCAL_API_KEY",
    "LOCAL_API_SECRET",
    "Candle",
    "ExchangeConfig",
    "ExchangeThread",
    "Faults",
    "LocalExchange",
    "ManualClock",
    "MarketClock",
    "ScaledClock",
    "SymbolSpec",
    "SyntheticMarket",
    "benchmark_symbols",
    "main",
    "secret_for",
    "start_in_thread",
]
