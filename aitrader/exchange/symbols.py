"""Symbols the local exchange lists: price levels, tick/step sizes and Binance filters."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class SymbolSpec:
    """One spot pair: trading rules plus the parameters of its synthetic price path."""

    symbol: str
    base_asset: str
    quote_asset: str
    start_price: float  # price level the synthetic path mean-reverts to
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    daily_vol: float  # standard deviation of daily log returns
    market_beta: float  # correlation with the common market factor, 0..1
    quote_volume_per_minute: float  # typical USDT volume traded per minute

    @property
    def min_price(self) -> Decimal:
        """Lowest price the PRICE_FILTER accepts (one tick)."""
        return self.tick_size

    @property
    def max_price(self) -> Decimal:
        """Highest price the PRICE_FILTER accepts."""
        return Decimal("1000000") if self.start_price > 100 else Decimal("100000")

    def filters(self) -> list[dict[str, object]]:
        """The PRICE_FILTER, LOT_SIZE and NOTIONAL filters as exchangeInfo lists them."""
        return [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": fmt8(self.min_price),
                "maxPrice": fmt8(self.max_price),
                "tickSize": fmt8(self.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": fmt8(self.min_qty),
                "maxQty": fmt8(self.max_qty),
                "stepSize": fmt8(self.step_size),
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": fmt8(self.min_notional),
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ]


def fmt8(value: Decimal) -> str:
    """Format a Decimal with Binance's 8 decimal places."""
    return f"{value:.8f}"


def _spec(symbol: str, price: float, tick: str, step: str, vol: float, beta: float, qvol: float) -> SymbolSpec:
    base = symbol.removesuffix("USDT")
    return SymbolSpec(
        symbol=symbol,
        base_asset=base,
        quote_asset="USDT",
        start_price=price,
        tick_size=Decimal(tick),
        step_size=Decimal(step),
        min_qty=Decimal(step),
        max_qty=Decimal("9000") if price > 1000 else Decimal("9000000"),
        min_notional=Decimal("5"),
        daily_vol=vol,
        market_beta=beta,
        quote_volume_per_minute=qvol,
    )


#: Ten liquid USDT pairs at realistic price levels and Binance-like trading rules.
DEFAULT_SYMBOLS: tuple[SymbolSpec, ...] = (
    _spec("BTCUSDT", 65000.0, "0.01", "0.00001", 0.028, 0.85, 900_000),
    _spec("ETHUSDT", 3200.0, "0.01", "0.0001", 0.036, 0.80, 450_000),
    _spec("BNBUSDT", 580.0, "0.01", "0.001", 0.032, 0.70, 60_000),
    _spec("SOLUSDT", 150.0, "0.01", "0.001", 0.048, 0.75, 200_000),
    _spec("XRPUSDT", 0.55, "0.0001", "0.1", 0.045, 0.70, 120_000),
    _spec("ADAUSDT", 0.45, "0.0001", "0.1", 0.047, 0.72, 40_000),
    _spec("DOGEUSDT", 0.15, "0.00001", "1", 0.055, 0.70, 90_000),
    _spec("AVAXUSDT", 35.0, "0.01", "0.01", 0.052, 0.74, 30_000),
    _spec("LINKUSDT", 15.0, "0.001", "0.01", 0.050, 0.73, 25_000),
    _spec("DOTUSDT", 7.0, "0.001", "0.01", 0.049, 0.72, 20_000),
    _spec("LTCUSDT", 80.0, "0.01", "0.001", 0.040, 0.72, 20_000),
    _spec("TRXUSDT", 0.12, "0.0001", "0.1", 0.030, 0.55, 15_000),
)

_DEFAULT_BY_NAME = {spec.symbol: spec for spec in DEFAULT_SYMBOLS}


def generated_spec(symbol: str) -> SymbolSpec:
    """Trading rules for any other ``<BASE>USDT`` name, with a price level derived from its hash."""
    if not symbol.endswith("USDT") or len(symbol) < 5 or not symbol.isalnum() or not symbol.isupper():
        raise ValueError(f"symbol {symbol!r} must be upper-case alphanumerics ending in USDT, e.g. SYM001USDT")
    digest = int.from_bytes(hashlib.sha256(symbol.encode()).digest()[:8], "big")
    price = 10 ** ((digest % 10_000) / 10_000 * 6 - 2)  # 0.01 .. 10,000
    tick_exp = math.floor(math.log10(price)) - 4
    step_exp = min(0, max(-5, -math.floor(math.log10(price)) - 1))
    vol = 0.03 + (digest >> 20) % 300 / 10_000
    return _spec(
        symbol, price, str(Decimal(10) ** tick_exp), str(Decimal(10) ** step_exp), vol, 0.7, 10_000
    )


def resolve_symbols(names: list[str] | tuple[str, ...] | None = None) -> tuple[SymbolSpec, ...]:
    """Specs for the given symbol names (defaults where known, generated otherwise); all defaults if None."""
    if not names:
        return DEFAULT_SYMBOLS
    return tuple(_DEFAULT_BY_NAME.get(n.upper()) or generated_spec(n.upper()) for n in names)


def benchmark_symbols(count: int) -> list[str]:
    """``count`` generated symbol names ``SYM001USDT``, ``SYM002USDT``, ... for load tests."""
    return [f"SYM{i:03d}USDT" for i in range(1, count + 1)]
