"""Benchmark: one filter evaluation (vectorised) vs a TA-Lib per-symbol loop vs a pandas per-pair loop.

Prints one JSON object as its last line: ``eval_ms``, ``talib_loop_ms``, ``pandas_loop_ms`` (medians),
``eval_vs_talib`` and ``pandas_vs_eval``.  The measuring functions are importable so end-to-end
benchmarks can reuse them.  Run: ``.venv/bin/python bench/filters.py``.
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


if __name__ == "__main__":
    print(json.dumps(measure()))
