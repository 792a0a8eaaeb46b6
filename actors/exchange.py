"""LocalExchangeActor: the Binance-compatible local exchange, run inside the engine's Ray."""

from __future__ import annotations

from typing import Any

import ray

from aitrader.exchange import ExchangeConfig, LocalExchange


@ray.remote(max_restarts=-1, num_cpus=0)
class LocalExchangeActor:
    """Serves the local exchange from this actor's event loop; a restart serves the same market."""

    def __init__(self, port: int = 0, seed: int = 42, symbols: list[str] | None = None, speed: float = 1.0,
                 anchor_ms: int | None = None, host: str = "127.0.0.1") -> None:
        from aitrader.exchange import ScaledClock

        clock = ScaledClock(speed, anchor_ms)
        self._config = ExchangeConfig(
            host=host, port=port, seed=seed, symbols=tuple(symbols) if symbols else None, speed=speed, clock=clock
        )
        self._exchange: LocalExchange | None = None
        self.anchor_ms = clock.anchor_ms

    async def start(self) -> dict[str, Any]:
        """Start serving (idempotent); returns the URLs and the timeline anchor."""
        if self._exchange is None:
            exchange = LocalExchange(self._config)
            await exchange.start()
            self._exchange = exchange
        return {"url": self._exchange.url, "ws_url": self._exchange.ws_url, "anchor_ms": self.anchor_ms,
                "speed": self._config.speed}

    async def ping(self) -> bool:
        return self._exchange is not None

    async def stop(self) -> None:
        if self._exchange is not None:
            await self._exchange.stop()
            self._exchange = None
