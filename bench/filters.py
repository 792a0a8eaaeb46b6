"""Benchmark: one filter evaluation (vectorised) vs a TA-Lib per-symbol loop vs a pandas per-pair loop.

Prints one JSON object as its last line: ``eval_ms``, ``talib_loop_ms``, ``pandas_loop_ms`` (medians),
``eval_vs_talib`` and ``pandas_vs_eval``; then, end to end through the Scheduler actor, the
FilterWorker pool and a StreamShard fed by a local exchange with 100 symbols, with candle
closes offered at a fixed rate: ``checks_per_s`` (sustained) and ``check_p99_ms`` (candle-close
trigger to processed result).  The measuring functions are importable so other benchmarks can
reuse them.  Load averages are reported alongside: on a shared machine timings mean little
without them.
Run: ``.venv/bin/python bench/filters.py`` (``--no-e2e`` skips the Ray part, ``--rate N`` offers
N checks/s instead of 1250, ``--workers N`` sizes the pool instead of one worker per CPU,
``--pull`` sends the closes to the scheduler directly, without the shards' frames, as before
shards pushed them, ``--min-filters N`` spreads a dispatch over workers only with N filters per
batch).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import talib

from aitrader.filters import MarketFrame, compile_filter

FILTER_CODE = (
    "rsi(close, 14) < 70 and close[-1] > ema(close, 20)[-1] "
    "and sma(close, 50)[-1] > 0 and volume[-1] > 0.5 * sma(volume, 20)[-1]"
)


def synthetic_frame(symbols: int = 100, bars: int = 250, seed: int = 42) -> MarketFrame:
    """A seeded random-walk market of ``symbols`` x ``bars`` candles."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, (symbols, bars)), axis=1))
    spread = close * 0.005 * rng.random((symbols, bars))
    volume = 1_000.0 * rng.random((symbols, bars)) + 1.0
    names = [f"SYM{i}USDT" for i in range(symbols)]
    return MarketFrame.from_arrays(names, close, close + spread, close - spread, close, volume)


def median_ms(run: Callable[[], Any], repeats: int = 200, warmup: int = 10) -> float:
    """Median wall time of ``run()`` in milliseconds."""
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1e3


def eval_filter(frame: MarketFrame, code: str = FILTER_CODE) -> Callable[[], list[str]]:
    """A callable evaluating the compiled filter over the whole frame; returns matched symbols."""
    compiled = compile_filter(code)
    return lambda: compiled.evaluate(frame).matched


def talib_loop(frame: MarketFrame) -> Callable[[], list[str]]:
    """The same filter per symbol with TA-Lib in a Python loop."""

    def run() -> list[str]:
        matched = []
        for row, symbol in enumerate(frame.symbols):
            close, volume = frame.close[row], frame.volume[row]
            if (
                talib.RSI(close, 14)[-1] < 70
                and close[-1] > talib.EMA(close, 20)[-1]
                and talib.SMA(close, 50)[-1] > 0
                and volume[-1] > 0.5 * talib.SMA(volume, 20)[-1]
            ):
                matched.append(symbol)
        return matched

    return run


def pandas_loop(frame: MarketFrame) -> Callable[[], list[str]]:
    """Freqtrade-style: a DataFrame per pair, indicator columns added, the last row evaluated."""

    def run() -> list[str]:
        matched = []
        for row, symbol in enumerate(frame.symbols):
            candles = pd.DataFrame(
                {
                    "open": frame.open[row],
                    "high": frame.high[row],
                    "low": frame.low[row],
                    "close": frame.close[row],
                    "volume": frame.volume[row],
                }
            )
            candles["rsi"] = talib.RSI(candles["close"], 14)
            candles["ema20"] = talib.EMA(candles["close"], 20)
            candles["sma50"] = talib.SMA(candles["close"], 50)
            candles["volume_sma20"] = talib.SMA(candles["volume"], 20)
            last = candles.iloc[-1]
            if (
                last["rsi"] < 70
                and last["close"] > last["ema20"]
                and last["sma50"] > 0
                and last["volume"] > 0.5 * last["volume_sma20"]
            ):
                matched.append(symbol)
        return matched

    return run


def measure(symbols: int = 100, bars: int = 250, repeats: int = 200) -> dict[str, float]:
    """Run the three variants on one frame, check they agree, and return the medians and ratios."""
    frame = synthetic_frame(symbols, bars)
    ours, loop, frames = eval_filter(frame), talib_loop(frame), pandas_loop(frame)
    if not ours() == loop() == frames():
        raise AssertionError("the filter engine and the TA-Lib loops disagree on the matched symbols")
    eval_ms = median_ms(ours, repeats)
    talib_ms = median_ms(loop, repeats)
    pandas_ms = median_ms(frames, max(10, repeats // 10), warmup=2)
    return {
        "eval_ms": round(eval_ms, 4),
        "talib_loop_ms": round(talib_ms, 4),
        "pandas_loop_ms": round(pandas_ms, 4),
        "eval_vs_talib": round(eval_ms / talib_ms, 3),
        "pandas_vs_eval": round(pandas_ms / eval_ms, 1),
    }


def _trader_codes(count: int) -> list[str]:
    """Distinct filters that rarely match (signals are rare; storing one is not what is measured)."""
    return [
        f"rsi(close, 14) < {20 + i} and close[-1] > ema(close, 20)[-1] "
        f"and sma(close, 50)[-1] > 0 and volume[-1] > 0.5 * sma(volume, 20)[-1]"
        for i in range(count)
    ]


def _start_ray() -> None:
    """A fresh local Ray (never a running cluster); patient on a busy machine, one retry."""
    import os

    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_agent_register_timeout_ms", "120000")
    os.environ.setdefault("RAY_raylet_start_wait_time_s", "180")
    for attempt in range(2):
        try:
            ray.init(address="local", include_dashboard=False, log_to_driver=False, namespace="aitrader-bench")
            return
        except Exception:
            ray.shutdown()
            if attempt == 1:
                raise


def measure_checks(
    symbols: int = 100, traders: int = 100, symbols_per_trader: int = 10, codes: int = 5,
    offered_checks_per_s: float = 1250.0, duration_s: float = 20.0, warmup_s: float = 3.0,
    workers: int | None = None, push: bool = True, min_filters_per_batch: int = 1,
) -> dict[str, Any]:
    """Sustained checks/s and trigger-to-result p99 through scheduler, pool and shards (starts Ray).

    A local exchange streams ``symbols`` symbols to the shards; once their buffers are
    backfilled, the driver plays candle closes at a fixed rate, open loop: every
    ``traders / offered_checks_per_s`` seconds all ``symbols`` close a new candle in one notice
    (as a shard reports a minute's closes), which triggers every trader — whether or not the
    previous close has been processed.  A trader still queued or running when its next close
    arrives is coalesced (one check covers both closes), so falling behind shows up as fewer
    checks than offered and a growing latency, measured from the shard seeing the close (with
    ``push``, so building and sending the frame count; without, from the scheduler receiving it)
    to the check's result being processed.  Traders watch ``symbols_per_trader`` symbols each,
    spread over ``codes`` filters; ``workers`` FilterWorkers (default: one per CPU).  With
    ``push`` the closes go through the shards, as the feed's would: each shard sends the notice
    with its frame already in the object store; without, straight to the scheduler, which then
    asks the shards for their frames.
    """
    import os
    import tempfile
    from pathlib import Path

    import ray

    from actors.filter_pool import create_workers
    from actors.graph import shard_count
    from actors.scheduler import Scheduler
    from actors.store import Store
    from actors.stream import StreamShard, shard_symbols
    from aitrader.config import Settings
    from aitrader.dispatch import STAGES
    from aitrader.exchange import ExchangeConfig, benchmark_symbols, start_in_thread
    from aitrader.models import Trader

    names = benchmark_symbols(symbols)
    _start_ray()
    exchange = start_in_thread(ExchangeConfig(port=0, seed=7, symbols=tuple(names), speed=1.0))
    folder = tempfile.mkdtemp(prefix="aitrader-bench-")
    try:
        settings = Settings(user_id="bench", sqlite_path=Path(folder) / "bench.db", max_active_traders=1000)
        store = Store.remote(settings)  # type: ignore[attr-defined]
        groups = shard_symbols(names, shard_count(symbols, 1))  # as the engine shards them
        shards = [
            StreamShard.remote(i, exchange.url.replace("http", "ws"), exchange.url, group, ["1m"])  # type: ignore[attr-defined]
            for i, group in enumerate(groups)
        ]
        ray.get([shard.start.remote() for shard in shards], timeout=300)
        deadline = time.monotonic() + 180
        while not all((ray.get(s.frame.remote("1m"), timeout=60).last_open_time >= 0).all() for s in shards):
            if time.monotonic() > deadline:
                raise RuntimeError("the shards did not backfill every symbol within 180 s")
            time.sleep(0.5)
        filters = _trader_codes(codes)
        for i in range(traders):
            chosen = [names[(i * 7 + k * 13) % symbols] for k in range(symbols_per_trader)]
            trader = Trader.model_validate({"user_id": "bench", "name": f"bench-{i}", "symbols": chosen,
                                            "timeframes": ["1m"], "signal_code": filters[i % codes]})
            ray.get(store.call.remote("create_trader", trader), timeout=60)
        pool = create_workers(workers)
        # The driver plays the closes; the shards' own (real, once a minute) notices stay out.
        scheduler = Scheduler.remote(settings, store, None, pool, shards, subscribe_shards=False,  # type: ignore[attr-defined]
                                     min_filters_per_batch=min_filters_per_batch)
        if ray.get(scheduler.start.remote(), timeout=300) != traders:
            raise RuntimeError("the scheduler did not load every bench trader")
        if push:
            ray.get([shard.subscribe.remote(scheduler=scheduler) for shard in shards], timeout=60)
        base = (int(time.time() * 1000) // 60_000 + 10) * 60_000  # candles newer than any real one
        period_s = traders / offered_checks_per_s
        sent: list[Any] = []

        def play(first_round: int, seconds: float) -> int:
            """Send a close of every symbol each period, on a fixed schedule; returns the next round."""
            rounds = max(1, round(seconds / period_s))
            started = time.perf_counter()
            for k in range(rounds):
                pause = started + k * period_s - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                open_time = base + (first_round + k) * 60_000
                if push:
                    sent.extend(shard.announce_closes.remote([(symbol, "1m", open_time) for symbol in group])
                                for shard, group in zip(shards, groups, strict=True))
                else:
                    sent.append(scheduler.on_candles_closed.remote([(symbol, "1m", open_time) for symbol in names]))
            return first_round + rounds

        next_round = play(0, warmup_s)
        if ray.get(scheduler.drain.remote(60.0), timeout=90):
            raise RuntimeError("warm-up checks still in flight after 60 s")
        load_before = os.getloadavg()
        before = ray.get(scheduler.stats.remote(reset_latency=True), timeout=60)
        started = time.perf_counter()
        bursts = play(next_round, duration_s) - next_round
        offered_s = time.perf_counter() - started
        if ray.get(scheduler.drain.remote(60.0), timeout=90):
            raise RuntimeError("checks still in flight 60 s after the last close")
        elapsed = time.perf_counter() - started
        after = ray.get(scheduler.stats.remote(), timeout=60)
        replies = ray.get(sent, timeout=60)
        shard_health = ray.get([shard.health.remote() for shard in shards], timeout=60)
        notices = max(1, sum(h["frames_pushed"] for h in shard_health))
        if push and not all(replies):
            raise RuntimeError("a shard had no scheduler to send its closes to")
        checks = after["checks_run"] - before["checks_run"]
        delta = {key: after[key] - before[key] for key in ("dropped", "errors")}
        return {
            "checks_per_s": round(checks / elapsed, 1),
            "check_p99_ms": after["p99_check_ms"],
            "check_avg_ms": after["avg_check_ms"],
            "offered_checks_per_s": round(traders * bursts / (offered_s + period_s), 1),
            "e2e_checks_offered": traders * bursts,
            "e2e_checks": checks,
            "e2e_elapsed_s": round(elapsed, 2),
            "e2e_drain_s": round(elapsed - offered_s, 3),
            "e2e_dropped": delta["dropped"],
            "e2e_check_errors": delta["errors"],
            "e2e_batches": after["batches"] - before["batches"],
            "e2e_frame_requests": after["frame_requests"] - before["frame_requests"],
            "e2e_pushed_frame_uses": after["pushed_frame_uses"] - before["pushed_frame_uses"],
            "e2e_push": push,
            # With push, a shard builds and puts its frame before the scheduler hears of the close;
            # check_*_ms start when the shard saw the close, so this is inside them: per notice.
            "e2e_shard_notice_avg_ms": round(sum(h["frame_push_ms_total"] for h in shard_health) / notices, 3),
            "e2e_shard_notice_max_ms": round(max(h["frame_push_ms_max"] for h in shard_health), 3),
            "e2e_min_filters_per_batch": min_filters_per_batch,
            "e2e_traders": traders,
            "e2e_symbols": symbols,
            "e2e_workers": len(pool),
            "e2e_signals_created": after["signals_created"],
            **{f"e2e_{key}": after[key] for key in sorted(after) if key.endswith("_ms") and key[4:-3] in STAGES},
            "load_avg_e2e": [round(x, 2) for x in load_before],
        }
    finally:
        exchange.stop()
        ray.shutdown()


if __name__ == "__main__":
    import os
    import sys

    results: dict[str, Any] = {"load_avg_start": [round(x, 2) for x in os.getloadavg()], **measure()}
    if "--no-e2e" not in sys.argv:
        rate = float(sys.argv[sys.argv.index("--rate") + 1]) if "--rate" in sys.argv else 1250.0
        pool_size = int(sys.argv[sys.argv.index("--workers") + 1]) if "--workers" in sys.argv else None
        min_filters = int(sys.argv[sys.argv.index("--min-filters") + 1]) if "--min-filters" in sys.argv else 1
        results.update(measure_checks(offered_checks_per_s=rate, workers=pool_size, push="--pull" not in sys.argv,
                                      min_filters_per_batch=min_filters))
    results["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(results))
