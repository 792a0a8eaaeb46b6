"""Schedule maths, triggers and the check queue, driven with a fake wall clock (no sleeping)."""

from __future__ import annotations

import random

import pytest

from aitrader.scheduling import CheckScheduler, CheckTrader, MarketClock, TraderPlan, first_due_ms

T0 = 1_700_000_000.0  # wall seconds, a minute boundary plus 20 s


class FakeWall:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def plan(trader_id: str = "t1", symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
         timeframes: tuple[str, ...] = ("1m",), interval_s: int = 60, code: str = "close[-1] > 0") -> TraderPlan:
    return TraderPlan(trader_id, symbols, timeframes, interval_s, code, f"hash-{code}")


def scheduler(wall: FakeWall, **kwargs: int) -> CheckScheduler:
    return CheckScheduler(MarketClock(wall=wall), **kwargs)


def finish_all(core: CheckScheduler, checks: list[CheckTrader], open_time: int) -> None:
    for check in checks:
        candles = {(s, tf): open_time for s in check.symbols for tf in check.timeframes}
        core.finish(check, candles)


def test_market_clock_runs_at_speed_from_its_anchor() -> None:
    wall = FakeWall(1000.0)
    clock = MarketClock(speed=60.0, anchor_ms=1_000_000, wall=wall)
    assert clock.now_ms() == 1_000_000
    wall.now += 1.0
    assert clock.now_ms() == 1_060_000
    assert MarketClock(wall=wall).now_ms() == 1_001_000


def test_interval_schedule_does_not_drift_over_an_hour_of_late_ticks() -> None:
    wall = FakeWall()
    core = scheduler(wall)
    core.upsert(plan(interval_s=60))
    first = core.next_due_ms("t1")
    assert first == first_due_ms(int(T0 * 1000), 60_000) and first % 60_000 == 0
    rng = random.Random(7)
    fired: list[tuple[int, int]] = []  # (due, market time it was queued at)
    while wall.now < T0 + 3600:
        wall.now += 0.5 + rng.uniform(0.0, 0.45)  # ticks arrive late and unevenly
        due = core.next_due_ms("t1")
        if core.tick():
            fired.append((due, core.clock.now_ms()))
            finish_all(core, core.take(10), 0)
    assert len(fired) == 60
    for k, (due, at) in enumerate(fired):
        assert due == first + k * 60_000, "next due must be previous due + interval"
        assert 0 <= at - due < 1000, "each check starts within a second of its due time"
    assert core.counters.missed_intervals == 0


def test_late_tick_skips_missed_intervals_and_keeps_the_grid() -> None:
    wall = FakeWall()
    core = scheduler(wall)
    core.upsert(plan(interval_s=60))
    first = core.next_due_ms("t1")
    wall.now = first / 1000 + 185  # three whole intervals late
    assert core.tick() == 1
    assert core.counters.missed_intervals == 3
    assert core.next_due_ms("t1") == first + 4 * 60_000


def test_interval_schedule_follows_market_time() -> None:
    wall = FakeWall()
    core = CheckScheduler(MarketClock(speed=60.0, anchor_ms=int(T0 * 1000), wall=wall))
    core.upsert(plan(interval_s=60))
    fired = 0
    for _ in range(40):  # 10 wall seconds = 10 market minutes
        wall.now += 0.25
        fired += core.tick()
        finish_all(core, core.take(10), 0)
    assert fired == 10


def test_interval_watchdog_is_quiet_while_candle_closes_drive_checks() -> None:
    wall = FakeWall()
    core = scheduler(wall)
    core.upsert(plan(interval_s=60))
    due = core.next_due_ms("t1")
    wall.now = due / 1000 + 1
    core.tick()  # nobody checked during the first interval: the watchdog fires
    finish_all(core, core.take(10), 0)
    for minute in range(1, 4):
        wall.now = (due + minute * 60_000) / 1000 - 5
        core.candles_closed([("BTCUSDT", "1m", minute * 60_000)])
        finish_all(core, core.take(10), minute * 60_000)
        wall.now += 6
        assert core.tick() == 0, "a candle-close check since the last due time covers the interval"
    assert core.counters.interval_checks == 1


def test_candle_close_triggers_only_matching_traders_and_timeframes() -> None:
    wall = FakeWall()
    core = scheduler(wall)
    core.upsert(plan("a", ("BTCUSDT",), ("1m", "5m")))
    core.upsert(plan("b", ("ETHUSDT",), ("1m",)))
    assert core.candles_closed([("BTCUSDT", "5m", 0), ("SOLUSDT", "1m", 0), ("ETHUSDT", "5m", 0)]) == 1
    (check,) = core.take(10)
    assert (check.trader_id, check.timeframes, check.reason) == ("a", ("5m",), "candle_close")


def test_triggers_for_a_queued_trader_are_coalesced_into_one_check() -> None:
    wall = FakeWall()
    core = scheduler(wall)
    core.upsert(plan("a", ("BTCUSDT", "ETHUSDT"), ("1m", "5m")))
    core.candles_closed([("BTCUSDT", "1m", 60_000)])
    core.candles_closed([("ETHUSDT", "1m", 60_000), ("ETHUSDT", "5m", 0)])
    assert core.queue_depth == 1
    assert core.counters.coalesced == 2
    (check,) = core.take(10)
    assert check.timeframes == ("1m", "5m")


def test_never_two_checks_of_one_trader_in_flight() -> None:
    wall = FakeWall()
    core = scheduler(wall)
    core.upsert(plan("a"))
    core.candles_closed([("BTCUSDT", "1m", 60_000)])
    (first,) = core.take(10)
    core.candles_closed([("ETHUSDT", "1m", 60_000)])  # arrives while the first check runs
    assert core.take(10) == [], "the trader's second check waits for the first"
    assert core.in_flight == 1 and core.queue_depth == 1
    core.finish(first, {("BTCUSDT", "1m"): 60_000, ("ETHUSDT", "1m"): 0})
    (second,) = core.take(10)
    assert second.trader_id == "a"


def test_a_queued_check_whose_candles_were_all_checked_is_skipped() -> None:
    wall = FakeWall()
    core = scheduler(wall)
    core.upsert(plan("a"))
    core.candles_closed([("BTCUSDT", "1m", 60_000)])
    (first,) = core.take(10)
    core.candles_closed([("ETHUSDT", "1m", 60_000)])
    core.finish(first, {("BTCUSDT", "1m"): 60_000, ("ETHUSDT", "1m"): 60_000})  # it saw both closes
    assert core.take(10) == []
    assert core.counters.skipped == 1


def test_a_candle_already_checked_is_skipped_when_notified_again() -> None:
    wall = FakeWall()
    core = scheduler(wall)
    core.upsert(plan("a"))
    core.candles_closed([("BTCUSDT", "1m", 60_000)])
    finish_all(core, core.take(10), 60_000)
    assert core.candles_closed([("BTCUSDT", "1m", 60_000)]) == 0
    assert core.counters.skipped == 1
    assert core.candles_closed([("BTCUSDT", "1m", 120_000)]) == 1


def test_queue_is_bounded_and_counts_dropped_triggers() -> None:
    wall = FakeWall()
    core = scheduler(wall, max_queue=2)
    for name in ("a", "b", "c"):
        core.upsert(plan(name, ("BTCUSDT",)))
    assert core.candles_closed([("BTCUSDT", "1m", 0)]) == 2
    assert core.queue_depth == 2
    assert core.counters.dropped == 1


def test_take_respects_its_limit_and_queue_order() -> None:
    wall = FakeWall()
    core = scheduler(wall)
    for name in ("a", "b", "c"):
        core.upsert(plan(name, (f"{name.upper()}AAUSDT",)))
    core.candles_closed([("CAAUSDT", "1m", 0), ("AAAUSDT", "1m", 0), ("BAAUSDT", "1m", 0)])
    assert [c.trader_id for c in core.take(2)] == ["c", "a"]
    assert [c.trader_id for c in core.take(2)] == ["b"]


def test_traders_are_added_changed_and_removed_at_runtime() -> None:
    wall = FakeWall()
    core = scheduler(wall)
    core.upsert(plan("a", ("BTCUSDT",)))
    core.upsert(plan("a", ("ETHUSDT",), code="close[-1] > 1"))  # changed symbols and code
    assert core.candles_closed([("BTCUSDT", "1m", 0)]) == 0
    assert core.candles_closed([("ETHUSDT", "1m", 0)]) == 1
    (check,) = core.take(10)
    assert check.code == "close[-1] > 1"
    assert core.remove("a") is True
    assert core.finish(check, {("ETHUSDT", "1m"): 0}) is False, "a removed trader's result is ignored"
    assert core.candles_closed([("ETHUSDT", "1m", 60_000)]) == 0
    assert core.remove("a") is False


def test_changing_the_filter_forgets_which_candles_were_checked() -> None:
    wall = FakeWall()
    core = scheduler(wall)
    core.upsert(plan("a"))
    core.candles_closed([("BTCUSDT", "1m", 60_000)])
    finish_all(core, core.take(10), 60_000)
    core.upsert(plan("a", code="close[-1] > 5"))
    assert core.candles_closed([("BTCUSDT", "1m", 60_000)]) == 1


def test_stale_symbols_pause_checks_and_fresh_data_resumes_them() -> None:
    wall = FakeWall()
    core = scheduler(wall)
    core.upsert(plan("a", ("BTCUSDT",)))
    core.upsert(plan("b", ("ETHUSDT",)))
    core.candles_closed([("BTCUSDT", "1m", 0)])
    assert core.set_stale({"BTCUSDT"}) == []
    assert core.queue_depth == 0, "a stale trader's queued check is dropped"
    assert core.candles_closed([("BTCUSDT", "1m", 60_000), ("ETHUSDT", "1m", 60_000)]) == 1
    assert core.counters.stale_skipped == 1
    assert core.stats()["stale_paused"] == 1
    assert core.set_stale(set()) == ["a"]
    assert sorted(c.trader_id for c in core.take(10)) == ["a", "b"], "resumed trader gets a catch-up check"


def test_pause_stops_new_and_queued_checks_until_resume() -> None:
    wall = FakeWall()
    core = scheduler(wall)
    core.upsert(plan("a", ("BTCUSDT",)))
    core.upsert(plan("b", ("ETHUSDT",)))
    core.candles_closed([("BTCUSDT", "1m", 0)])
    core.pause()
    assert core.candles_closed([("ETHUSDT", "1m", 0)]) == 0
    assert core.take(10) == []
    core.resume()
    assert [c.trader_id for c in core.take(10)] == ["a"]
    assert core.counters.paused_skipped == 1


def test_stats_report_latency_errors_and_counts() -> None:
    wall = FakeWall()
    core = scheduler(wall)
    core.upsert(plan("a", ("BTCUSDT",)))
    core.candles_closed([("BTCUSDT", "1m", 0)])
    (check,) = core.take(10)
    wall.now += 0.040
    core.finish(check, error=True)
    stats = core.stats()
    assert stats["checks_run"] == 1 and stats["errors"] == 1
    assert stats["p99_check_ms"] == pytest.approx(40.0, abs=0.01)
    assert stats["avg_check_ms"] == pytest.approx(40.0, abs=0.01)


def test_latency_starts_when_the_shard_saw_the_close() -> None:
    wall = FakeWall()
    core = scheduler(wall)
    core.upsert(plan("a", ("BTCUSDT",)))
    core.upsert(plan("b", ("ETHUSDT",)))
    core.candles_closed([("BTCUSDT", "1m", 0)], noticed_s=wall.now - 0.010)  # frame build + send: 10 ms
    core.candles_closed([("ETHUSDT", "1m", 0)], noticed_s=wall.now + 5.0)  # a shard clock ahead of ours
    checks = core.take(10)
    wall.now += 0.040
    for check in checks:
        core.finish(check)
    stats = core.stats()
    assert stats["p99_check_ms"] == pytest.approx(50.0, abs=0.01)
    assert stats["avg_check_ms"] == pytest.approx(45.0, abs=0.01)
