"""Market data: Binance wire decoding, candle ring buffers and the stream feed client.

The names load on first use. The feed client pulls in httpx and websockets (httpx imports its
command-line tool's click, rich and pygments too) and the buffers numpy: a process that only
needs the event types, or that holds a handle to a stream shard, pays for neither.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aitrader.lazy import lazy_names

if TYPE_CHECKING:
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

_HOMES = {
    **dict.fromkeys(("BackfillResult", "MarketBuffers", "MarketFrame", "TickerSnapshot"), "aitrader.market.buffers"),
    **dict.fromkeys(("FIELDS", "Applied", "CandleBuffer"), "aitrader.market.candles"),
    **dict.fromkeys(("BackfillError", "MalformedFrameError", "MarketDataError", "StreamLimitError"),
                    "aitrader.market.errors"),
    "DropOldestQueue": "aitrader.market.event_queue",
    **dict.fromkeys(("Backfilled", "CandleClosed", "Connected", "Disconnected", "FeedHealth", "GapDetected",
                     "MarketEvent", "PriceUpdated", "SubscriptionRejected"), "aitrader.market.events"),
    **dict.fromkeys(("FeedConfig", "MarketFeed"), "aitrader.market.feed"),
    **dict.fromkeys(("Backoff", "TokenBucket"), "aitrader.market.pacing"),
}

__all__ = [
    "FIELDS", "Applied", "Backfilled", "BackfillError", "BackfillResult", "Backoff", "CandleBuffer",
    "CandleClosed", "Connected", "Disconnected", "DropOldestQueue", "FeedConfig", "FeedHealth",
    "GapDetected", "MalformedFrameError", "MarketBuffers", "MarketDataError", "MarketEvent",
    "MarketFeed", "MarketFrame", "PriceUpdated", "StreamLimitError", "SubscriptionRejected",
    "TickerSnapshot", "TokenBucket",
]


__getattr__ = lazy_names(__name__, _HOMES, globals())


def __dir__() -> list[str]:
    return sorted(__all__)
