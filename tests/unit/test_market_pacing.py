"""Backoff schedule, subscribe token bucket, drop-oldest event queue, latency window (no sleeping)."""

from __future__ import annotations

import pytest

from aitrader.market.event_queue import DropOldestQueue
from aitrader.market.pacing import Backoff, TokenBucket
from aitrader.market.stats import LatencyWindow, Staleness


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_from_half_a_second_to_a_30_second_cap() -> None:
    backoff = Backoff(random=lambda: 0.0, clock=FakeClock())

    delays = [backoff.next_delay() for _ in range(10)]

    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0]


def test_backoff_jitter_stays_between_half_and_full_step() -> None:
    low = Backoff(random=lambda: 0.999999, clock=FakeClock())
    mid = Backoff(random=lambda: 0.5, clock=FakeClock())

    assert [round(low.next_delay(), 3) for _ in range(3)] == [0.25, 0.5, 1.0]
    assert [mid.next_delay() for _ in range(3)] == [0.375, 0.75, 1.5]


def test_backoff_resets_after_a_healthy_minute_but_not_after_a_short_connection() -> None:
    clock = FakeClock()
    backoff = Backoff(random=lambda: 0.0, clock=clock)
    for _ in range(4):
        backoff.next_delay()

    backoff.connected()
    clock.now += 59.0
    short_lived = backoff.next_delay()
    backoff.connected()
    clock.now += 60.0
    after_healthy = backoff.next_delay()

    assert short_lived == 8.0
    assert after_healthy == 0.5


def test_backoff_rejects_jitter_outside_zero_to_one() -> None:
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter=1.5)


def test_token_bucket_allows_a_burst_then_paces_to_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=5, capacity=5, clock=clock)

    burst = [bucket.try_acquire() for _ in range(6)]
    wait = bucket.wait_time()
    clock.now += 0.2
    after_one_token = [bucket.try_acquire(), bucket.try_acquire()]

    assert burst == [True] * 5 + [False]
    assert wait == pytest.approx(0.2)
    assert after_one_token == [True, False]


def test_token_bucket_with_burst_of_one_never_exceeds_rate_plus_one_in_any_second() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=4, capacity=1, clock=clock)
    granted: list[float] = []

    for _ in range(400):  # 20 simulated seconds in 50 ms steps
        while bucket.try_acquire():
            granted.append(clock.now)
        clock.now += 0.05

    for start in granted:
        assert sum(1 for t in granted if start <= t < start + 1.0) <= 5  # Binance's per-second limit
    assert len(granted) == pytest.approx(1 + 4 * 20, abs=2)


def test_drop_oldest_queue_never_blocks_and_counts_drops() -> None:
    queue: DropOldestQueue[int] = DropOldestQueue(maxsize=3)

    for item in range(5):
        queue.put(item)

    assert queue.dropped == 2
    assert queue.drain() == [2, 3, 4]
    assert queue.get_nowait() is None


async def test_drop_oldest_queue_get_waits_for_an_item() -> None:
    queue: DropOldestQueue[str] = DropOldestQueue(maxsize=2)
    queue.put("CandleClosed")

    assert await queue.get() == "CandleClosed"
    assert len(queue) == 0


def test_latency_window_percentiles_over_the_last_samples() -> None:
    window = LatencyWindow(size=100)
    for value in range(1000):
        window.record(float(value))

    assert len(window) == 100
    assert window.percentile(50) == pytest.approx(949.5)
    assert window.percentile(99) == pytest.approx(998.01)
    assert LatencyWindow().percentile(50) is None


def test_staleness_lists_silent_symbols() -> None:
    staleness = Staleness()
    staleness.track("BTCUSDT", now=0.0)
    staleness.track("ETHUSDT", now=0.0)
    staleness.last_seen["ETHUSDT"] = 50.0

    assert staleness.stale(30.0, now=60.0) == ["BTCUSDT"]
    assert staleness.age("ETHUSDT", now=60.0) == 10.0
    assert staleness.age("DOGEUSDT", now=60.0) is None
