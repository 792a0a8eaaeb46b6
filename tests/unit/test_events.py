from __future__ import annotations

import pytest

from aitrader.events import Channel, EventLog, parse_channels


def test_seq_is_monotonic_and_reads_resume_after_it() -> None:
    log = EventLog(capacity=10, clock=lambda: 1.0)
    first = log.publish("signals", "signal_created", {"id": "a"})
    second = log.publish("tickers", "ticker_update", {"symbol": "BTCUSDT"})
    assert (first.seq, second.seq) == (1, 2)
    batch = log.since(1)
    assert [e.seq for e in batch.events] == [2]
    assert batch.last_seq == 2 and not batch.fell_off
    assert log.since(2).events == []


def test_channel_filter() -> None:
    log = EventLog()
    log.publish("signals", "signal_created", {})
    log.publish("tickers", "ticker_update", {})
    log.publish("signals", "signal_updated", {})
    batch = log.since(0, [Channel.SIGNALS])
    assert [e.type for e in batch.events] == ["signal_created", "signal_updated"]
    assert batch.last_seq == 3


def test_reader_that_fell_off_the_ring_is_told() -> None:
    log = EventLog(capacity=3)
    for i in range(10):
        log.publish("logs", "log", {"i": i})
    batch = log.since(2)
    assert batch.fell_off
    assert [e.seq for e in batch.events] == [8, 9, 10]
    assert not log.since(7).fell_off


def test_limit_returns_the_seq_to_continue_from() -> None:
    log = EventLog()
    for _ in range(5):
        log.publish("orders", "order_update", {})
    batch = log.since(0, limit=2)
    assert [e.seq for e in batch.events] == [1, 2] and batch.last_seq == 2
    assert [e.seq for e in log.since(batch.last_seq, limit=10).events] == [3, 4, 5]


def test_new_epoch_tells_old_readers_they_fell_off() -> None:
    log = EventLog(start_seq=1_000_000)
    assert log.since(42).fell_off
    log.publish("engine", "engine", {})
    assert log.since(1_000_000).events[0].seq == 1_000_001


def test_unknown_channels_are_rejected_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="tickers"):
        parse_channels(["tickerz"])
    with pytest.raises(ValueError):
        EventLog().publish("nope", "x", {})
    assert parse_channels(["logs"]) == {"logs"}


def test_message_shape() -> None:
    event = EventLog().publish("positions", "position_update", {"id": "p"})
    assert event.to_message() == {"type": "position_update", "seq": 1, "data": {"id": "p"}}


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        EventLog(capacity=0)


def test_every_log_is_a_run_of_its_own_and_reads_name_it() -> None:
    first, restarted = EventLog(capacity=10), EventLog(capacity=10)
    first.publish("logs", "log", {})

    assert first.run_id != restarted.run_id and len(first.run_id) >= 16
    assert first.since(0).run_id == first.run_id and restarted.since(0).run_id == restarted.run_id
    assert EventLog(run_id="fixed").since(0).run_id == "fixed"
