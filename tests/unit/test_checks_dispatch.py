"""Check dispatch: a filter is evaluated once per shard frame and reused by later batches,
traders get exactly their own symbols across shards, shard routes are cached until a symbol
moves, and batch latency is split into stages."""

from __future__ import annotations

import numpy as np
import pytest

from aitrader.checks import CheckRunner, ShardFrame, decode_checks, decode_results, encode_batch
from aitrader.dispatch import ShardRoutes, StageTimes
from aitrader.market import MarketFrame
from aitrader.scheduling import CheckTrader


def shard_frame(symbols: list[str], closes: list[float], open_times: list[int] | None = None) -> ShardFrame:
    rows, bars = len(symbols), 30
    close = np.tile(np.linspace(1.0, 2.0, bars), (rows, 1)) * np.array(closes)[:, None]
    last = np.array(open_times if open_times is not None else [600_000] * rows, dtype=np.int64)
    frame = MarketFrame("1m", tuple(symbols), close, close, close, close, np.ones((rows, bars)), last,
                        np.zeros(rows, dtype=np.bool_))
    return ShardFrame(frame)


def check(trader_id: str, symbols: tuple[str, ...], code: str = "close[-1] > 10") -> CheckTrader:
    return CheckTrader(trader_id, code, f"h:{code}", symbols, ("1m",), "candle_close", 0.0)


def test_a_filter_is_evaluated_once_per_frame_across_batches() -> None:
    # Arrange: one frame, two batches of the same filter (as two dispatches reusing one frame)
    runner = CheckRunner()
    frame = shard_frame(["AAAUSDT", "BBBUSDT", "CCCUSDT"], [4.0, 6.0, 8.0])
    # Act
    first = runner.run([check("t1", ("AAAUSDT", "BBBUSDT"))], {"1m": [frame]})
    second = runner.run([check("t2", ("CCCUSDT",)), check("t3", ("AAAUSDT",), "close[-1] > 1")], {"1m": [frame]})
    # Assert: two filters, two evaluations; each trader sees only its symbols
    assert runner.evaluations == 2
    assert first[0].outcomes[0].matched == ["BBBUSDT"]
    assert second[0].outcomes[0].matched == ["CCCUSDT"]
    assert second[1].outcomes[0].matched == ["AAAUSDT"]
    assert second[0].outcomes[0].candle_times == {"CCCUSDT": 600_000}


def test_a_new_frame_is_evaluated_again() -> None:
    runner = CheckRunner()
    old = runner.run([check("t1", ("AAAUSDT",))], {"1m": [shard_frame(["AAAUSDT"], [4.0])]})
    new = runner.run([check("t1", ("AAAUSDT",))], {"1m": [shard_frame(["AAAUSDT"], [8.0], [660_000])]})
    assert runner.evaluations == 2
    assert old[0].outcomes[0].matched == [] and new[0].outcomes[0].matched == ["AAAUSDT"]
    assert new[0].outcomes[0].candle_times == {"AAAUSDT": 660_000}
    assert new[0].outcomes[0].last_close == {"AAAUSDT": 16.0}


def test_symbols_across_shards_without_candles_or_shard_are_missing_and_never_match() -> None:
    # Arrange: BBB has no closed candle yet (its row's values would match), ZZZ is on no shard
    a = shard_frame(["AAAUSDT", "BBBUSDT"], [8.0, 8.0], [600_000, -1])
    b = shard_frame(["CCCUSDT"], [8.0])
    # Act
    (result,) = CheckRunner().run([check("t1", ("CCCUSDT", "BBBUSDT", "AAAUSDT", "ZZZUSDT"))], {"1m": [a, b]})
    # Assert
    outcome = result.outcomes[0]
    assert result.error is None
    assert outcome.matched == ["CCCUSDT", "AAAUSDT"], "in the trader's order"
    assert outcome.conditions == {"CCCUSDT": ["close[-1] > 10"], "AAAUSDT": ["close[-1] > 10"]}
    assert outcome.missing == ["BBBUSDT", "ZZZUSDT"]
    assert set(outcome.candle_times) == {"AAAUSDT", "CCCUSDT"}


def test_a_runtime_error_on_a_frame_fails_every_trader_of_that_filter_and_is_remembered() -> None:
    runner = CheckRunner()
    frame = shard_frame(["AAAUSDT", "BBBUSDT"], [1.0, 2.0])
    code = "close[-5:] > close[-3:]"  # slices of different lengths
    results = runner.run([check("t1", ("AAAUSDT",), code), check("t2", ("BBBUSDT",), code),
                          check("t3", ("BBBUSDT",))], {"1m": [frame]})
    assert [r.error_kind for r in results] == ["runtime", "runtime", None]
    assert runner.evaluations == 2


def test_the_worker_start_time_is_passed_on_in_results() -> None:
    (result,) = CheckRunner().run([check("t1", ("AAAUSDT",))], {"1m": [shard_frame(["AAAUSDT"], [1.0])]},
                                  started_s=1234.5)
    assert result.started_s == 1234.5


def test_routes_are_cached_until_a_symbol_moves_to_another_shard() -> None:
    routes = ShardRoutes()
    routes.assign(["AAAUSDT", "BBBUSDT"], 0)
    routes.assign(["CCCUSDT"], 1)
    assert routes.route(("CCCUSDT", "AAAUSDT", "ZZZUSDT")) == [0, 1]
    assert routes.route(("BBBUSDT",)) == [0]
    routes.assign(["BBBUSDT"], 0)  # unchanged: cache kept
    assert routes.route(("BBBUSDT",)) == [0]
    routes.assign(["BBBUSDT"], 2)
    assert routes.route(("BBBUSDT",)) == [2]
    assert routes.symbols_of(0) == {"AAAUSDT"}
    assert "ZZZUSDT" not in routes and routes.shard_of("CCCUSDT") == 1


def test_stage_times_split_a_batch_latency_and_reset() -> None:
    stages = StageTimes()
    stages.record([10.000, 10.002], dispatched_s=10.010, started_s=10.020, run_ms=6.0, replied_s=10.030,
                  completed_s=10.031)
    stages.record([20.000], dispatched_s=20.002, started_s=20.004, run_ms=2.0, replied_s=20.012,
                  completed_s=20.013)
    summary = stages.summary(reset=True)
    assert summary["avg_wait_ms"] == pytest.approx(6.0)
    assert summary["max_wait_ms"] == pytest.approx(10.0)
    assert summary["avg_send_ms"] == pytest.approx(6.0)
    assert summary["avg_back_ms"] == pytest.approx(5.0) and summary["max_run_ms"] == pytest.approx(6.0)
    assert summary["max_complete_ms"] == pytest.approx(1.0, abs=1e-6)
    assert stages.batches == 0 and stages.summary()["max_send_ms"] == 0.0


def test_checks_and_results_cross_to_a_worker_and_back_unchanged() -> None:
    # Arrange: matches with conditions, a missing symbol, and an error result
    frame = shard_frame(["AAAUSDT", "BBBUSDT"], [8.0, 4.0], [600_000, -1])
    checks = [check("t1", ("AAAUSDT", "BBBUSDT")), check("t2", ("AAAUSDT",), "import os")]
    results = CheckRunner().run(checks, {"1m": [frame]}, started_s=12.5)
    # Act
    checks_back = decode_checks(encode_batch(checks))
    results_back = decode_results(encode_batch(results))
    # Assert
    assert checks_back == checks and isinstance(checks_back[0].symbols, tuple)
    assert results_back == results
    assert results_back[0].outcomes[0].matched == ["AAAUSDT"] and results_back[0].outcomes[0].missing == ["BBBUSDT"]
    assert results_back[1].error is not None and results_back[1].started_s == 12.5
