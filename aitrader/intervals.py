"""Binance kline intervals and their lengths in milliseconds."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

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


_WEEK_OFFSET_MS = 4 * DAY_MS  # 1970-01-01 was a Thursday; Binance weeks open on Monday 00:00 UTC


def candle_open_time(ts_ms: int, interval: str) -> int:
    """Open time of the ``interval`` candle containing ``ts_ms`` (Monday weeks, calendar months)."""
    if interval == "1M":
        moment = datetime.fromtimestamp(ts_ms / 1000, UTC)
        return int(datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp() * 1000)
    length = interval_ms(interval)
    if interval == "1w":
        return ts_ms - (ts_ms - _WEEK_OFFSET_MS) % length
    return ts_ms - ts_ms % length


def next_candle_open(open_ms: int, interval: str) -> int:
    """Open time of the candle after the one opening at ``open_ms``."""
    if interval == "1M":
        moment = datetime.fromtimestamp(open_ms / 1000, UTC)
        return open_ms + calendar.monthrange(moment.year, moment.month)[1] * DAY_MS
    return open_ms + interval_ms(interval)


def prev_candle_open(open_ms: int, interval: str) -> int:
    """Open time of the candle before the one opening at ``open_ms``."""
    if interval == "1M":
        return candle_open_time(open_ms - 1, interval)
    return open_ms - interval_ms(interval)
