"""Market-data errors: bad data fails fast, with a message that says what to do.

``MarketDataError``
 ├── ``MalformedFrameError``   a stream frame or REST body that does not match Binance's format
 ├── ``StreamLimitError``      more streams than one connection may carry
 └── ``BackfillError``         REST klines could not be fetched to fill the buffers
"""

from __future__ import annotations


class MarketDataError(Exception):
    """Base class for every market-data failure."""


class MalformedFrameError(MarketDataError):
    """A frame or body that does not match the documented Binance format; never patched over."""


class StreamLimitError(MarketDataError):
    """A subscription that would exceed the streams allowed on one connection."""


class BackfillError(MarketDataError):
    """REST klines for a backfill could not be fetched or were rejected by the exchange."""
