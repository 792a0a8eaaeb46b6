"""Kill -9 the whole `aitrader up` (its process group and every process of its Ray session), start
it again on the same AITRADER_HOME: traders, open positions, balances, orders and signals are
exactly as before the kill (compared through the API and in the SQLite file)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.engine import (
    client,
    engine_pids,
    free_port,
    kill_all,
    launch,
    session_names,
    wait_gone,
    wait_healthy,
)

STARTUP_DEADLINE_S = 300.0
SYMBOLS = ["BTCUSDT", "ETHUSDT"]
#: Fields of a position that only prices change (marks move on while the engine is down).
MARKS = {"current_price", "best_price", "pnl", "pnl_pct", "updated_at"}


def _stop(process: Any, sessions: set[str]) -> None:
    """Kill whatever is left of one engine run, by pid only."""
    pids = engine_pids(process.pid, sessions)
    if process.poll() is None:
        pids.add(process.pid)
    kill_all(pids)
    wait_gone(pids, 60)
    process.wait(timeout=30)


def _state(api: httpx.Client, trader_id: str) -> dict[str, Any]:
    """What must survive a crash, as the API shows it (position marks excluded: prices move on)."""
    def get(path: str, key: str, **params: Any) -> list[dict[str, Any]]:
        answer = api.get(path, params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()[key]

    positions = [{k: v for k, v in p.items() if k not in MARKS} for p in get("/api/positions", "positions")]
    balances = api.get("/api/balance").json()["balances"]
    return {
        # A trader's signal count keeps growing once the engine is back: everything else must match.
        "traders": sorted(({k: v for k, v in t.items() if k != "signal_count"} for t in get("/api/traders", "traders")),
                          key=lambda t: t["id"]),
        "positions": sorted(positions, key=lambda p: p["id"]),
        "balances": balances,
        "orders": sorted(get("/api/orders", "orders", limit=1000), key=lambda o: o["client_order_id"]),
        "signals": {s["id"]: s for s in get("/api/signals", "signals", trader_id=trader_id, limit=1000)},
    }


def _stored_signal_ids(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM signals")}


@pytest.mark.timeout(1200)  # two full engine start-ups on a 2-core machine
def test_kill_9_of_the_whole_engine_then_start_again_loses_nothing(tmp_path: Path) -> None:
    home, port = tmp_path, free_port()
    first = launch(home, port)
    sessions: set[str] = set()
    pids: set[int] = set()
    try:
        wait_healthy(first, port, STARTUP_DEADLINE_S)
        with client(home, port) as api:
            trader = api.post("/api/traders", json={
                "name": "restart", "symbols": SYMBOLS, "timeframes": ["1m"], "status": "active",
                "signal_code": "close[-1] > 0"})
            assert trader.status_code == 201, trader.text
            trader_id = trader.json()["id"]
            order = api.post("/api/orders", json={"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                                  "quote_quantity": "100", "client_order_id": "restart-1"})
            assert order.status_code == 201, order.text
            deadline = time.monotonic() + 120
            while len(_state(api, trader_id)["signals"]) < 4 and time.monotonic() < deadline:
                time.sleep(1)
            before = _state(api, trader_id)
            assert len(before["signals"]) >= 4, "the trader fires on the local exchange"
            assert [p["symbol"] for p in before["positions"] if p["status"] == "open"] == ["BTCUSDT"]
            pids = engine_pids(first.pid)
            sessions = session_names(pids)
            assert sessions, f"the engine's Ray session is found among {sorted(pids)}"
            os.killpg(first.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            first.wait(timeout=30)
        # Ray's workers run in sessions of their own: do they outlive the killed process group?
        time.sleep(10)
        survivors = {p for p in pids | engine_pids(first.pid, sessions) if Path(f"/proc/{p}").exists()}
        kill_all(survivors)
        wait_gone(pids | survivors, 60)
        stored = _stored_signal_ids(home / "data.db")
    finally:
        _stop(first, sessions)

    second = launch(home, port)
    sessions2: set[str] = set()
    try:
        wait_healthy(second, port, STARTUP_DEADLINE_S)
        restarted_s = time.monotonic() - killed_at
        sessions2 = session_names(engine_pids(second.pid))
        with client(home, port) as api:
            after = _state(api, trader_id)
        assert after["traders"] == before["traders"]
        assert after["positions"] == before["positions"], "open positions exactly as before"
        assert after["balances"] == before["balances"]
        assert after["orders"] == before["orders"], "no order lost or placed again"
        assert set(before["signals"]) <= stored, "every signal the API showed was stored"
        assert stored <= set(after["signals"]) | _stored_signal_ids(home / "data.db")
        for signal_id, seen in before["signals"].items():
            assert after["signals"].get(signal_id, seen) == seen, "stored signals unchanged"
        print(json.dumps({"test": "engine_restart", "processes": len(pids),
                          "processes_outliving_killpg_after_10s": len(survivors),
                          "signals_before_kill": len(stored), "restart_to_healthy_s": round(restarted_s, 1)}))
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        try:
            second.wait(timeout=120)
        finally:
            _stop(second, sessions2)
