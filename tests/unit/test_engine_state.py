from __future__ import annotations

from decimal import Decimal

from aitrader.config import load_settings
from aitrader.engine_state import EXAMPLE_TRADER, build_status, feed_state
from aitrader.filters import compile_filter
from aitrader.models import Trader


def shard(connected: bool = True, age: float | None = 1.0, **extra: object) -> dict:
    return {"connected": connected, "last_message_age_s": age, "symbols": ["BTCUSDT"], "latency_p50_ms": 4.0,
            "reconnects": 1, "gaps": 0, **extra}


def test_feed_is_stale_when_any_shard_is_down_or_silent() -> None:
    assert feed_state("local", [shard(), shard()]) == "local"
    assert feed_state("binance", [shard(), shard(connected=False)]) == "stale"
    assert feed_state("binance", [shard(age=120.0)]) == "stale"
    assert feed_state("binance", [shard(age=None)]) == "stale"
    assert feed_state("binance", []) == "stale"


def test_status_body() -> None:
    settings = load_settings(_env_file=None)
    status = build_status(
        settings=settings, running=True, feed="local", feed_note="offline", shards=[shard(), shard()],
        scheduler={"signals_created": 3, "avg_check_ms": 1.5, "skipped": 2}, counts={"traders": 1},
        positions=[{"pnl": "1.5"}, {"pnl": "-0.25"}], equity=Decimal("10001.25"), errors=0, restarts=1,
        trades_executed=2, storage={"degraded": "connection refused", "queued": 3},
    )
    assert status["mode"] == "paper" and status["location"] == "local"
    assert status["metrics"]["total_pnl"] == "1.25"
    assert status["metrics"]["signals_created"] == 3 and status["metrics"]["stream_reconnects"] == 2
    assert status["equity"] == "10001.25" and status["connected_symbols"] == ["BTCUSDT"]
    assert status["storage"] == {"backend": "sqlite", "degraded": "connection refused", "queued_writes": 3}


def test_example_trader_is_valid_and_compiles() -> None:
    trader = Trader.model_validate({**EXAMPLE_TRADER, "user_id": "u"})
    compiled = compile_filter(trader.signal_code)
    assert len(compiled.conditions) == 3
