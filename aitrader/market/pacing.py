"""Reconnect backoff and the subscribe-message token bucket, both with injectable clock/random."""

from __future__ import annotations

import random as _random
import time
from collections.abc import Callable

Clock = Callable[[], float]


class Backoff:
    """Exponential backoff with jitter: 0.5 s doubling to a 30 s cap, reset after a healthy minute.

    Each delay is drawn uniformly from ``[step * (1 - jitter), step]`` where ``step`` doubles per
    consecutive failure; a connection that stayed up ``healthy_after_s`` resets the schedule.
    """

    def __init__(
        self,
        base_s: float = 0.5,
        cap_s: float = 30.0,
        jitter: float = 0.5,
        healthy_after_s: float = 60.0,
        random: Callable[[], float] = _random.random,
        clock: Clock = time.monotonic,
    ) -> None:
        if not 0.0 <= jitter <= 1.0:
            raise ValueError(f"jitter must be between 0 and 1, got {jitter}")
        self.base_s = base_s
        self.cap_s = cap_s
        self.jitter = jitter
        self.healthy_after_s = healthy_after_s
        self._random = random
        self._clock = clock
        self._failures = 0
        self._connected_at: float | None = None

    @property
    def failures(self) -> int:
        """Consecutive failed or short-lived connections so far."""
        return self._failures

    def connected(self) -> None:
        """Record that a connection just came up."""
        self._connected_at = self._clock()

    def next_delay(self) -> float:
        """Seconds to wait before the next connection attempt."""
        if self._connected_at is not None and self._clock() - self._connected_at >= self.healthy_after_s:
            self._failures = 0
        self._connected_at = None
        step = min(self.cap_s, self.base_s * 2.0 ** min(self._failures, 62))
        self._failures += 1
        return step * (1.0 - self.jitter * self._random())

    def reset(self) -> None:
        """Start the schedule over."""
        self._failures = 0
        self._connected_at = None


_EPSILON = 1e-9  # float refills that should make a whole token sometimes land a hair below it


class TokenBucket:
    """At most ``rate`` messages per second with bursts of ``capacity``."""

    def __init__(self, rate: float, capacity: float, clock: Clock = time.monotonic) -> None:
        if rate <= 0 or capacity < 1:
            raise ValueError(f"rate must be positive and capacity at least 1, got {rate}, {capacity}")
        self.rate = rate
        self.capacity = capacity
        self._clock = clock
        self._tokens = capacity
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def try_acquire(self) -> bool:
        """Take one token if one is available now."""
        self._refill()
        if self._tokens >= 1.0 - _EPSILON:
            self._tokens = max(0.0, self._tokens - 1.0)
            return True
        return False

    def wait_time(self) -> float:
        """Seconds until one token is available (0 when one is available now)."""
        self._refill()
        return 0.0 if self._tokens >= 1.0 - _EPSILON else (1.0 - self._tokens) / self.rate
