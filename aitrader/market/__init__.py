"""Market data: Binance wire decoding, candle ring buffers and the stream feed client."""

from aitrader.market.buffers import BackfillResult, MarketBuffers, MarketFrame, TickerSnapshot
from aitrader.market.candles import FIELDS, Applied, CandleBuffer
from aitrader.market.errors import BackfillError, MalformedFrameError, MarketDataError, StreamLimitError
from aitrader.market.event_queue import DropOldestQueue
from aitrader.market.events import (
    Backfilled,
    CandleClosed,
    Connected,
    Disconnected,
    FeedHealth,
    GapDetected,
    MarketEvent,
    PriceUpdated,
    SubscriptionRejected,
)
from aitrader.market.feed import FeedConfig, MarketFeed
from aitrader.market.pacing import Backoff, TokenBucket

__all__ = [
    "FIELDS", "Applied", "Backfilled", "BackfillError", "BackfillResult", "Backoff", "CandleBuffer",
    "CandleClosed", "Connected", "Disconnected", "DropOldestQueue", "FeedConfig", "FeedHealth",
    "GapDetected", "MalformedFrameError", "MarketBuffers", "MarketDataError", "MarketEvent",
    "MarketFeed", "MarketFrame", "PriceUpdated", "StreamLimitError", "SubscriptionRejected",
    "TickerSnapshot", "TokenBucket",
]
