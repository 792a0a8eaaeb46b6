"""Binance kline intervals and their lengths in milliseconds."""

from __future__ import annotations

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

#: Every kline interval Binance's Spot API accepts, with its length in ms.
#: ``1M`` (one month) has no fixed length; 31 days is used as an upper bound where one is needed.
INTERVAL_MS: dict[str, int] = {
    "1s": 1_000,
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": HOUR_MS,
    "2h": 2 * HOUR_MS,
    "4h": 4 * HOUR_MS,
    "6h": 6 * HOUR_MS,
    "8h": 8 * HOUR_MS,
    "12h": 12 * HOUR_MS,
    "1d": DAY_MS,
    "3d": 3 * DAY_MS,
    "1w": 7 * DAY_MS,
    "1M": 31 * DAY_MS,
}

INTERVALS: tuple[str, ...] = tuple(INTERVAL_MS)


def interval_ms(interval: str) -> int:
    """Length of a kline interval in milliseconds; ``ValueError`` names the valid ones."""
    try:
        return INTERVAL_MS[interval]
    except KeyError:
        raise ValueError(
            f"unknown interval {interval!r}; use one of {', '.join(INTERVALS)}"
        ) from None


def candle_open_time(ts_ms: int, interval: str) -> int:
    """Open time of the candle of ``interval`` that contains ``ts_ms`` (fixed-length intervals)."""
    length = interval_ms(interval)
    return ts_ms - ts_ms % length
