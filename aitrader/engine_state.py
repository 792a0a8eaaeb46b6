"""The engine state `/status` shows, assembled from the actors' health reports (pure)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aitrader import __version__

#: A shard silent for longer than this makes the feed "stale".
STALE_AFTER_S = 30.0

EXAMPLE_TRADER = {
    "name": "Example: RSI momentum over EMA",
    "description": (
        "Seeded on first run. Fires when momentum is strong (RSI above 55), the price is above its "
        "20-candle EMA and volume is at least half its 20-candle average. Signals only: auto-trading is off."
    ),
    "symbols": ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT"],
    "timeframes": ["1m"],
    "check_interval": 60,
    "signal_code": (
        "trend = ema(close, 20)\n"
        "momentum = rsi(close, 14)\n"
        "momentum[-1] > 55 and close[-1] > trend[-1] and volume[-1] > 0.5 * sma(volume, 20)[-1]\n"
    ),
    "auto_trade": False,
}


def feed_state(configured: str, shards: list[dict[str, Any]]) -> str:
    """``binance`` or ``local`` while every shard is connected and fresh, else ``stale``."""
    if not shards:
        return "stale"
    for shard in shards:
        age = shard.get("last_message_age_s")
        if not shard.get("connected") or age is None or age > STALE_AFTER_S:
            return "stale"
    return configured


def build_status(
    *,
    settings: Any,
    running: bool,
    feed: str,
    feed_note: str | None,
    shards: list[dict[str, Any]],
    scheduler: dict[str, Any],
    counts: dict[str, int],
    positions: list[dict[str, Any]],
    equity: Decimal | None,
    errors: int,
    restarts: int,
    trades_executed: int,
    storage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The `/status` body (the API adds nothing but the version it already has here)."""
    latencies = [s["latency_p50_ms"] for s in shards if s.get("latency_p50_ms") is not None]
    total_pnl = sum((Decimal(p.get("pnl") or "0") for p in positions), Decimal(0))
    symbols = sorted({sym for s in shards for sym in s.get("symbols", [])})
    return {
        "version": __version__,
        "mode": "paper" if settings.paper_trading else "live",
        "running": running,
        "feed": feed,
        "feed_note": feed_note,
        "user_id": settings.user_id,
        "location": "cloud" if settings.fly_app_name else "local",
        "connected_symbols": symbols,
        "counts": counts,
        "metrics": {
            "signals_created": int(scheduler.get("signals_created", 0)),
            "trades_executed": trades_executed,
            "total_pnl": format(total_pnl, "f"),
            "avg_check_ms": float(scheduler.get("avg_check_ms", 0.0) or 0.0),
            "stream_latency_ms": round(sum(latencies) / len(latencies), 2) if latencies else 0.0,
            "errors": errors,
            "actor_restarts": restarts,
            "stream_reconnects": sum(int(s.get("reconnects", 0)) for s in shards),
            "stream_gaps": sum(int(s.get("gaps", 0)) for s in shards),
            "checks_skipped": int(scheduler.get("skipped", 0)),
        },
        "equity": None if equity is None else format(equity, "f"),
        "storage": {
            "backend": str(settings.storage_backend),
            "degraded": (storage or {}).get("degraded"),
            "queued_writes": int((storage or {}).get("queued", 0)),
        },
        "ai_analysis": bool(settings.enable_ai_analysis),
        "auto_trading": bool(settings.enable_auto_trading),
    }
