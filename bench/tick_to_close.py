"""Tick-to-close benchmark: a price push that crosses a stop-loss, to the position stored as closed.

Real Monitor, Executor, Store and EventHub actors on a fresh local Ray, paper broker, SQLite. Opens
``--triggers`` positions (spread over ``--symbols`` symbols, staggered stops), then pushes one
price at a time, ``--interval`` seconds apart, each crossing exactly one stop. Latency per
trigger: from just before ``Monitor.on_prices`` is called (the moment a stream shard hands its
price batch over) to the position's ``closed_at`` in SQLite (stamped inside the closing write,
just before its commit). The shard's own apply time (decode + buffer, p99 < 1 ms in
bench/ingest.py) adds on top; ``committed_p50_ms`` / ``committed_p99_ms`` run on to the commit of
that write (from the Store's stamps). The last line printed is one JSON object with p50_ms and p99_ms
(or ``{"error": ...}`` and exit status 1), and per stage of the close its p50/p99 and its mean over the
slowest 1 % of closes (``stages_ms``, ``slowest_1pct_stages_ms``: the actors stamp their local closes when
``AITRADER_CLOSE_STAMPS=1``, which this benchmark sets).

The path: the price push to the Monitor (by default over the Monitor's Unix socket, as a stream shard on
the Monitor's node sends it, actors/price_push.py; ``--push ray`` makes it the Ray call
``Monitor.on_prices`` a shard on another node makes) -> ``Executor.close_position`` ->
paper fill in memory -> ``Store.call_many``. The two inner hops go over Unix sockets, since all actors
run on one machine (aitrader/local_channel.py; a Ray call to an idle actor costs ~2 ms one
way here), as msgpack (aitrader/storage/wire.py); ``closes_local`` counts the closes answered that
way and ``local_fallbacks`` those sent again as Ray calls. Each paper fill writes the two balance
rows it moved (base and quote), its exit order and the position's close as ONE SQLite transaction
(``SQLStorage.apply_many``; the close is an ``UPDATE ... RETURNING``, and only its row is sent back),
committed before the Executor answers; the statements run as prepared statements on the DBAPI cursor
(aitrader/storage/prepared.py) and the order is validated without SQLAlchemy's instrumentation
(aitrader/storage/validate.py); WAL with ``synchronous=NORMAL``, checkpointed by the Store's
flusher every 100 commits, never inside a commit (see aitrader/storage/engine.py). Meanwhile the
Monitor's P&L marks of the other positions are queued in the Store and applied by its flusher, one
``mark_positions`` transaction per run of up to 50 marks, none started while a close waits for the
Store's lock.

    RAY_USAGE_STATS_ENABLED=0 flock /tmp/aitrader-ray.lock .venv/bin/python bench/tick_to_close.py \
        [--triggers 1000] [--symbols 100] [--interval 0.02] [--push ray|local]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import ray

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.events import EventHub  # noqa: E402
from actors.executor import Executor  # noqa: E402
from actors.monitor import Monitor  # noqa: E402
from actors.store import Store  # noqa: E402
from aitrader.config import Settings  # noqa: E402
from aitrader.local_channel import LocalClient, encode_prices  # noqa: E402
from aitrader.models import PositionStatus  # noqa: E402

TIMEOUT = 300
STOP_STEP = Decimal("0.05")


def exchange_info(symbols: list[str]) -> dict[str, Any]:
    filters = [
        {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"},
        {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "100000", "stepSize": "0.001"},
        {"filterType": "NOTIONAL", "minNotional": "5", "applyMinToMarket": True, "maxNotional": "9000000",
         "applyMaxToMarket": False},
    ]
    return {"symbols": [{"symbol": s, "baseAsset": s.removesuffix("USDT"), "quoteAsset": "USDT", "filters": filters}
                        for s in symbols]}


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    per_symbol = -(-args.triggers // args.symbols)
    symbols = [f"SYM{i:03d}USDT" for i in range(args.symbols)]
    settings = Settings(user_id="bench", sqlite_path=home / "data.db", paper_trading=True,
                        paper_starting_balance=1_000_000_000, paper_slippage_bps=0,
                        max_open_positions=args.triggers)
    store = Store.remote(settings)
    events = EventHub.remote()
    executor = Executor.options(name="bench-executor").remote(settings, store, events, "bench-monitor",
                                                             exchange_info(symbols))
    monitor = Monitor.options(name="bench-monitor").remote(settings, store, events, executor)
    start_prices = {s: "100" for s in symbols}
    ray.get([executor.on_prices.remote(start_prices), monitor.on_prices.remote(start_prices, 0)], timeout=TIMEOUT)

    # Open the positions: symbol s, rung j has its stop at 99 - j * 0.05.
    position_of: dict[tuple[str, int], str] = {}
    started = time.perf_counter()
    for j in range(per_symbol):
        batch = [(s, j) for s in symbols][: args.triggers - len(position_of)]
        refs = [executor.submit_order.remote({"symbol": s, "side": "BUY", "quantity": "1",
                                              "stop_loss": str(99 - j * STOP_STEP)}) for s, _ in batch]
        for key, answer in zip(batch, ray.get(refs, timeout=TIMEOUT), strict=True):
            position_of[key] = answer["position"]["id"]
    deadline = time.monotonic() + TIMEOUT
    while ray.get(monitor.stats.remote(), timeout=TIMEOUT)["tracked"] < len(position_of):
        if time.monotonic() > deadline:
            raise RuntimeError("the monitor never tracked every position")
        time.sleep(0.1)
    print(f"opened {len(position_of)} positions in {time.perf_counter() - started:.1f} s", file=sys.stderr)

    # Trigger them one push at a time; each push crosses exactly one stop.
    client: LocalClient | None = None
    if args.push == "local":
        client = LocalClient(ray.get(monitor.price_address.remote(), timeout=TIMEOUT)[1])
    load_before = load()
    pushed_at: dict[str, float] = {}
    for j in range(per_symbol):
        for s in symbols:
            if (s, j) not in position_of:
                continue
            price = str(99 - j * STOP_STEP - Decimal("0.01"))
            pushed_at[position_of[(s, j)]] = time.time()
            if client is not None:
                client.call(encode_prices({s: price}, int(time.time() * 1000)))
            else:
                monitor.on_prices.remote({s: price}, int(time.time() * 1000))
            time.sleep(args.interval)

    deadline = time.monotonic() + TIMEOUT
    while True:
        stored = ray.get(store.call.remote("list_positions", "bench", limit=10_000), timeout=TIMEOUT)
        still_open = [p for p in stored if p.status is PositionStatus.OPEN]
        if not still_open:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(still_open)} positions were never closed")
        time.sleep(0.2)
    latencies = [(p.closed_at.timestamp() - pushed_at[p.id]) * 1000 for p in stored if p.id in pushed_at]
    exits = [o for o in ray.get(store.call.remote("list_orders", "bench", limit=10_000), timeout=TIMEOUT)
             if o.purpose == "exit"]
    stats = ray.get(monitor.stats.remote(), timeout=TIMEOUT)
    closed_at = {p.id: p.closed_at.timestamp() for p in stored if p.id in pushed_at}
    stages = close_stages(pushed_at, closed_at, ray.get(executor.close_stamps.remote(), timeout=TIMEOUT),
                          ray.get(store.close_stamps.remote(), timeout=TIMEOUT))
    return {
        "benchmark": "tick_to_close",
        "triggers": len(latencies),
        "exit_orders": len(exits),
        "close_failures": stats["close_failures"],
        "closes_local": stats["closes_local"],
        "local_fallbacks": stats["local_fallbacks"],
        "symbols": args.symbols,
        "interval_s": args.interval,
        "push": args.push,
        "p50_ms": round(percentile(latencies, 50), 2),
        "p99_ms": round(percentile(latencies, 99), 2),
        "max_ms": round(max(latencies), 2),
        "mean_ms": round(statistics.fmean(latencies), 2),
        **stages,
        "load_before": load_before,
        "load_after": load(),
        "measured": "price push to the Monitor -> closed_at in SQLite; add the shard's apply time (p99 < 1 ms)",
    }


#: The stages of a close, between the stamps `close_stages` lines up (all epoch seconds, one machine's clock).
STAGES = ("push_to_executor", "executor_lock_wait", "executor_before_write", "to_store", "store_lock_wait",
          "store_to_closed_at", "closed_at_to_commit")


def close_stages(pushed_at: dict[str, float], closed_at: dict[str, float],
                 executor_stamps: list[tuple[str, list[float]]],
                 store_stamps: list[tuple[str, list[float]]]) -> dict[str, Any]:
    """p50/p99 of each stage (ms), and each stage's mean over the slowest 1 % of closes (where p99 comes from):
    push -> Executor received (Monitor + two socket hops) -> its lock -> writes sent (Executor CPU) -> Store
    received -> its lock -> closed_at stamped -> committed."""
    executor = {position_id: stamps for position_id, stamps in executor_stamps if len(stamps) == 5}
    store = dict(store_stamps)
    rows: list[tuple[float, list[float]]] = []
    committed_ms: list[float] = []
    for position_id, pushed in pushed_at.items():
        if position_id not in executor or position_id not in store or position_id not in closed_at:
            continue
        received, locked, sent, _answered, _done = executor[position_id]
        store_received, store_locked, committed = store[position_id]
        closed = closed_at[position_id]
        points = [pushed, received, locked, sent, store_received, store_locked, closed, committed]
        rows.append((closed - pushed, [(b - a) * 1000 for a, b in zip(points, points[1:], strict=False)]))
        committed_ms.append((committed - pushed) * 1000)
    if not rows:
        return {"stages_ms": None}
    rows.sort(key=lambda row: row[0])
    slowest = rows[-max(1, len(rows) // 100):]
    return {
        # Push -> the closing transaction committed (closed_at is stamped inside it, before the commit).
        "committed_p50_ms": round(percentile(committed_ms, 50), 2),
        "committed_p99_ms": round(percentile(committed_ms, 99), 2),
        "stages_ms": {name: [round(percentile([r[1][i] for r in rows], 50), 2),
                             round(percentile([r[1][i] for r in rows], 99), 2)] for i, name in enumerate(STAGES)},
        "slowest_1pct_stages_ms": {name: round(statistics.fmean(r[1][i] for r in slowest), 2)
                                   for i, name in enumerate(STAGES)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triggers", type=int, default=1000)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.02, help="seconds between price pushes")
    parser.add_argument("--push", choices=("ray", "local"), default="local",
                        help="how prices reach the Monitor: its socket (as a shard on its node sends them) or a "
                             "Ray call (as a shard on another node does)")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ["AITRADER_CLOSE_STAMPS"] = "1"  # inherited by the local Ray's workers: the actors stamp closes
    home = Path(tempfile.mkdtemp(prefix="tick-to-close-"))
    try:
        ray.init(address="local", include_dashboard=False, num_cpus=4, log_to_driver=False,
                 namespace="bench-tick-to-close",
                 runtime_env={"env_vars": {"RAY_USAGE_STATS_ENABLED": "0"}})
        result = run(args, home)
    except BaseException as error:  # also Ctrl-C and an outer timeout's SIGTERM (see the handler below)
        print(json.dumps({"benchmark": "tick_to_close", "error": f"{type(error).__name__}: {error}"}))
        raise SystemExit(1) from None
    finally:
        ray.shutdown()
        shutil.rmtree(home, ignore_errors=True)
    print(json.dumps(result))


def _terminated(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt("SIGTERM")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _terminated)
    main()
