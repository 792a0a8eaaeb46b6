"""Events the market feed emits (past tense, frozen) and its health snapshot."""

from __future__ import annotations

from decimal import Decimal

from msgspec import Struct


class Connected(Struct, frozen=True):
    """The stream connection is open and subscribed to ``streams`` streams."""

    url: str
    streams: int


class Disconnected(Struct, frozen=True):
    """The stream connection ended; the feed reconnects unless it was stopped."""

    reason: str


class GapDetected(Struct, frozen=True):
    """Closed candles from ``from_open_time`` to ``to_open_time`` (inclusive open times) are missing."""

    symbol: str
    interval: str
    from_open_time: int
    to_open_time: int


class Backfilled(Struct, frozen=True):
    """REST klines were merged into a buffer; ``candles`` of them were new."""

    symbol: str
    interval: str
    candles: int


class CandleClosed(Struct, frozen=True):
    """A candle closed and is stored in the buffer."""

    symbol: str
    interval: str
    open_time: int
    close_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


class PriceUpdated(Struct, frozen=True):
    """Latest traded price of ``symbol`` (coalesced: at most one per symbol per flush)."""

    symbol: str
    price: Decimal
    event_time: int


class SubscriptionRejected(Struct, frozen=True):
    """The exchange answered a SUBSCRIBE/UNSUBSCRIBE request with an error."""

    request_id: int | str | None
    code: int
    message: str


MarketEvent = Connected | Disconnected | GapDetected | Backfilled | CandleClosed | PriceUpdated | SubscriptionRejected


class FeedHealth(Struct, frozen=True):
    """Small health snapshot of a market feed."""

    connected: bool
    reconnects: int
    gaps: int
    last_message_age_s: float | None
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    dropped_events: int
    streams: int
    stale_symbols: int
