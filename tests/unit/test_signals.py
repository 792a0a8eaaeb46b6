"""Check evaluation (grouped, cached, errors contained) and one signal per (trader, symbol, candle)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aitrader.checks import CheckResult, CheckRunner, FilterCache, ShardFrame, TimeframeOutcome, assemble
from aitrader.filters import FilterError
from aitrader.market import MarketFrame
from aitrader.models import Trader
from aitrader.scheduling import CheckTrader
from aitrader.signals import signals_from_result
from aitrader.storage import SQLStorage, sqlite_url


def shard_frame(symbols: list[str], closes: list[float], open_time: int = 600_000, bars: int = 30) -> ShardFrame:
    rows = len(symbols)
    close = np.tile(np.linspace(1.0, 2.0, bars), (rows, 1)) * np.array(closes)[:, None]
    last = np.full(rows, open_time, dtype=np.int64)
    frame = MarketFrame("1m", tuple(symbols), close, close, close, close, np.ones((rows, bars)), last,
                        np.zeros(rows, dtype=np.bool_))
    return ShardFrame(frame)


def check(trader_id: str, symbols: tuple[str, ...], code: str = "close[-1] > 10") -> CheckTrader:
    return CheckTrader(trader_id, code, f"h:{code}", symbols, ("1m",), "candle_close", 0.0)


def test_assemble_gathers_rows_across_shards_and_reports_missing() -> None:
    a = shard_frame(["AAAUSDT", "BBBUSDT"], [1.0, 2.0])
    b = shard_frame(["CCCUSDT"], [3.0], open_time=-1)
    c = shard_frame(["DDDUSDT"], [4.0])
    frame, open_times, missing = assemble(["DDDUSDT", "BBBUSDT", "CCCUSDT", "ZZZUSDT"], [a, b, c])
    assert frame.symbols == ("BBBUSDT", "DDDUSDT")
    assert frame.close[:, -1].tolist() == [4.0, 8.0]
    assert open_times.tolist() == [600_000, 600_000]
    assert sorted(missing) == ["CCCUSDT", "ZZZUSDT"]


def test_traders_sharing_a_filter_are_evaluated_once_and_get_their_own_symbols() -> None:
    runner = CheckRunner()
    frames = {"1m": [shard_frame(["AAAUSDT", "BBBUSDT", "CCCUSDT"], [4.0, 6.0, 8.0])]}
    results = runner.run([check("t1", ("AAAUSDT", "BBBUSDT")), check("t2", ("BBBUSDT", "CCCUSDT"))], frames)
    assert runner.evaluations == 1
    one, two = (r.outcomes[0] for r in results)
    assert one.matched == ["BBBUSDT"] and two.matched == ["BBBUSDT", "CCCUSDT"]
    assert set(one.candle_times) == {"AAAUSDT", "BBBUSDT"}
    assert one.last_close == {"BBBUSDT": 12.0}
    assert one.conditions == {"BBBUSDT": ["close[-1] > 10"]}


def test_compile_errors_and_timeouts_become_error_results() -> None:
    runner = CheckRunner(time_budget_s=0.0)
    frames = {"1m": [shard_frame(["AAAUSDT"], [1.0])]}
    bad, slow = runner.run([check("bad", ("AAAUSDT",), "import os"), check("slow", ("AAAUSDT",), "ema(close, 5)[-1] > 0")], frames)
    assert bad.error_kind == "compile" and "line 1" in (bad.error or "")
    assert slow.error_kind == "timeout"
    assert bad.outcomes == [] and slow.outcomes == []


def test_filter_cache_is_lru_by_code_hash_and_remembers_compile_errors() -> None:
    cache = FilterCache(capacity=2)
    first = cache.get("a", "close[-1] > 0")
    assert cache.get("a", "close[-1] > 0") is first
    cache.get("b", "close[-1] > 1")
    cache.get("c", "close[-1] > 2")  # evicts a
    assert len(cache) == 2
    cache.get("a", "close[-1] > 0")
    assert cache.misses == 4 and cache.hits == 1
    with pytest.raises(FilterError):
        cache.get("bad", "__import__('os')")
    with pytest.raises(FilterError):
        cache.get("bad", "__import__('os')")


def result(matched: list[str], candle_time: int = 600_000, error: str | None = None) -> CheckResult:
    outcome = TimeframeOutcome("1m", matched, {s: ["close[-1] > 0"] for s in matched},
                               {s: 101.5 for s in matched}, {s: candle_time for s in matched}, [])
    return CheckResult("t1", "h", [outcome], 1.25, error, "runtime" if error else None)


def test_signals_carry_candle_price_and_conditions() -> None:
    (signal,) = signals_from_result(result(["BTCUSDT"]), "alice")
    assert (signal.trader_id, signal.symbol, signal.timeframe, signal.candle_time) == ("t1", "BTCUSDT", "1m", 600_000)
    assert str(signal.trigger_price) == "101.5"
    assert signal.meta == {"conditions": ["close[-1] > 0"], "check_ms": 1.25}
    assert signals_from_result(result(["BTCUSDT"], error="boom"), "alice") == []
    assert signals_from_result(result(["BTCUSDT"], candle_time=-1), "alice") == []


def test_the_same_candle_gives_the_same_signal_and_storage_keeps_one(tmp_path: Path) -> None:
    storage = SQLStorage(sqlite_url(tmp_path / "signals.db"))
    trader = storage.create_trader(
        Trader.model_validate({"id": "t1", "user_id": "alice", "name": "x", "symbols": ["BTCUSDT"],
                               "signal_code": "close[-1] > 0"})
    )
    first = signals_from_result(result(["BTCUSDT"]), "alice")[0]
    again = signals_from_result(result(["BTCUSDT"]), "alice")[0]
    later = signals_from_result(result(["BTCUSDT"], candle_time=660_000), "alice")[0]
    assert first.id == again.id != later.id
    assert storage.create_signal(first)[1] is True
    assert storage.create_signal(again)[1] is False
    assert storage.create_signal(later)[1] is True
    assert len(storage.list_signals(trader_id=trader.id)) == 2
    storage.close()
