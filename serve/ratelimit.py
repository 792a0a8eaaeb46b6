"""Per-key token buckets: 100 requests/min on data routes, 10/min on order routes by default."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

DATA = "data"
ORDERS = "orders"


@dataclass(frozen=True)
class RateLimits:
    """Requests per minute allowed per API key, by route class."""

    data_per_min: int = 100
    orders_per_min: int = 10

    def per_min(self, route_class: str) -> int:
        return self.orders_per_min if route_class == ORDERS else self.data_per_min


class TokenBucket:
    """``capacity`` tokens refilled evenly over a minute; a request takes one."""

    def __init__(self, per_min: int, now: float) -> None:
        self.capacity = float(per_min)
        self.rate = per_min / 60.0
        self.tokens = self.capacity
        self.stamp = now

    def take(self, now: float) -> float:
        """Take a token; return 0 on success, else the seconds until one is available."""
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimiter:
    """Token buckets per (key, route class), with an injectable clock."""

    def __init__(self, limits: RateLimits | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits or RateLimits()
        self._clock = clock
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    def check(self, key: str, route_class: str) -> int:
        """0 if the request may go ahead, else the whole seconds to put in ``Retry-After``."""
        now = self._clock()
        bucket = self._buckets.get((key, route_class))
        if bucket is None:
            bucket = self._buckets[(key, route_class)] = TokenBucket(self.limits.per_min(route_class), now)
        wait = bucket.take(now)
        return 0 if wait <= 0 else max(1, math.ceil(wait))
