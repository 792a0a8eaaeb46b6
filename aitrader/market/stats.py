"""Feed statistics: event-time latency percentiles and per-symbol staleness."""

from __future__ import annotations

import numpy as np


class LatencyWindow:
    """The last ``size`` latencies (ms) with p50/p99; ``record`` is O(1) and allocation-free."""

    __slots__ = ("_samples", "_index", "_count", "_size")

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._samples = [0.0] * size
        self._index = 0
        self._count = 0

    def record(self, latency_ms: float) -> None:
        """Add one sample, evicting the oldest when full."""
        index = self._index
        self._samples[index] = latency_ms
        self._index = index + 1 if index + 1 < self._size else 0
        if self._count < self._size:
            self._count += 1

    def __len__(self) -> int:
        return self._count

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0-100) of the window, or None when empty."""
        if not self._count:
            return None
        return float(np.percentile(np.asarray(self._samples[: self._count]), q))


class Staleness:
    """Time of the last message per symbol; a symbol is stale when silent for too long."""

    __slots__ = ("last_seen",)

    def __init__(self) -> None:
        self.last_seen: dict[str, float] = {}

    def track(self, symbol: str, now: float) -> None:
        """Start tracking ``symbol`` as if it had just been heard from."""
        self.last_seen.setdefault(symbol, now)

    def forget(self, symbol: str) -> None:
        """Stop tracking ``symbol``."""
        self.last_seen.pop(symbol, None)

    def age(self, symbol: str, now: float) -> float | None:
        """Seconds since the last message of ``symbol``, or None when untracked."""
        seen = self.last_seen.get(symbol)
        return None if seen is None else now - seen

    def stale(self, threshold_s: float, now: float) -> list[str]:
        """Symbols silent for more than ``threshold_s`` seconds."""
        return [symbol for symbol, seen in self.last_seen.items() if now - seen > threshold_s]
