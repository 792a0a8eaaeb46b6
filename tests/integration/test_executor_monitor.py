"""Executor + Monitor + Store + EventHub on a real local Ray: exactly-once closes, even when the Executor dies."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import ray

from actors.events import EventHub
from actors.executor import Executor
from actors.monitor import Monitor
from actors.store import Store
from aitrader.config import Settings
from aitrader.exchange import ExchangeThread, secret_for
from aitrader.local_channel import LocalClient, decode_count, encode_prices
from aitrader.models import OrderStatus, PositionStatus

pytestmark = [pytest.mark.usefixtures("ray_session"), pytest.mark.timeout(900)]
TIMEOUT = 60
#: How long to wait for an outcome after a kill: a restart on a loaded 2-core machine can be slow.
RECOVERY = 300


def exchange_info(*symbols: str) -> dict[str, Any]:
    return {"symbols": [{
        "symbol": symbol, "baseAsset": symbol.removesuffix("USDT"), "quoteAsset": "USDT",
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"},
            {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "100000", "stepSize": "0.001"},
            {"filterType": "NOTIONAL", "minNotional": "5", "applyMinToMarket": True, "maxNotional": "9000000",
             "applyMaxToMarket": False},
        ]} for symbol in symbols]}


def wait_for(condition: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Engine:
    def __init__(self, settings: Settings, store: Any, events: Any, executor: Any, monitor: Any) -> None:
        self.settings, self.store, self.events, self.executor, self.monitor = settings, store, events, executor, monitor

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return ray.get(self.store.call.remote(method, *args, **kwargs), timeout=TIMEOUT)

    def exit_orders(self, position_id: str) -> list[Any]:
        return [o for o in self.call("list_orders", self.settings.user_id, limit=10_000)
                if o.position_id == position_id and o.purpose == "exit"]


def start_engine(settings: Settings, exchange: dict[str, Any] | None) -> Engine:
    tag = uuid.uuid4().hex[:8]
    store = Store.options(name=f"store-{tag}").remote(settings)
    events = EventHub.options(name=f"events-{tag}").remote()
    executor = Executor.options(name=f"executor-{tag}").remote(settings, store, events, f"monitor-{tag}", exchange)
    monitor = Monitor.options(name=f"monitor-{tag}").remote(settings, store, events, executor)
    ray.get([executor.ping.remote(), monitor.ping.remote()], timeout=TIMEOUT)
    return Engine(settings, store, events, executor, monitor)


@pytest.fixture(scope="module")
def paper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    home = tmp_path_factory.mktemp("executor-monitor")
    settings = Settings(user_id="alice", sqlite_path=home / "data.db", paper_trading=True,
                        paper_starting_balance=1_000_000, paper_slippage_bps=0, max_open_positions=50)
    engine = start_engine(settings, exchange_info("BTCUSDT"))
    ray.get(engine.executor.on_prices.remote({"BTCUSDT": "100"}), timeout=TIMEOUT)
    yield engine
    for actor in (engine.monitor, engine.executor, engine.events, engine.store):
        ray.kill(actor)


def open_long(engine: Engine, stop_loss: str) -> dict[str, Any]:
    ray.get([engine.executor.on_prices.remote({"BTCUSDT": "100"}),
             engine.monitor.on_prices.remote({"BTCUSDT": "100"}, 0)], timeout=TIMEOUT)
    answer = ray.get(engine.executor.submit_order.remote(
        {"symbol": "BTCUSDT", "side": "BUY", "quantity": "1", "stop_loss": stop_loss}), timeout=TIMEOUT)
    position = answer["position"]
    wait_for(lambda: any(p["id"] == position["id"] for p in ray.get(engine.monitor.snapshot.remote(), timeout=TIMEOUT)),
             "the monitor to track the position")
    return position


def closed(engine: Engine, position_id: str) -> Any:
    position = engine.call("get_position", position_id)
    return position if position.status is not PositionStatus.OPEN else None


def test_the_monitor_closes_a_position_exactly_once_under_a_burst_of_prices(paper: Engine) -> None:
    # Arrange
    position = open_long(paper, stop_loss="95")
    # Act: a burst through the stop, every price below it
    refs = [paper.monitor.on_prices.remote({"BTCUSDT": str(price)}, int(time.time() * 1000))
            for price in ["99", "96", *[f"{94 - i * 0.25:.2f}" for i in range(40)]]]
    started = sum(ray.get(refs, timeout=TIMEOUT))
    stored = wait_for(lambda: closed(paper, position["id"]), "the position to be closed")
    # Assert
    assert started == 1
    assert stored.status is PositionStatus.STOPPED and stored.close_reason == "stop_loss"
    # A market exit fills at the price the market has when it arrives: at or through the stop
    # (94 is the first price through it; the burst kept falling while the close was on its way).
    assert Decimal("84") <= stored.exit_price <= Decimal("94")
    [exit_order] = paper.exit_orders(position["id"])
    assert exit_order.status is OrderStatus.FILLED and stored.exit_order_id == exit_order.id
    wait_for(lambda: not any(p["id"] == position["id"] for p in ray.get(paper.monitor.snapshot.remote(), timeout=TIMEOUT)),
             "the monitor to forget the closed position")


def test_closes_and_their_writes_take_the_local_channels_on_one_machine(paper: Engine) -> None:
    # Arrange
    position = open_long(paper, stop_loss="95")
    before = ray.get(paper.monitor.stats.remote(), timeout=TIMEOUT)

    # Act
    paper.monitor.on_prices.remote({"BTCUSDT": "94"}, int(time.time() * 1000))
    stored = wait_for(lambda: closed(paper, position["id"]), "the position to be closed")

    # Assert: the Monitor's close went over the Executor's socket, and the Executor's writes over the Store's
    after = wait_for(lambda: (stats := ray.get(paper.monitor.stats.remote(), timeout=TIMEOUT))["closes_local"]
                     > before["closes_local"] and stats, "the close's answer")
    assert after["local_channel"] and after["local_fallbacks"] == before["local_fallbacks"]
    assert after["gc_automatic"] is False  # collected from its tick, between pushes, never inside one
    assert ray.get(paper.executor.health.remote(), timeout=TIMEOUT)["store_channel"]
    assert stored.status is PositionStatus.STOPPED and len(paper.exit_orders(position["id"])) == 1


def test_a_price_pushed_over_the_monitors_socket_closes_a_position(paper: Engine) -> None:
    # Arrange
    position = open_long(paper, stop_loss="95")
    _node, path = ray.get(paper.monitor.price_address.remote(), timeout=TIMEOUT)
    client = LocalClient(path)

    # Act: what a stream shard on this machine may send instead of a Ray call
    started = decode_count(client.call(encode_prices({"BTCUSDT": "94.5"}, int(time.time() * 1000))))
    client.close()

    # Assert
    stored = wait_for(lambda: closed(paper, position["id"]), "the position to be closed")
    assert started == 1 and stored.close_reason == "stop_loss"
    assert len(paper.exit_orders(position["id"])) == 1


def test_a_push_overtaken_by_a_newer_one_is_dropped(paper: Engine) -> None:
    # Arrange
    position = open_long(paper, stop_loss="90")
    now_ms = int(time.time() * 1000)
    # Act: the newer push is handled first, then an older one below the stop arrives
    newer = ray.get(paper.monitor.on_prices.remote({"BTCUSDT": "101"}, now_ms), timeout=TIMEOUT)
    older = ray.get(paper.monitor.on_prices.remote({"BTCUSDT": "89"}, now_ms - 1_000), timeout=TIMEOUT)
    # Assert: the stale price neither marked the position nor fired its stop
    [watched] = [p for p in ray.get(paper.monitor.snapshot.remote(), timeout=TIMEOUT) if p["id"] == position["id"]]
    assert (newer, older) == (0, 0)
    assert Decimal(watched["current_price"]) == 101 and not watched["closing"]
    ray.get(paper.executor.close_position.remote(position["id"], "manual"), timeout=TIMEOUT)


def close_stats(engine: Engine) -> tuple[int, int]:
    stats = ray.get(engine.monitor.stats.remote(), timeout=RECOVERY)
    return stats["closes_sent"], stats["close_failures"]


@pytest.mark.parametrize("delay_s", [0.0, 0.003, 0.02])
def test_a_close_survives_the_executor_being_killed_mid_close(paper: Engine, delay_s: float) -> None:
    # Arrange
    position = open_long(paper, stop_loss="90")
    pid = ray.get(paper.executor.pid.remote(), timeout=TIMEOUT)
    sent_before, failed_before = close_stats(paper)
    # Act: trigger the stop, then kill the executor's process while the close is on its way
    trigger = paper.monitor.on_prices.remote({"BTCUSDT": "89"}, 0)
    time.sleep(delay_s)
    os.kill(pid, signal.SIGKILL)
    more = [paper.monitor.on_prices.remote({"BTCUSDT": price}, 0) for price in ("88", "87", "89")]
    stored = wait_for(lambda: closed(paper, position["id"]), "the position to be closed after the restart", RECOVERY)
    wait_for(lambda: not any(p["id"] == position["id"] for p in ray.get(paper.monitor.snapshot.remote(),
                                                                          timeout=RECOVERY)),
             "the monitor to forget the closed position", RECOVERY)
    # Assert: the monitor decided to close once; any further close request was a retry of a failed one.
    # (Which push fired is not fixed: Ray runs an async actor's calls in no guaranteed order, so with
    # no delay "88" may be handled before "89" — the quarantined failure was this, `trigger == 0`.)
    started = ray.get(trigger, timeout=RECOVERY) + sum(ray.get(more, timeout=RECOVERY))
    sent, failed = close_stats(paper)
    assert sent - sent_before == 1 + (failed - failed_before)
    assert 1 <= started <= sent - sent_before
    assert ray.get(paper.executor.pid.remote(), timeout=RECOVERY) != pid
    # "recovered" when the executor died after the exit filled: its restart finished the close
    assert stored.close_reason in ("stop_loss", "recovered") and stored.exit_price is not None
    exits = paper.exit_orders(position["id"])
    filled = [o for o in exits if o.status is OrderStatus.FILLED]
    # an exit stored but never filled when the executor died is expired on restart, and a new one is sent
    assert len(filled) == 1 and stored.exit_order_id == filled[0].id, [(o.status, o.executed_qty) for o in exits]
    assert all(o.status is OrderStatus.EXPIRED and o.executed_qty == 0 for o in exits if o not in filled)
    balances = {b.asset: b.free for b in paper.call("get_balances", "alice")}
    open_positions = paper.call("list_positions", "alice", status=PositionStatus.OPEN)
    assert balances.get("BTC", 0) == sum(p.size for p in open_positions)  # no double sell


@pytest.mark.parametrize("delay_s", [0.0, 0.02])
def test_a_close_survives_the_monitor_being_killed_mid_close(paper: Engine, delay_s: float) -> None:
    # Arrange
    position = open_long(paper, stop_loss="90")
    pid = ray.get(paper.monitor.pid.remote(), timeout=TIMEOUT)
    # Act: trigger the stop, kill the monitor; the market stays below the stop while it restarts
    paper.monitor.on_prices.remote({"BTCUSDT": "89"}, 0)
    time.sleep(delay_s)
    os.kill(pid, signal.SIGKILL)

    def closed_while_prices_arrive() -> Any:
        paper.monitor.on_prices.remote({"BTCUSDT": "89"}, 0)
        time.sleep(0.25)
        return closed(paper, position["id"])

    stored = wait_for(closed_while_prices_arrive, "the position to be closed after the monitor restarted", RECOVERY)
    # Assert: the restarted monitor (which reloaded the open positions from storage) closed nothing twice
    assert ray.get(paper.monitor.pid.remote(), timeout=RECOVERY) != pid
    wait_for(lambda: not any(p["id"] == position["id"] for p in ray.get(paper.monitor.snapshot.remote(),
                                                                          timeout=RECOVERY)),
             "the restarted monitor to forget the closed position", RECOVERY)
    assert stored.close_reason == "stop_loss" and stored.status is PositionStatus.STOPPED
    [exit_order] = paper.exit_orders(position["id"])
    assert exit_order.status is OrderStatus.FILLED and stored.exit_order_id == exit_order.id
    balances = {b.asset: b.free for b in paper.call("get_balances", "alice")}
    open_positions = paper.call("list_positions", "alice", status=PositionStatus.OPEN)
    assert balances.get("BTC", 0) == sum(p.size for p in open_positions)


def balances_of(engine: Engine) -> dict[str, tuple[Decimal, Decimal]]:
    return {b.asset: (b.free, b.locked) for b in engine.call("get_balances", "alice")}


def test_money_writes_survive_the_store_being_killed_right_after_they_are_acknowledged(paper: Engine) -> None:
    # Arrange (runs last in this module: it kills the shared Store)
    ray.get(paper.executor.on_prices.remote({"BTCUSDT": "100"}), timeout=TIMEOUT)
    before = balances_of(paper)
    store_pid = ray.get(paper.store.pid.remote(), timeout=TIMEOUT)
    # Act: a market buy, its close, and a resting limit buy, each acknowledged; then kill -9 the Store at once
    bought = ray.get(paper.executor.submit_order.remote(
        {"symbol": "BTCUSDT", "side": "BUY", "quantity": "1"}), timeout=TIMEOUT)
    sold = ray.get(paper.executor.close_position.remote(bought["position"]["id"], "manual"), timeout=TIMEOUT)
    resting = ray.get(paper.executor.submit_order.remote(
        {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "price": "50", "quantity": "1"}), timeout=TIMEOUT)
    os.kill(store_pid, signal.SIGKILL)
    # Assert: a restarted Store reads back everything that was acknowledged
    assert ray.get(paper.store.pid.remote(), timeout=RECOVERY) != store_pid
    assert resting["status"] == "NEW" and sold["status"] == "closed"
    limit = paper.call("get_order_by_client_id", resting["client_order_id"])
    assert limit is not None and limit.status is OrderStatus.NEW
    market = paper.call("get_order_by_client_id", bought["client_order_id"])
    assert market is not None and market.status is OrderStatus.FILLED and market.executed_qty == 1
    position = paper.call("get_position", bought["position"]["id"])
    [exit_order] = paper.exit_orders(position.id)
    assert position.status is PositionStatus.CLOSED and position.exit_order_id == exit_order.id
    assert exit_order.status is OrderStatus.FILLED
    after = balances_of(paper)
    # bought 1 BTC at 100 and sold it at 100 (0.1 % fee each way), then locked 1 x 50 (+0.1 %) for the limit
    assert after["BTC"][0] == before.get("BTC", (Decimal(0), Decimal(0)))[0]
    assert after["USDT"][0] == before["USDT"][0] - Decimal("100.1") + Decimal("99.9") - Decimal("50.05")
    assert after["USDT"][1] == before["USDT"][1] + Decimal("50.05")


def test_live_mode_through_the_executor_against_the_local_exchange(local_exchange: ExchangeThread,
                                                                   tmp_path: Path) -> None:
    # Arrange: a fresh, funded account on the local exchange
    api_key = f"test{uuid.uuid4().hex}"
    settings = Settings(user_id="bob", sqlite_path=tmp_path / "live.db", paper_trading=False,
                        binance_api_url=local_exchange.url, binance_api_key=api_key,
                        binance_secret_key=secret_for(api_key))
    engine = start_engine(settings, None)
    try:
        # Act
        answer = ray.get(engine.executor.submit_order.remote(
            {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.01"}), timeout=TIMEOUT)
        position = answer["position"]
        closed_view = ray.get(engine.executor.close_position.remote(position["id"], "manual"), timeout=TIMEOUT)
        again = ray.get(engine.executor.close_position.remote(position["id"], "manual"), timeout=TIMEOUT)
        # Assert: the BUY's commission is taken in BTC, so the position holds a little less than 0.01
        assert answer["status"] == "FILLED" and answer["mode"] == "live"
        assert 0 < float(position["size"]) <= 0.01
        assert closed_view["status"] == "closed" and closed_view["exit_price"] is not None and again == closed_view
        [exit_order] = engine.exit_orders(position["id"])
        assert exit_order.exchange_order_id and exit_order.status is OrderStatus.FILLED
        health = ray.get(engine.executor.health.remote(), timeout=TIMEOUT)
        assert health["mode"] == "live" and health["entries_blocked"] is None and health["open_positions"] == 0
    finally:
        for actor in (engine.monitor, engine.executor, engine.events, engine.store):
            ray.kill(actor)
