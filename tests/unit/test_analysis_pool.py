"""AnalysisPool: concurrency bound, drop-oldest queue, rate-limit fallback with a fake clock."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from aitrader.analysis import DROPPED_REASON, Analysis, AnalysisPool, AnalysisRequest, Decision, TokenBucket


class Blocking:
    """An analyzer that counts how many run at once and waits for a release."""

    name = "blocking"

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.running = 0
        self.max_running = 0
        self.started: list[str] = []

    async def analyze(self, request: AnalysisRequest) -> Analysis:
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        self.started.append(request.signal_id)
        try:
            await self.release.wait()
        finally:
            self.running -= 1
        return Analysis(Decision.ENTER, 90, "ok", None, None, self.name)


def req(signal_id: str) -> AnalysisRequest:
    return AnalysisRequest("BTCUSDT", "1m", signal_id=signal_id)


async def wait_until(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def test_never_more_than_ten_at_once() -> None:
    analyzer = Blocking()
    pool = AnalysisPool(analyzer, max_concurrent=10, queue_size=100)
    futures = [pool.submit(req(str(i))) for i in range(50)]
    await wait_until(lambda: analyzer.running == 10)
    await asyncio.sleep(0.05)  # give the dispatcher every chance to over-start
    assert analyzer.running == 10 and pool.queued == 40
    analyzer.release.set()
    results = await asyncio.wait_for(asyncio.gather(*futures), 10)
    assert analyzer.max_running == 10
    assert all(r.decision is Decision.ENTER for r in results)
    assert pool.stats()["completed"] == 50
    await pool.close()


async def test_full_queue_drops_the_oldest() -> None:
    analyzer = Blocking()
    pool = AnalysisPool(analyzer, max_concurrent=1, queue_size=3)
    blocker = pool.submit(req("blocker"))
    await wait_until(lambda: analyzer.running == 1)
    futures = [pool.submit(req(f"s{i}")) for i in range(6)]
    dropped = [f.result() for f in futures[:3]]
    assert all(f.done() for f in futures[:3]) and not any(f.done() for f in futures[3:])
    assert all(d.dropped and d.reasoning == DROPPED_REASON and d.decision is Decision.SKIP for d in dropped)
    analyzer.release.set()
    kept = await asyncio.wait_for(asyncio.gather(blocker, *futures[3:]), 10)
    assert not any(k.dropped for k in kept)
    assert analyzer.started == ["blocker", "s3", "s4", "s5"]
    assert pool.stats()["dropped"] == 3
    await pool.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Counting:
    name = "llm:fake"

    def __init__(self) -> None:
        self.calls = 0

    async def analyze(self, request: AnalysisRequest) -> Analysis:
        self.calls += 1
        return Analysis(Decision.ENTER, 88, "model says yes", None, None, self.name)


def candles_request() -> AnalysisRequest:
    t = np.arange(100, dtype=np.float64)
    close = 100 + t * 0.1 + np.sin(t)
    return AnalysisRequest("BTCUSDT", "1m", open=close, high=close + 1, low=close - 1, close=close,
                           volume=np.full(100, 10.0))


async def test_rate_limit_uses_the_built_in_analyzer_instead_of_waiting() -> None:
    clock = FakeClock()
    model = Counting()
    pool = AnalysisPool(model, rate_limit=TokenBucket(2, clock=clock), max_concurrent=10)
    first = [await asyncio.wait_for(pool.submit(candles_request()), 10) for _ in range(3)]
    assert [a.analyzer for a in first] == ["llm:fake", "llm:fake", "rules"]
    assert model.calls == 2
    limited = first[2]
    assert limited.fell_back
    assert limited.reasoning.startswith("LLM rate limit reached (2/min); built-in analysis: ")
    clock.now += 30  # half a minute at 2/min refills one token
    again = await asyncio.wait_for(pool.submit(candles_request()), 10)
    assert again.analyzer == "llm:fake" and model.calls == 3
    assert pool.stats()["rate_limited"] == 1
    await pool.close()


def test_token_bucket_refills_at_its_rate_and_caps_at_capacity() -> None:
    clock = FakeClock()
    bucket = TokenBucket(60, capacity=2, clock=clock)
    assert bucket.try_acquire() and bucket.try_acquire() and not bucket.try_acquire()
    clock.now += 1.0
    assert bucket.try_acquire() and not bucket.try_acquire()
    clock.now += 3600
    assert bucket.try_acquire() and bucket.try_acquire() and not bucket.try_acquire()
    with pytest.raises(ValueError):
        TokenBucket(0)


class Broken:
    name = "broken"

    async def analyze(self, request: AnalysisRequest) -> Analysis:
        raise RuntimeError("bug")


async def test_an_analyzer_error_falls_back_rather_than_hanging() -> None:
    pool = AnalysisPool(Broken())
    analysis = await asyncio.wait_for(pool.submit(candles_request()), 10)
    assert analysis.fell_back and analysis.reasoning.startswith("analysis failed (RuntimeError)")
    await pool.close()
