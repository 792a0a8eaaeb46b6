"""Shared set-up for the API unit tests: the FastAPI app over a `LocalBackend` on tmp SQLite."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr

from aitrader.config import Settings
from aitrader.storage import SQLStorage
from serve import ApiService, LocalBackend, RateLimits, create_app

KEY = "test-api-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
MARKETS = [
    {"symbol": "BTCUSDT", "price": "60000.00", "change24h": "1.5", "volume24h": "1000", "sparkline": [1.0, 2.0]},
    {"symbol": "ETHUSDT", "price": "3000.00", "change24h": "-0.5", "volume24h": "500", "sparkline": [3.0]},
]
GOOD_FILTER = "fast = ema(close, 12)\nrsi(close, 14) < 30 and crossover(fast, sma(close, 26))"


@dataclass
class Api:
    app: Any
    service: ApiService
    backend: LocalBackend
    storage: SQLStorage
    settings: Settings


def make_api(tmp_path: Any, *, limits: RateLimits | None = None, capacity: int = 1000, ws_queue_size: int = 1000,
             status: dict[str, Any] | None = None, **settings: Any) -> Api:
    storage = SQLStorage(f"sqlite:///{tmp_path}/api.db")
    config = Settings(api_key=SecretStr(KEY), user_id="alice", **settings)
    from aitrader.events import EventLog

    backend = LocalBackend(storage, EventLog(capacity=capacity), user_id="alice", markets=MARKETS, status=status)
    service = ApiService(backend, config, reader=storage, refresh_s=0.2, poll_timeout_s=0.2,
                         ws_queue_size=ws_queue_size)
    app = create_app(service, config, limits=limits or RateLimits(100_000, 100_000))
    return Api(app, service, backend, storage, config)


def trader_body(name: str = "rsi-dip", **extra: Any) -> dict[str, Any]:
    return {"name": name, "symbols": ["BTCUSDT"], "timeframes": ["1m"], "signal_code": GOOD_FILTER, **extra}


def wait_until(condition: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Poll ``condition`` until truthy (for state fed by the background event pump)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.01)
