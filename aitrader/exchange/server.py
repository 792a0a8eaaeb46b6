"""The local exchange server: REST and WebSocket streams on one aiohttp port.

Run it in-process (``await LocalExchange(config).start()``), in a background thread
(``start_in_thread(config)``), or blocking (``main(port=9000)``, used by ``aitrader exchange``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from aiohttp import web

from aitrader.exchange.auth import DEFAULT_MASTER_SECRET
from aitrader.exchange.clock import MarketClock, ReplayClock, ScaledClock
from aitrader.exchange.faults import Faults
from aitrader.exchange.market import MarketData, SyntheticMarket
from aitrader.exchange.orders import MatchingEngine
from aitrader.exchange.payloads import PayloadBuilder
from aitrader.exchange.replay import ReplayMarket
from aitrader.exchange.replay_csv import load_replay
from aitrader.exchange.rest import RestApi, fault_and_error_middleware
from aitrader.exchange.streams import StreamHub
from aitrader.exchange.symbols import resolve_symbols

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExchangeConfig:
    """Settings of one local exchange; ``port=0`` picks a free port.

    ``replay`` names one or more candle CSV files (see ``aitrader.exchange.replay_csv``) to serve
    instead of the synthetic market; ``anchor_ms`` is then the wall time the replay started at.
    """

    host: str = "127.0.0.1"
    port: int = 0
    seed: int = 42
    symbols: tuple[str, ...] | None = None
    speed: float = 1.0
    replay: str | tuple[str, ...] | None = None
    anchor_ms: int | None = None
    push_interval: float = 1.0
    ping_interval: float = 20.0
    master_secret: str = DEFAULT_MASTER_SECRET
    starting_balances: tuple[tuple[str, str], ...] = (("USDT", "10000"),)
    clock: MarketClock | None = field(default=None, compare=False)


class LocalExchange:
    """A Binance Spot-compatible exchange over a seeded synthetic market or replayed candles.

    A replay file that cannot be replayed raises ``ReplayFileError`` (a ``ValueError``) here.
    """

    def __init__(self, config: ExchangeConfig | None = None) -> None:
        self.config = config or ExchangeConfig()
        speed, anchor = self.config.speed, self.config.anchor_ms
        self.market: MarketData
        if self.config.replay:
            paths = (self.config.replay,) if isinstance(self.config.replay, str) else self.config.replay
            replay = ReplayMarket(load_replay([Path(p) for p in paths]), self.config.symbols)
            self.market = replay
            self.clock: MarketClock = self.config.clock or ReplayClock(replay.start_ms, speed, anchor)
        else:
            self.market = SyntheticMarket(resolve_symbols(self.config.symbols), self.config.seed)
            self.clock = self.config.clock or ScaledClock(speed, anchor)
        balances = {asset: Decimal(amount) for asset, amount in self.config.starting_balances}
        self.engine = MatchingEngine(self.market, self.clock, balances)
        self.faults = Faults()
        self.streams = StreamHub(
            self.market, self.engine, self.clock, self.config.push_interval, self.config.ping_interval
        )
        self._rest = RestApi(self.engine, PayloadBuilder(self.market), self.clock, self.config.master_secret)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The bound port (after ``start``)."""
        if self._port is None:
            raise RuntimeError("the exchange is not started; await start() first")
        return self._port

    @property
    def url(self) -> str:
        """HTTP base URL, e.g. ``http://127.0.0.1:9000`` (python-binance: ``API_URL = url + "/api"``)."""
        return f"http://{self.config.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """WebSocket base URL, e.g. ``ws://127.0.0.1:9000`` (append ``/ws/<stream>`` or ``/stream?streams=``)."""
        return f"ws://{self.config.host}:{self.port}"

    async def start(self) -> None:
        """Bind the port and start serving and pushing."""
        app = web.Application(middlewares=[fault_and_error_middleware(self.faults)])
        app.add_routes(self._rest.routes() + self.streams.routes())
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self._port = sockets[0].getsockname()[1] if sockets else self.config.port
        self.streams.start()
        source = f"replay of {self.config.replay}" if self.config.replay else f"seed {self.config.seed}"
        log.info("local exchange listening on %s (%s, speed %s)", self.url, source, self.config.speed)

    async def stop(self) -> None:
        """Tell stream clients ``serverShutdown``, then close everything."""
        try:
            await self.streams.close()
        finally:
            if self._runner is not None:
                await self._runner.cleanup()
                self._runner = None


class ExchangeThread:
    """A ``LocalExchange`` running on its own event loop in a daemon thread."""

    def __init__(self, exchange: LocalExchange) -> None:
        self.exchange = exchange
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="local-exchange", daemon=True)

    @property
    def url(self) -> str:
        """HTTP base URL."""
        return self.exchange.url

    @property
    def ws_url(self) -> str:
        """WebSocket base URL."""
        return self.exchange.ws_url

    @property
    def faults(self) -> Faults:
        """Fault injection for the running exchange."""
        return self.exchange.faults

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.exchange.start())
        except BaseException as error:  # reported to the starting thread
            self._error = error
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    def start(self, timeout: float = 30.0) -> ExchangeThread:
        """Start the thread and wait until the port is bound."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"local exchange did not start within {timeout} s")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the exchange gracefully and join the thread."""
        if not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self.exchange.stop(), self._loop)
        try:
            future.result(timeout)
        except Exception as error:  # the loop is stopped below either way
            log.warning("local exchange did not stop gracefully within %s s: %r", timeout, error)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)


def start_in_thread(config: ExchangeConfig | None = None) -> ExchangeThread:
    """Run a local exchange in a background thread; returns a handle with ``url``, ``ws_url``, ``stop()``."""
    return ExchangeThread(LocalExchange(config)).start()


def main(
    port: int = 9000,
    seed: int = 42,
    symbols: list[str] | None = None,
    speed: float = 1.0,
    replay: str | tuple[str, ...] | None = None,
    host: str = "127.0.0.1",
    anchor_ms: int | None = None,
) -> None:
    """Serve a local exchange until interrupted (Ctrl-C stops it gracefully).

    ``anchor_ms`` fixes the start of the compressed timeline, so a restarted exchange with the
    same seed, speed and anchor serves the same timeline as before (with ``replay``: the wall
    time the replay started at).  A bad replay file raises ``ReplayFileError`` before binding.
    """
    config = ExchangeConfig(
        host=host,
        port=port,
        seed=seed,
        symbols=tuple(symbols) if symbols else None,
        speed=speed,
        replay=replay,
        anchor_ms=anchor_ms,
    )
    exchange = LocalExchange(config)

    async def serve() -> None:
        await exchange.start()
        print(f"local exchange on {exchange.url} (ws {exchange.ws_url}); Ctrl-C to stop", flush=True)
        if isinstance(exchange.market, ReplayMarket):
            print(exchange.market.describe(speed), flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await exchange.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
