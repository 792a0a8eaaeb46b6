"""Several processes writing to one SQLite file at once lose no write."""

from __future__ import annotations

import multiprocessing
from decimal import Decimal
from pathlib import Path

from aitrader.models import Position, Signal, Trader
from aitrader.storage import SQLStorage, sqlite_url

WRITERS = 4
WRITES_EACH = 60


def _writer(url: str, trader_id: str, worker: int) -> None:
    storage = SQLStorage(url)
    for i in range(WRITES_EACH):
        storage.create_signal(
            Signal.model_validate(
                {
                    "trader_id": trader_id,
                    "user_id": "u",
                    "symbol": "BTCUSDT",
                    "timeframe": "1m",
                    "candle_time": (worker * WRITES_EACH + i) * 60_000,
                }
            )
        )
        storage.create_position(
            Position.model_validate(
                {"user_id": "u", "symbol": "ETHUSDT", "side": "LONG", "entry_price": Decimal("3000"), "size": Decimal(i + 1)}
            )
        )
        storage.heartbeat(f"writer-{worker}", "u", {"i": i})
    storage.close()


def test_concurrent_processes_lose_no_write(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "shared.db")
    storage = SQLStorage(url)
    trader = storage.create_trader(
        Trader.model_validate({"user_id": "u", "name": "t", "symbols": ["BTCUSDT"], "signal_code": "close[-1] > 0"})
    )
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_writer, args=(url, trader.id, w)) for w in range(WRITERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=180)
        assert process.exitcode == 0

    assert len(storage.list_signals(trader_id=trader.id, limit=10_000)) == WRITERS * WRITES_EACH
    assert len(storage.list_positions("u", limit=10_000)) == WRITERS * WRITES_EACH
    for worker in range(WRITERS):
        beat = storage.get_heartbeat(f"writer-{worker}")
        assert beat is not None and beat.info == {"i": WRITES_EACH - 1}
