"""Dispatching checks to filter workers: batches by filter, and one market frame per candle close.

When candles close, every trader watching them is queued at once.  Evaluating a filter costs
the same for one trader as for all traders sharing it (a filter runs over every symbol of a
frame at once), so the scheduler sends each worker one batch per dispatch and keeps the traders
of one filter together: `plan_batches`.  The frames those batches read are requested from the
shards once per candle close and shared by reference: `FrameRefs`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from aitrader.scheduling import CheckTrader

Ref = TypeVar("Ref")

#: A frame reference is reused for at most this long, even if no candle close was seen
#: (a reconnect backfills candles without a close notice).
FRAME_MAX_AGE_S = 5.0


def plan_batches(checks: Sequence[CheckTrader], workers: int, max_batch: int) -> list[list[CheckTrader]]:
    """Split ``checks`` into at most ``workers`` batches (more only past ``max_batch`` each).

    Traders with the same filter stay in one batch (their filter is evaluated once there);
    a filter with more than ``max_batch`` traders is split into chunks.  Chunks go, largest
    first, to the batch with the fewest checks so far.  Order within a filter is kept.
    """
    if workers < 1 or max_batch < 1:
        raise ValueError(f"need at least one worker and a batch size >= 1, got {workers} and {max_batch}")
    by_filter: dict[str, list[CheckTrader]] = {}
    for check in checks:
        by_filter.setdefault(check.code_hash, []).append(check)
    chunks = [
        group[i : i + max_batch] for group in by_filter.values() for i in range(0, len(group), max_batch)
    ]
    chunks.sort(key=len, reverse=True)
    batches: list[list[CheckTrader]] = [[] for _ in range(workers)]
    for chunk in chunks:
        open_batches = [b for b in batches if len(b) + len(chunk) <= max_batch] or batches
        target = min(open_batches, key=len)
        if len(target) + len(chunk) > max_batch:
            target = []
            batches.append(target)
        target.extend(chunk)
    return [batch for batch in batches if batch]


class FrameRefs(Generic[Ref]):
    """References to shard frames, one per (shard, interval) and candle-close version.

    ``request(shard, interval)`` starts a fetch (for Ray, ``shard.frame.remote(interval)``) and
    returns its reference without waiting; every batch of the same version reuses it.
    """

    def __init__(
        self,
        request: Callable[[int, str], Ref],
        max_age_s: float = FRAME_MAX_AGE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._request = request
        self._max_age_s = max_age_s
        self._clock = clock
        self._refs: dict[tuple[int, str], tuple[int, float, Ref]] = {}
        self.requests = 0
        self.reuses = 0

    def get(self, shard: int, interval: str, version: int) -> Ref:
        """The frame of ``shard`` and ``interval`` as of candle-close ``version``."""
        now = self._clock()
        cached = self._refs.get((shard, interval))
        if cached is not None and cached[0] == version and now - cached[1] < self._max_age_s:
            self.reuses += 1
            return cached[2]
        ref = self._request(shard, interval)
        self.requests += 1
        self._refs[(shard, interval)] = (version, now, ref)
        return ref

    def forget(self, shard: int, interval: str) -> None:
        """Drop a reference whose fetch failed, so the next batch asks the shard again."""
        self._refs.pop((shard, interval), None)

    def __len__(self) -> int:
        return len(self._refs)
