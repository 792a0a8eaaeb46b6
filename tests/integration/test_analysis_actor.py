"""SignalAnalyst on a real local Ray: a signal left pending by a crash is re-queued on start, a
submitted one is analysed; both get confidence, reasoning and a decision, and events are published."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import ray

from actors.analysis import SignalAnalyst
from actors.events import EventHub
from actors.store import Store
from aitrader.config import Settings
from aitrader.market.buffers import MarketFrame
from aitrader.models import Signal, SignalStatus, Trader
from aitrader.views import signal_view, trader_view

T = 60.0


@ray.remote(num_cpus=0)
class CandleShard:
    """Serves a fixed uptrend for one symbol, like `StreamShard.frame`."""

    def frame(self, interval: str, symbols: list[str] | None = None, include_open: bool = False) -> MarketFrame:
        t = np.arange(120, dtype=np.float64)
        close = 100 * np.exp(0.003 * t) * (1 + 0.004 * np.sin(t * 1.3))
        opened = np.r_[close[0], close[:-1]]
        rows = [opened, np.maximum(opened, close) * 1.002, np.minimum(opened, close) * 0.998, close,
                np.r_[np.linspace(100, 150, 119), 300.0]]
        return MarketFrame(interval, ("BTCUSDT",), *(r[None, :] for r in rows),
                           np.array([0], dtype=np.int64), np.array([False]))


def test_analyst_recovers_and_analyses_signals(ray_session: None, tmp_path: Path) -> None:
    tag = str(time.time_ns())
    settings = Settings(user_id="tester", sqlite_path=tmp_path / "analysis.db", enable_auto_trading=False)
    store = Store.options(name=f"analysis-store-{tag}").remote(settings)  # type: ignore[attr-defined]
    hub = EventHub.options(name=f"analysis-hub-{tag}").remote()  # type: ignore[attr-defined]
    shard = CandleShard.remote()  # type: ignore[attr-defined]
    trader = ray.get(store.call.remote("create_trader", Trader.model_validate(
        {"user_id": "tester", "name": "trend", "symbols": ["BTCUSDT"], "signal_code": "close[-1] > 0"})), timeout=T)

    def new_signal(candle_time: int) -> Signal:
        signal = Signal.model_validate({"trader_id": trader.id, "user_id": "tester", "symbol": "BTCUSDT",
                                        "timeframe": "1m", "candle_time": candle_time, "trigger_price": "143",
                                        "meta": {"conditions": ["close[-1] > 0"]}})
        return ray.get(store.call.remote("create_signal", signal), timeout=T)[0]

    left_over = new_signal(60_000)
    analyst = SignalAnalyst.options(name=f"analyst-{tag}").remote(  # type: ignore[attr-defined]
        settings, store, hub, [shard])
    try:
        assert ray.get(analyst.start.remote(), timeout=T) == 1
        fresh = new_signal(120_000)
        ray.get(analyst.submit.remote(signal_view(fresh, "trend"), trader_view(trader)), timeout=T)

        def finished() -> list[Signal]:
            signals = ray.get(store.call.remote("list_signals", trader_id=trader.id), timeout=T)
            return [s for s in signals if s.status in (SignalStatus.EXECUTED, SignalStatus.CANCELLED)]

        deadline = time.monotonic() + 120
        while len(finished()) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        done = {s.id: s for s in finished()}
        assert set(done) == {left_over.id, fresh.id}
        for signal in done.values():
            assert signal.confidence is not None and signal.reasoning and "RSI" in signal.reasoning
            assert signal.meta["decision"] in {"enter", "wait", "skip"}
            assert signal.meta["conditions"] == ["close[-1] > 0"]  # merged, not replaced
            assert signal.stop_loss is not None and signal.stop_loss < 143 < (signal.target_price or 0)
            expected = SignalStatus.EXECUTED if signal.meta["decision"] == "enter" else SignalStatus.CANCELLED
            assert signal.status is expected
        batch = ray.get(hub.since.remote(0, ["analysis"], 0.0, 100), timeout=T)
        assert {e.data["signal_id"] for e in batch.events} == {left_over.id, fresh.id}
        stats = ray.get(analyst.stats.remote(), timeout=T)
        assert stats["completed"] == 2 and stats["recovered"] == 1 and stats["analyzer"] == "rules"
    finally:
        for actor in (analyst, shard, hub, store):
            ray.kill(actor, no_restart=True)
