"""Local exchange speaking Binance's Spot wire protocol over a seeded synthetic market or a CSV replay."""

from aitrader.exchange.auth import LOCAL_API_KEY, LOCAL_API_SECRET, secret_for
from aitrader.exchange.clock import ManualClock, MarketClock, ReplayClock, ScaledClock
from aitrader.exchange.faults import Faults
from aitrader.exchange.market import Candle, MarketData, SyntheticMarket
from aitrader.exchange.replay import ReplayMarket
from aitrader.exchange.replay_csv import ReplayFileError, load_replay
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
    "MarketData",
    "ReplayClock",
    "ReplayFileError",
    "ReplayMarket",
    "ScaledClock",
    "SymbolSpec",
    "SyntheticMarket",
    "benchmark_symbols",
    "load_replay",
    "main",
    "secret_for",
    "start_in_thread",
]
