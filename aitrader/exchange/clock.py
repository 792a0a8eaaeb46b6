"""Market time for the local exchange: wall time compressed by a speed factor, or set by hand."""

from __future__ import annotations

import threading
import time
from typing import Protocol


class MarketClock(Protocol):
    """Source of the exchange's market time in epoch milliseconds."""

    def now_ms(self) -> int:
        """Current market time in epoch milliseconds."""
        ...


class ScaledClock:
    """``market = anchor + (wall - anchor) * speed``: a pure function of wall time.

    The anchor defaults to the start time floored to the minute. Because market time depends
    only on (anchor, speed, wall time), a restarted exchange given the same anchor continues
    the same timeline; at speed 1 market time is wall time whatever the anchor.
    """

    def __init__(self, speed: float = 1.0, anchor_ms: int | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive (got {speed}); use 1.0 for real time")
        self.speed = speed
        start_ms = int(time.time() * 1000)
        self.anchor_ms = anchor_ms if anchor_ms is not None else start_ms - start_ms % 60_000

    def now_ms(self) -> int:
        """Current market time in epoch milliseconds."""
        wall_ms = time.time() * 1000
        return self.anchor_ms + int((wall_ms - self.anchor_ms) * self.speed)


class ManualClock:
    """A clock tests move by hand; thread-safe."""

    def __init__(self, start_ms: int) -> None:
        self._now = start_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        """Current market time in epoch milliseconds."""
        with self._lock:
            return self._now

    def advance(self, ms: int) -> int:
        """Move market time forward by ``ms`` and return the new time."""
        with self._lock:
            self._now += ms
            return self._now

    def set(self, now_ms: int) -> None:
        """Jump to ``now_ms`` (may not go backwards)."""
        with self._lock:
            if now_ms < self._now:
                raise ValueError("market time cannot go backwards")
            self._now = now_ms


class ReplayClock:
    """Replay time: ``start_ms`` when the wall clock read ``wall_anchor_ms``, then ``speed`` times faster.

    ``wall_anchor_ms`` defaults to now; a restarted exchange given the same anchor resumes the
    replay where the wall clock says it should be.
    """

    def __init__(self, start_ms: int, speed: float = 1.0, wall_anchor_ms: int | None = None) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive (got {speed}); use 1.0 for real time")
        self.start_ms = start_ms
        self.speed = speed
        self.anchor_ms = wall_anchor_ms if wall_anchor_ms is not None else int(time.time() * 1000)

    def now_ms(self) -> int:
        """Current replay time in epoch milliseconds."""
        return self.start_ms + int((time.time() * 1000 - self.anchor_ms) * self.speed)
