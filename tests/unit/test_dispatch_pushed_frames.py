"""Frames pushed with candle-close notices: a check reads the shard's frame reference that came
with the notice and asks the shard for none; frames no notice brought are requested as before."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actors.check_dispatch import CheckDispatcher
from aitrader.dispatch import PushedFrames
from aitrader.scheduling import CheckTrader


@dataclass(frozen=True)
class FakeRef:
    name: str

    def hex(self) -> str:
        return self.name


@dataclass
class FakeMethod:
    reply: Any
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def remote(self, *args: Any) -> Any:
        self.calls.append(args)
        return self.reply(len(self.calls)) if callable(self.reply) else self.reply


class FakeShard:
    def __init__(self, index: int) -> None:
        self.frame = FakeMethod(lambda n: FakeRef(f"requested-{index}-{n}"))


class FakeWorker:
    def __init__(self) -> None:
        self.check = FakeMethod("reply")
        self._actor_id = FakeRef("worker")


def dispatcher(shards: int = 1) -> tuple[CheckDispatcher, list[FakeShard], FakeWorker]:
    fake_shards, worker = [FakeShard(i) for i in range(shards)], FakeWorker()
    dispatch = CheckDispatcher([worker], fake_shards, lambda kind, message: None, lambda: 0.0)
    dispatch.routes.assign(["AAAUSDT", "BBBUSDT"], 0)
    dispatch.routes.assign(["CCCUSDT"], shards - 1)
    return dispatch, fake_shards, worker


def check(symbols: tuple[str, ...], timeframes: tuple[str, ...] = ("1m",)) -> CheckTrader:
    return CheckTrader("t1", "close[-1] > 0", "h1", symbols, timeframes, "candle_close", 0.0)


def frames_sent(worker: FakeWorker) -> list[Any]:
    return list(worker.check.calls[-1][4:])


def test_a_check_reads_the_frame_pushed_with_the_notice_and_asks_the_shard_for_none() -> None:
    # Arrange
    dispatch, shards, worker = dispatcher()
    pushed = FakeRef("pushed-1m")
    # Act
    dispatch.candles_closed([("AAAUSDT", "1m", 60_000), ("BBBUSDT", "1m", 60_000)], prefetch=True,
                            frames={"1m": pushed})
    (batch,) = dispatch.plan([check(("AAAUSDT", "BBBUSDT"))])
    sending = dispatch.send(batch)
    # Assert
    assert sending.error is None and sending.keys == [(0, "1m")]
    assert frames_sent(worker) == [pushed]
    assert shards[0].frame.calls == []
    assert dispatch.stats()["frame_requests"] == 0


def test_a_timeframe_no_notice_brought_is_requested_from_its_shard_once() -> None:
    # Arrange: a 1m notice with its frame; the trader also reads 5m
    dispatch, shards, worker = dispatcher()
    dispatch.candles_closed([("AAAUSDT", "1m", 60_000)], prefetch=True, frames={"1m": FakeRef("pushed-1m")})
    # Act
    for _ in range(2):
        (batch,) = dispatch.plan([check(("AAAUSDT",), ("1m", "5m"))])
        dispatch.send(batch)
        dispatch.pool.release(batch[1])
    # Assert
    assert frames_sent(worker) == [FakeRef("pushed-1m"), FakeRef("requested-0-1")]
    assert shards[0].frame.calls == [("5m",)]


def test_a_pushed_frame_is_replaced_by_the_next_notice_and_notices_without_frames_fetch() -> None:
    # Arrange
    dispatch, shards, worker = dispatcher()
    dispatch.candles_closed([("AAAUSDT", "1m", 60_000)], prefetch=False, frames={"1m": FakeRef("first")})
    dispatch.candles_closed([("AAAUSDT", "1m", 120_000)], prefetch=False, frames={"1m": FakeRef("second")})
    (batch,) = dispatch.plan([check(("AAAUSDT",))])
    dispatch.send(batch)
    dispatch.pool.release(batch[1])
    first = frames_sent(worker)
    # Act: a notice without frames (from an older shard, or a replay) makes the pushed one old
    dispatch.candles_closed([("AAAUSDT", "1m", 180_000)], prefetch=False)
    (batch,) = dispatch.plan([check(("AAAUSDT",))])
    dispatch.send(batch)
    # Assert
    assert first == [FakeRef("second")]
    assert frames_sent(worker) == [FakeRef("requested-0-1")]


def test_frames_of_a_notice_spanning_shards_are_not_trusted() -> None:
    # Arrange: AAA on shard 0, CCC on shard 1; a notice cannot come from both
    dispatch, shards, worker = dispatcher(shards=2)
    # Act
    dispatch.candles_closed([("AAAUSDT", "1m", 60_000), ("CCCUSDT", "1m", 60_000)], prefetch=True,
                            frames={"1m": FakeRef("which-shard")})
    (batch,) = dispatch.plan([check(("AAAUSDT", "CCCUSDT"))])
    dispatch.send(batch)
    # Assert
    assert frames_sent(worker) == [FakeRef("requested-0-1"), FakeRef("requested-1-1")]


def test_pushed_frames_are_current_for_their_version_and_max_age_only() -> None:
    # Arrange
    now = [100.0]
    frames: PushedFrames[str] = PushedFrames(max_age_s=5.0, clock=lambda: now[0])
    frames.offer(0, "1m", version=3, ref="frame")
    # Act
    current = frames.get(0, "1m", 3)
    other_version, other_interval = frames.get(0, "1m", 4), frames.get(0, "5m", 3)
    now[0] += 5.0
    too_old = frames.get(0, "1m", 3)
    frames.offer(0, "1m", version=3, ref="again")
    frames.forget(0, "1m")
    # Assert
    assert current == "frame"
    assert other_version is None and other_interval is None and too_old is None
    assert frames.get(0, "1m", 3) is None
    assert (frames.pushed, frames.used) == (2, 1)


def test_a_dispatch_is_spread_over_workers_only_with_enough_filters_per_batch() -> None:
    # Arrange: two free workers, checks of five filters
    workers = [FakeWorker(), FakeWorker()]
    checks = [CheckTrader(f"t{i}", f"close[-1] > {i % 5}", f"h{i % 5}", ("AAAUSDT",), ("1m",), "candle_close", 0.0)
              for i in range(20)]
    spread_all = CheckDispatcher(workers, [FakeShard(0)], lambda kind, message: None, lambda: 0.0)
    spread_by_3 = CheckDispatcher(workers, [FakeShard(0)], lambda kind, message: None, lambda: 0.0,
                                  min_filters_per_batch=3)
    kept_whole = CheckDispatcher(workers, [FakeShard(0)], lambda kind, message: None, lambda: 0.0,
                                 min_filters_per_batch=8)
    # Act
    batches = [dispatch.plan(checks) for dispatch in (spread_all, spread_by_3, kept_whole)]
    # Assert
    assert [len(planned) for planned in batches] == [2, 1, 1]
    assert sorted(len(batch) for batch, _, _ in batches[0]) == [8, 12]
    assert [len(batch) for batch, _, _ in batches[2]] == [20]
    assert kept_whole.free_slots() == 1, "one worker stays free for the next dispatch"
