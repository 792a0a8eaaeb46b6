"""Dispatch batching: traders of one filter stay together, workers get balanced batches, one frame
request per shard, interval and candle close; a notice of many closes queues one check per trader."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from aitrader.batching import FrameRefs, plan_batches
from aitrader.scheduling import CheckScheduler, CheckTrader, MarketClock, TraderPlan


def check(trader: int, code: int) -> CheckTrader:
    return CheckTrader(
        f"t{trader}", f"code {code}", f"hash-{code}", ("BTCUSDT",), ("1m",), "candle_close", 0.0
    )


def test_traders_of_one_filter_share_a_batch_and_workers_are_balanced() -> None:
    # Arrange: 100 traders over 5 filters, 20 each
    checks = [check(i, i % 5) for i in range(100)]
    # Act
    batches = plan_batches(checks, workers=2, max_batch=256)
    # Assert
    assert len(batches) == 2, "one batch per worker"
    assert sorted(len(b) for b in batches) == [40, 60]
    for code in range(5):
        holding = [b for b in batches if any(c.code_hash == f"hash-{code}" for c in b)]
        assert len(holding) == 1, f"filter {code} is evaluated in one batch only"
    assert Counter(c.trader_id for b in batches for c in b) == Counter(c.trader_id for c in checks)


def test_a_filter_with_more_traders_than_a_batch_holds_is_split() -> None:
    checks = [check(i, 0) for i in range(10)] + [check(100 + i, 1) for i in range(3)]
    batches = plan_batches(checks, workers=2, max_batch=4)
    assert all(len(b) <= 4 for b in batches)
    assert sum(len(b) for b in batches) == 13
    assert [c.trader_id for b in batches for c in b if c.code_hash == "hash-0"] == [
        f"t{i}" for i in range(10)
    ]


def test_few_checks_make_few_batches() -> None:
    assert plan_batches([check(1, 0)], workers=4, max_batch=32) == [[check(1, 0)]]
    assert plan_batches([], workers=4, max_batch=32) == []


def test_batch_planning_rejects_impossible_sizes() -> None:
    with pytest.raises(ValueError, match="worker"):
        plan_batches([check(1, 0)], workers=0, max_batch=32)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_frame_is_requested_once_per_candle_close_version() -> None:
    # Arrange
    asked: list[tuple[int, str]] = []
    clock = Clock()

    def request(shard: int, interval: str) -> str:
        asked.append((shard, interval))
        return f"ref-{len(asked)}"

    refs = FrameRefs(request, max_age_s=5.0, clock=clock)
    # Act / Assert: same version reuses, a new close or another interval asks again
    first = refs.get(0, "1m", version=1)
    assert refs.get(0, "1m", version=1) == first
    assert refs.get(0, "5m", version=1) != first
    assert refs.get(0, "1m", version=2) not in (first,)
    assert asked == [(0, "1m"), (0, "5m"), (0, "1m")]
    assert (refs.requests, refs.reuses) == (3, 1)


def test_old_or_failed_frames_are_requested_again() -> None:
    clock = Clock()
    refs = FrameRefs(lambda shard, interval: object(), max_age_s=5.0, clock=clock)
    first = refs.get(0, "1m", version=1)
    clock.now += 6.0  # a reconnect may have backfilled candles without a close notice
    second = refs.get(0, "1m", version=1)
    assert second is not first
    refs.forget(0, "1m")
    assert refs.get(0, "1m", version=1) is not second


@pytest.mark.parametrize("seed", range(6))
def test_one_notice_of_many_closes_counts_and_queues_like_one_close_per_notice(seed: int) -> None:
    # Arrange: two schedulers with the same traders, a small queue (drops) and a stale symbol
    rng = random.Random(seed)
    symbols = [f"S{i}USDT" for i in range(8)]
    plans = [
        TraderPlan(f"t{i}", tuple(rng.sample(symbols, 3)), ("1m",), 60, "close[-1] > 0", f"h{i % 3}")
        for i in range(12)
    ]
    cores = [CheckScheduler(MarketClock(wall=lambda: 1_700_000_000.0), max_queue=7) for _ in range(2)]
    for core in cores:
        for one in plans:
            core.upsert(one)
        core.candles_closed([(symbol, "1m", 3) for symbol in symbols])
        started = core.take(2)  # two traders in flight, the others still queued
        core.set_stale({symbols[0]})
        core.finish(started[0], {(symbols[1], "1m"): 5})
    closed = [(rng.choice(symbols), "1m", rng.choice([4, 5, 6])) for _ in range(20)]
    # Act
    together = cores[0].candles_closed(closed)
    one_by_one = sum(cores[1].candles_closed([close]) for close in closed)
    # Assert
    assert together == one_by_one
    assert vars(cores[0].counters) == vars(cores[1].counters)
    assert [(c.trader_id, c.timeframes) for c in cores[0].take(100)] == [
        (c.trader_id, c.timeframes) for c in cores[1].take(100)
    ]
