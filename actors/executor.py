"""Executor actor: holds an `ExecutionService` over a paper or live broker; every call is idempotent,
so Ray may retry any of them on a restarted executor (``max_task_retries=-1``).

Money writes are committed by the Store before a call answers. On the paper close path they reach
the Store over a Unix socket when it runs on this machine (`aitrader.local_channel`), and
this actor answers the Monitor's closes there too: a Ray call costs ~2 ms one way on a small
machine. A failed local call is made again as a Ray call (every call sent that way is idempotent).
Since those requests run on a channel thread, every method takes the actor's lock. Events and the Monitor's
track/untrack notices are fire-and-forget: they go through an outbox that a background thread
sends (events batched into one `publish_many`, in order), so a close answers without paying for
their submission.
"""

from __future__ import annotations

import gc
import logging
import os
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

import ray
import requests

from actors.remote_storage import RemoteStorage
from aitrader.local_channel import IdleCollector, LocalChannelError, LocalClient, LocalServer
from aitrader.models.enums import TradingMode
from aitrader.storage.base import Storage
from aitrader.storage.wire import Write, decode_close_request, decode_results, encode_view, encode_writes

# The trading package, the config and the table models load in the Executor's constructor, not
# with this module: Ray imports it in every process holding an Executor handle (the shards, the
# Monitor, the scheduler, the supervisor).
if TYPE_CHECKING:
    from aitrader.config import Settings
    from aitrader.models import Signal, Trader
    from aitrader.trading import PaperBroker
    from aitrader.trading.live import LiveBroker

log = logging.getLogger("aitrader.executor")
_HTTP_TIMEOUT_S = 10.0
#: A Store restarting on a loaded machine can take long; a money write is waited for, never dropped.
_STORE_TIMEOUT_S = 120.0
#: How long to wait before asking the Store for its local channel again (after none was usable).
_CHANNEL_RETRY_S = 5.0
#: Python's GIL switch interval here: a channel thread answering a close waits at most this long for
#: another thread running Python code (the outbox's Ray submissions); the default 5 ms is half the budget.
SWITCH_INTERVAL_S = 0.001
#: With AITRADER_CLOSE_STAMPS=1 (bench/tick_to_close.py sets it) each local close records when it was
#: received, got the lock, sent its writes to the Store and had them back (`close_stamps`).
_STAMPS_ENV = "AITRADER_CLOSE_STAMPS"


def _get_json(url: str, **params: str) -> Any:
    try:
        answer = requests.get(url, params=params, timeout=_HTTP_TIMEOUT_S)
        answer.raise_for_status()
        return answer.json()
    except requests.RequestException as error:
        from aitrader.trading.errors import TemporaryError

        raise TemporaryError(f"could not fetch {url}: {error}") from error


def _model_fields(model: type[Signal] | type[Trader], data: dict[str, Any], user_id: str) -> dict[str, Any]:
    """The keys of a JSON view the model knows (views carry extra display fields)."""
    fields = {k: v for k, v in data.items() if k in model.model_fields and v is not None}
    fields.setdefault("user_id", user_id)
    return fields


@ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0)
class Executor:
    """Places orders and opens/closes positions; tells the Monitor what to watch.

    ``monitor`` is the Monitor's handle or its actor name (a name survives this actor's restarts
    even when the Monitor is created after it). ``exchange_info`` skips the REST fetch of
    ``GET {BINANCE_API_URL}/api/v3/exchangeInfo``.
    """

    def __init__(
        self,
        settings: Settings,
        store: Any,
        events: Any,
        monitor: Any = None,
        exchange_info: dict[str, Any] | None = None,
    ) -> None:
        from aitrader.trading import PaperBroker, rules_from_exchange_info
        from aitrader.trading.execution import ExecutionService, PriceCache
        from aitrader.trading.order_cache import OrderCache

        self._settings = settings
        self._events = events
        self._monitor = monitor
        self._store = store
        self._lock = threading.RLock()
        self._store_client: LocalClient | None = None
        self._store_channel_at = 0.0
        self._reconcile_error: str | None = None
        self._stamps: deque[tuple[str, list[float]]] = deque(maxlen=10_000)
        self._stamping_on = os.environ.get(_STAMPS_ENV) == "1"  # read here: Ray may ship this class by value
        self._stamping: list[float] | None = None  # the stamps of the local close running now
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self._outbox: queue.SimpleQueue[tuple[str, str, dict[str, Any]] | Callable[[], None]] = queue.SimpleQueue()
        threading.Thread(target=self._send_outbox, name="executor-outbox", daemon=True).start()
        base_url = settings.binance_api_url
        info = exchange_info if exchange_info is not None else _get_json(f"{base_url}/api/v3/exchangeInfo")
        rules = rules_from_exchange_info(info)
        prices = PriceCache(fallback=lambda symbol: Decimal(
            str(_get_json(f"{base_url}/api/v3/ticker/price", symbol=symbol)["price"])))
        storage: Storage = cast(Storage, RemoteStorage(store, timeout_s=_STORE_TIMEOUT_S))
        broker: PaperBroker | LiveBroker
        if settings.paper_trading:
            mode = TradingMode.PAPER
            # Paper only: orders from memory, each fill's writes as one synchronous Store message.
            # Only the last write's result (a close's) is used: the others are not sent back.
            storage = cast(Storage, OrderCache(storage, settings.user_id, write_many=self._write_many))
            broker = PaperBroker(
                user_id=settings.user_id, rules=rules, price_source=prices, storage=storage,
                starting_balance=Decimal(str(settings.paper_starting_balance)),
                slippage_bps=Decimal(str(settings.paper_slippage_bps)),
            )
        else:
            from aitrader.trading.live import LiveBroker, binance_client

            mode = TradingMode.LIVE
            assert settings.binance_api_key is not None and settings.binance_secret_key is not None
            client = binance_client(base_url, settings.binance_api_key.get_secret_value(),
                                    settings.binance_secret_key.get_secret_value())
            broker = LiveBroker(client, storage, settings.user_id)
            try:
                broker.reconcile()
            except Exception as error:  # closing positions must still work; health() shows why entries are off
                self._reconcile_error = str(error)
                log.error("reconciliation failed: %s", error)
        self._broker = broker
        self._service = ExecutionService(
            broker, storage, settings.user_id, mode=mode, max_open_positions=settings.max_open_positions,
            publish=self._publish, rules=rules, prices=prices,
        )
        for position in self._service.restore():  # including positions opened for fills found on restart
            self._track(position)
        self._store_channel()
        self._channel = LocalServer(self._local_close, name="executor")
        # Young generations only, as the scheduler does: a full collection walks every object the process
        # holds (~0.1 CPU-s of a CPU-bound engine start) and freed nothing in the Store's start-up.
        gc.collect(1)
        gc.freeze()  # what start-up built (rules, cached orders) lives for good: keep it out of collections
        # Collections between closes, not inside a close whose allocations would trigger them.
        self._collector = IdleCollector(self._lock)
        self._collector.start()

    # -- the Store, over the local channel when it is on this machine ---------------------------

    def _write_many(self, writes: list[Write]) -> list[Any]:
        """One paper operation's writes as one Store message (msgpack: pickling table models costs more),
        committed before this returns; only the last write's result comes back."""
        message = encode_writes(writes)
        client = self._store_channel()
        if client is not None:
            try:
                if self._stamping is None:
                    return decode_results(client.call(message))
                self._stamping.append(time.time())
                answer = client.call(message)
                self._stamping.append(time.time())
                return decode_results(answer)
            except LocalChannelError as error:
                log.warning("the Store's local channel failed, sending the writes as a Ray call: %s", error)
                self._store_client = None
        answer = ray.get(self._store.call_many.remote(message, last_only=True), timeout=_STORE_TIMEOUT_S)
        return decode_results(answer)

    def _store_channel(self) -> LocalClient | None:
        if self._store_client is None and time.monotonic() >= self._store_channel_at:
            self._store_channel_at = time.monotonic() + _CHANNEL_RETRY_S
            try:
                node, path = ray.get(self._store.local_address.remote(), timeout=10)
                if node == ray.get_runtime_context().get_node_id():
                    self._store_client = LocalClient(path, timeout_s=_STORE_TIMEOUT_S)
            except Exception as error:  # a Store elsewhere, or restarting: Ray calls, and ask again later
                log.info("no local channel to the Store, writes go as Ray calls: %s", error)
        return self._store_client

    def _local_close(self, message: bytes) -> bytes:
        """A close sent by the Monitor over this actor's local channel: ``[position id, reason, trigger price]``."""
        if not self._stamping_on:
            return encode_view(self.close_position(*decode_close_request(message)))
        received = time.time()
        request = decode_close_request(message)
        with self._lock:
            self._stamping = [received, time.time()]
            try:
                answer = encode_view(self.close_position(*request))
            finally:
                self._stamps.append((request[0], [*self._stamping, time.time()]))
                self._stamping = None
        return answer

    def close_stamps(self) -> list[tuple[str, list[float]]]:
        """(position id, [received, locked, writes sent, writes answered, answered]) of recent local closes
        (epoch seconds; only with AITRADER_CLOSE_STAMPS=1)."""
        return list(self._stamps)

    def local_address(self) -> tuple[str, str]:
        """(Ray node id, Unix socket path) where a Monitor on this node can send closes without a Ray call."""
        return ray.get_runtime_context().get_node_id(), self._channel.path

    # -- notices --------------------------------------------------------------------------------

    def _publish(self, channel: str, type: str, data: dict[str, Any]) -> None:
        self._outbox.put((str(channel), type, data))

    def _send_outbox(self) -> None:
        """Send what `_publish`, `_track` and `_untrack` queued, in order; consecutive events as one call."""
        while True:
            items = [self._outbox.get()]
            while True:
                try:
                    items.append(self._outbox.get_nowait())
                except queue.Empty:
                    break
            events: list[tuple[str, str, dict[str, Any]]] = []
            for item in [*items, None]:
                if isinstance(item, tuple):
                    events.append(item)
                    continue
                try:
                    if events:
                        self._events.publish_many.remote(events)
                        events = []
                    if item is not None:
                        item()
                except Exception:  # fire-and-forget: a lost notice must not stop the next ones
                    log.exception("sending an executor event or monitor notice failed")

    def _monitor_handle(self) -> Any:
        if isinstance(self._monitor, str):
            try:
                self._monitor = ray.get_actor(self._monitor, namespace=ray.get_runtime_context().namespace)
            except ValueError:
                return None
        return self._monitor

    def _track(self, position: dict[str, Any] | None) -> None:
        if position is None:
            return

        def track() -> None:
            monitor = self._monitor_handle()
            if monitor is not None:
                monitor.track.remote(position)

        self._outbox.put(track)

    def _untrack(self, position_id: str) -> None:
        def untrack() -> None:
            monitor = self._monitor_handle()
            if monitor is not None:
                monitor.untrack.remote(position_id)

        self._outbox.put(untrack)

    # -- API ------------------------------------------------------------------------------------

    def ping(self) -> bool:
        return True

    def pid(self) -> int:
        return os.getpid()

    def set_monitor(self, monitor: Any) -> None:
        """Wire the Monitor after both actors exist (prefer passing its name at construction)."""
        self._monitor = monitor

    def submit_order(self, request: dict[str, Any]) -> dict[str, Any]:
        """Place a manual order (see `ExecutionService.submit_manual`); a fill opens a watched position."""
        with self._lock:
            answer = self._service.submit_manual(request)
        self._track(answer.get("position"))
        return answer

    def open_from_signal(self, signal: dict[str, Any], trader: dict[str, Any]) -> dict[str, Any] | None:
        """Auto-trade an entry signal (JSON views or model dumps of the signal and its trader)."""
        from aitrader.models import Signal, Trader

        user_id = self._settings.user_id
        with self._lock:
            position = self._service.open_from_signal(
                Signal.model_validate(_model_fields(Signal, signal, user_id)),
                Trader.model_validate(_model_fields(Trader, trader, user_id)),
            )
        self._track(position)
        return position

    def close_position(self, position_id: str, reason: str = "manual", trigger_price: str | None = None) -> dict[str, Any]:
        """Close a position exactly once (an already closed one comes back unchanged).

        The untrack notice goes to the Monitor even for the closes it asked for: after a restart of
        this actor, the track notices of `restore` (sent while the position was still open) may reach
        the Monitor after its close's answer, and only this later notice makes it forget the position.
        """
        with self._lock:
            view = self._service.close_position(
                position_id, reason, Decimal(trigger_price) if trigger_price is not None else None)
        self._untrack(position_id)
        return view

    def on_prices(self, prices: dict[str, str]) -> int:
        """Take a price push: refresh the price cache and fill crossed paper LIMIT orders."""
        with self._lock:
            opened = self._service.on_prices({symbol: Decimal(price) for symbol, price in prices.items()})
        for position in opened:
            self._track(position)
        return len(opened)

    def health(self) -> dict[str, Any]:
        with self._lock:
            return self._health()

    def _health(self) -> dict[str, Any]:
        blocked = getattr(self._broker, "entries_blocked", None)
        breaker = getattr(self._broker, "breaker", None)
        return {
            "mode": str(self._service.mode),
            "open_positions": self._service.open_positions,
            "prices_cached": len(self._service.prices or ()),
            "entries_blocked": str(blocked) if blocked is not None else self._reconcile_error,
            "circuit": str(breaker.state) if breaker is not None else None,
            "last_order_at": self._service.last_order_at,
            "store_channel": self._store_client is not None,
            "equity": self._equity(),
        }

    def _equity(self) -> str | None:
        """Paper equity at the latest prices (live equity needs the account: not computed here)."""
        equity = getattr(self._broker, "equity", None)
        if not callable(equity):
            return None
        try:
            return format(equity(), "f")
        except Exception:  # a price not known yet
            return None
