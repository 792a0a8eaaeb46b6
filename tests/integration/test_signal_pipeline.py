"""A trader's filter fires on the local exchange's data; exactly one signal per (symbol, candle) is
stored, through duplicate candle notices and a scheduler restart; hostile filters are contained."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from actors.events import EventHub
from actors.filter_pool import create_workers
from actors.scheduler import Scheduler
from actors.store import Store
from actors.stream import StreamShard
from aitrader.config import Settings
from aitrader.exchange import ExchangeConfig, start_in_thread
from aitrader.exchange.clock import ScaledClock
from aitrader.models import Trader

SPEED = 60.0  # a 1m candle closes every wall second
SYMBOLS = ("BTCUSDT", "ETHUSDT")
T = 60.0  # seconds for any single ray.get


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def market(ray_session: None, tmp_path: Path) -> Iterator[dict[str, Any]]:
    now = int(time.time() * 1000)
    anchor = now - now % 60_000
    exchange = start_in_thread(
        ExchangeConfig(port=0, seed=1, symbols=SYMBOLS, speed=SPEED, clock=ScaledClock(SPEED, anchor))
    )
    tag = f"{now}"
    settings = Settings(user_id="tester", sqlite_path=tmp_path / "signals.db", enable_auto_trading=False)
    store = Store.options(name=f"pipeline-store-{tag}").remote(settings)  # type: ignore[attr-defined]
    hub = EventHub.options(name=f"pipeline-hub-{tag}").remote()  # type: ignore[attr-defined]
    shard = StreamShard.options(name=f"pipeline-shard-{tag}").remote(  # type: ignore[attr-defined]
        0, exchange.url.replace("http", "ws"), exchange.url, list(SYMBOLS), ["1m"], None, 120
    )
    ray.get(shard.start.remote(), timeout=T)
    yield {"anchor": anchor, "tag": tag, "settings": settings, "store": store, "hub": hub, "shard": shard}
    ray.get(shard.stop.remote(), timeout=T)
    for actor in (shard, hub, store):
        ray.kill(actor, no_restart=True)
    exchange.stop()


def create_trader(store: Any, user_id: str, name: str, code: str) -> Trader:
    trader = Trader.model_validate(
        {"user_id": user_id, "name": name, "symbols": list(SYMBOLS), "timeframes": ["1m"], "signal_code": code}
    )
    return ray.get(store.call.remote("create_trader", trader), timeout=T)


def events(hub: Any, channel: str) -> list[Any]:
    return list(ray.get(hub.since.remote(0, [channel], 0.0, 10_000), timeout=T).events)


def test_one_signal_per_symbol_and_candle_through_duplicates_and_a_restart(market: dict[str, Any]) -> None:
    store, hub, shard = market["store"], market["hub"], market["shard"]
    trader = create_trader(store, "tester", "always", "close[-1] > 0")
    workers = create_workers(1)
    scheduler = Scheduler.options(name=f"pipeline-scheduler-{market['tag']}", max_restarts=-1).remote(  # type: ignore[attr-defined]
        market["settings"], store, hub, workers, [shard], None, SPEED, market["anchor"], health_poll_s=1.0
    )
    stats = lambda: ray.get(scheduler.stats.remote(), timeout=T)  # noqa: E731
    signals = lambda: ray.get(  # noqa: E731
        store.call.remote("list_signals", trader_id=trader.id, limit=10_000), timeout=T
    )
    assert ray.get(scheduler.start.remote(), timeout=T) == 1, "the scheduler loads active traders on start"

    wait_for(lambda: len({s.candle_time for s in signals()}) >= 3, 90, "signals for three candles")
    newest = max(s.candle_time for s in signals())
    duplicates = [(symbol, "1m", newest) for symbol in SYMBOLS]
    ray.get(scheduler.on_candles_closed.remote(duplicates), timeout=T)
    ray.get(scheduler.on_candles_closed.remote(duplicates), timeout=T)
    wait_for(lambda: stats()["skipped"] >= 1, 30, "notices of checked candles to be skipped")

    old_pid = ray.get(scheduler.pid.remote(), timeout=T)
    ray.kill(scheduler, no_restart=False)
    wait_for(lambda: _pid(scheduler) not in (None, old_pid), 90, "the scheduler to restart")
    assert stats()["traders"] == 1, "a restarted scheduler reloads its traders"
    ray.get(scheduler.on_candles_closed.remote(duplicates), timeout=T)  # already stored: not created again
    def caught_up() -> bool:
        stored = signals()
        per_symbol = [sum(1 for s in stored if s.symbol == symbol) for symbol in SYMBOLS]
        return max(s.candle_time for s in stored) >= newest + 3 * 60_000 and min(per_symbol) >= 5

    wait_for(caught_up, 120, "signals after the restart on every symbol")

    assert stats()["pushed_frame_uses"] >= 1, "the shard's notices bring its frames along"
    ray.get(scheduler.pause.remote(), timeout=T)
    assert ray.get(scheduler.drain.remote(20.0), timeout=T) == 0
    stored = signals()
    keys = [(s.symbol, s.candle_time) for s in stored]
    assert len(keys) == len(set(keys)), "one signal per (symbol, candle)"
    for symbol in SYMBOLS:
        assert len([k for k in keys if k[0] == symbol]) >= 5
    assert all(s.meta["conditions"] == ["close[-1] > 0"] and "check_ms" in s.meta for s in stored)
    closes = ray.get(shard.candles.remote("BTCUSDT", "1m"), timeout=T)
    close_at = dict(zip(closes["open_times"], (row[3] for row in closes["values"]), strict=True))
    for signal in stored:
        if signal.symbol == "BTCUSDT" and signal.candle_time in close_at:
            assert float(signal.trigger_price) == close_at[signal.candle_time], "trigger price = that candle's close"
    created = [e for e in events(hub, "signals") if e.type == "signal_created"]
    assert sorted(e.data["id"] for e in created) == sorted(s.id for s in stored), "one event per created signal"
    ray.kill(scheduler, no_restart=True)
    for worker in workers:
        ray.kill(worker, no_restart=True)


def test_hostile_filters_are_rejected_or_contained(market: dict[str, Any]) -> None:
    store, hub, shard = market["store"], market["hub"], market["shard"]
    settings = market["settings"].model_copy(update={"user_id": "hostile"})
    broken = create_trader(store, "hostile", "broken", "close[-1] > 0 and __import__('os')")
    slow = create_trader(store, "hostile", "slow", "ema(close, 50)[-1] > 0")
    workers = create_workers(1, time_budget_s=1e-9)  # every evaluation overruns this budget
    worker_pid = ray.get(workers[0].pid.remote(), timeout=T)
    scheduler = Scheduler.options(name=f"hostile-scheduler-{market['tag']}").remote(  # type: ignore[attr-defined]
        settings, store, hub, workers, [shard], None, SPEED, market["anchor"]
    )
    assert ray.get(scheduler.start.remote(), timeout=T) == 1, "the broken filter is not scheduled"
    reply = ray.get(scheduler.upsert_trader.remote(broken.id), timeout=T)
    assert reply["ok"] is False and "line 1" in reply["error"]
    messages = [e.data["message"] for e in events(hub, "logs")]
    assert any("'broken'" in m and "does not compile" in m for m in messages)

    stats = lambda: ray.get(scheduler.stats.remote(), timeout=T)  # noqa: E731
    wait_for(lambda: stats()["error_kinds"].get("timeout", 0) >= 2, 60, "timeouts to be reported")
    assert stats()["errors"] >= 2 and stats()["signals_created"] == 0
    assert ray.get(workers[0].pid.remote(), timeout=T) == worker_pid, "the worker survived"
    assert any("'slow'" in e.data["message"] for e in events(hub, "logs"))
    assert ray.get(store.call.remote("list_signals", trader_id=slow.id), timeout=T) == []

    ray.get(scheduler.remove_trader.remote(slow.id), timeout=T)
    assert stats()["traders"] == 0
    ray.kill(scheduler, no_restart=True)
    ray.kill(workers[0], no_restart=True)


def _pid(actor: Any) -> int | None:
    try:
        return int(ray.get(actor.pid.remote(), timeout=5))
    except Exception:
        return None
