"""Request and response schemas: what `/openapi.json` documents for every route.

Money and quantities are `Decimal` inside and strings on the wire; request bodies accept a
decimal as a string or a number and are validated strictly (unknown fields are refused).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator

#: `aitrader.models.MAX_SIGNAL_CODE_BYTES`, restated: importing it loads the table models (SQLAlchemy,
#: sqlmodel), which the API replica does not otherwise need to answer ``/health``. A unit test
#: keeps the two equal.
MAX_SIGNAL_CODE_BYTES = 10 * 1024


def _decimal_in(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("expected a decimal number, not a boolean")
    if isinstance(value, str | int | float):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a decimal number") from None
        if not number.is_finite():
            raise ValueError("the number must be finite")
        return number
    return value


def _text_in(value: Any) -> Any:
    if isinstance(value, Decimal | int | float) and not isinstance(value, bool):
        return str(value)
    return value


#: A decimal read from a string or number, written as a string.
Dec = Annotated[Decimal, BeforeValidator(_decimal_in), PlainSerializer(str, return_type=str, when_used="json")]
#: A strictly positive decimal, at most 10^15.
PosDec = Annotated[Dec, Field(gt=0, le=Decimal(10) ** 15)]
#: A numeric value kept as the engine sent it, as a string.
NumText = Annotated[str, BeforeValidator(_text_in)]
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
Symbol = Annotated[str, Field(min_length=2, max_length=20, pattern=r"^[A-Za-z0-9]+$")]


class Out(BaseModel):
    model_config = ConfigDict(extra="ignore", from_attributes=True)


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- engine -------------------------------------------------------------------------------
class Health(Out):
    status: Literal["healthy"] = "healthy"
    time: datetime


class Counts(Out):
    traders: int = 0
    active_traders: int = 0
    open_positions: int = 0
    signals: int = 0


class EngineMetrics(Out):
    signals_created: int = 0
    trades_executed: int = 0
    total_pnl: NumText = "0"
    avg_check_ms: float = 0.0
    stream_latency_ms: float = 0.0
    errors: int = 0


class Status(Out):
    version: str
    mode: Literal["paper", "live"]
    running: bool
    feed: Literal["binance", "local", "stale"]
    feed_note: str | None = None
    user_id: str
    location: Literal["local", "cloud"]
    connected_symbols: list[str] = []
    counts: Counts = Counts()
    metrics: EngineMetrics = EngineMetrics()
    equity: NumText | None = None
    ai_analysis: bool = False
    auto_trading: bool = False


class Market(Out):
    symbol: str
    price: NumText
    change24h: NumText = "0"
    volume24h: NumText = "0"
    sparkline: list[float] = []


class Markets(Out):
    markets: list[Market]
    timestamp: datetime


# ---- traders ------------------------------------------------------------------------------
Pct = Annotated[Dec, Field(gt=0, lt=100)]
Code = Annotated[str, Field(min_length=1, max_length=MAX_SIGNAL_CODE_BYTES)]
Name = Annotated[str, Field(min_length=1, max_length=100)]
Timeframe = Annotated[str, Field(min_length=2, max_length=4)]


class TraderCreate(In):
    name: Name
    description: str = Field(default="", max_length=2000)
    symbols: list[Symbol] = Field(min_length=1, max_length=2000)
    timeframes: list[Timeframe] = Field(default=["1m"], min_length=1, max_length=16)
    check_interval: int = Field(default=60, ge=60, le=7 * 86_400)
    signal_code: Code
    status: Literal["active", "inactive"] = "inactive"
    auto_trade: bool = False
    stop_loss_pct: Pct | None = None
    take_profit_pct: Pct | None = None
    trailing_stop_pct: Pct | None = None


class TraderUpdate(In):
    name: Name | None = None
    description: str | None = Field(default=None, max_length=2000)
    symbols: list[Symbol] | None = Field(default=None, min_length=1, max_length=2000)
    timeframes: list[Timeframe] | None = Field(default=None, min_length=1, max_length=16)
    check_interval: int | None = Field(default=None, ge=60, le=7 * 86_400)
    signal_code: Code | None = None
    status: Literal["active", "inactive"] | None = None
    auto_trade: bool | None = None
    stop_loss_pct: Pct | None = None
    take_profit_pct: Pct | None = None
    trailing_stop_pct: Pct | None = None


class TraderOut(Out):
    id: str
    name: str
    description: str = ""
    symbols: list[str]
    timeframes: list[str]
    check_interval: int
    signal_code: str
    status: str
    auto_trade: bool = False
    stop_loss_pct: Dec | None = None
    take_profit_pct: Dec | None = None
    trailing_stop_pct: Dec | None = None
    signal_count: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Traders(Out):
    traders: list[TraderOut]


class FilterCheck(In):
    signal_code: Code


class FilterVerdict(Out):
    valid: bool
    message: str | None = None
    line: int | None = None
    col: int | None = None
    conditions: list[str] = []


# ---- signals, positions, balances, orders -------------------------------------------------
class SignalOut(Out):
    id: str
    trader_id: str
    trader_name: str = ""
    symbol: str
    timeframe: str
    candle_time: int | None = None
    signal_type: str
    status: str
    trigger_price: Dec | None = None
    target_price: Dec | None = None
    stop_loss: Dec | None = None
    confidence: float | None = None
    reasoning: str | None = None
    conditions: list[str] = []
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Signals(Out):
    signals: list[SignalOut]


class PositionOut(Out):
    id: str
    trader_id: str | None = None
    symbol: str
    side: str
    mode: str | None = None
    size: Dec
    entry_price: Dec
    current_price: Dec | None = None
    stop_loss: Dec | None = None
    take_profit: Dec | None = None
    pnl: Dec = Decimal(0)
    pnl_pct: Dec = Decimal(0)
    fees: Dec = Decimal(0)
    status: str
    exit_price: Dec | None = None
    close_reason: str | None = None
    created_at: datetime | None = None
    closed_at: datetime | None = None


class Positions(Out):
    positions: list[PositionOut]


class ClosedPosition(Out):
    position: PositionOut


class BalanceLine(Out):
    asset: str
    free: Dec
    locked: Dec


class Balances(Out):
    balances: list[BalanceLine]
    equity: NumText | None = None


class FillOut(Out):
    price: Dec
    qty: Dec
    commission: Dec
    commission_asset: str


class OrderOut(Out):
    id: str
    client_order_id: str | None = None
    symbol: str
    side: str
    type: str
    mode: str | None = None
    status: str
    quantity: Dec | None = None
    quote_quantity: Dec | None = None
    price: Dec | None = None
    executed_qty: Dec = Decimal(0)
    cumulative_quote_qty: Dec = Decimal(0)
    position_id: str | None = None
    fills: list[FillOut] = []
    error: str | None = None
    created_at: datetime | None = None


class Orders(Out):
    orders: list[OrderOut]


class OrderRequest(In):
    """A manual order; give exactly one of ``quantity`` and ``quote_quantity``."""

    symbol: Symbol
    side: Literal["BUY", "SELL"]
    type: Literal["MARKET", "LIMIT"] = "MARKET"
    quantity: PosDec | None = None
    quote_quantity: PosDec | None = None
    price: PosDec | None = None
    stop_loss: PosDec | None = None
    take_profit: PosDec | None = None
    client_order_id: str | None = Field(
        default=None, min_length=1, max_length=36, pattern=r"^[A-Za-z0-9_-]+$",
        description="Your idempotency key: sending the same order again with it never places a second order.",
    )

    @model_validator(mode="after")
    def _amounts(self) -> OrderRequest:
        if (self.quantity is None) == (self.quote_quantity is None):
            raise ValueError("give exactly one of quantity or quote_quantity")
        if self.type == "LIMIT" and self.price is None:
            raise ValueError("a LIMIT order needs a price")
        if self.type == "MARKET" and self.price is not None:
            raise ValueError("a MARKET order takes no price; use type LIMIT to set one")
        return self
