"""`ApiService`: the one facade every route delegates to (freqtrade's RPC pattern).

Writes go through the backend (Store, Executor, Scheduler); reads come from replica-local state
(markets, open positions, status) or a read-only Storage opened in the replica. Every failure
leaves here as a `serve.errors.ApiError`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import ValidationError

import aitrader
from aitrader.config import Settings
from aitrader.models import OrderStatus, PositionStatus, SignalStatus, TraderStatus
from aitrader.storage import Storage
from serve.backend import EngineBackend
from serve.errors import (
    ApiError,
    ConflictError,
    EngineUnavailable,
    InvalidFilter,
    NotFoundError,
    RequestInvalid,
    translate,
)
from serve.fanout import EventFanout
from serve.metrics import ApiMetrics
from serve.schemas import (
    Balances,
    ClosedPosition,
    FilterVerdict,
    Health,
    OrderOut,
    OrderRequest,
    Orders,
    Positions,
    SignalOut,
    Signals,
    Status,
    TraderCreate,
    TraderOut,
    Traders,
    TraderUpdate,
)
from serve.state import ReplicaState

if TYPE_CHECKING:
    from aitrader.models import Trader

log = logging.getLogger("aitrader.serve")
T = TypeVar("T")
JSON_TYPE = "application/json"
#: How long one ask of "what is still starting" waits for the answer to become "nothing".
STARTING_POLL_S = 2.0


class ApiService:
    """Everything the HTTP and WebSocket routes can do, over one `EngineBackend`."""

    def __init__(
        self,
        backend: EngineBackend,
        settings: Settings,
        *,
        reader: Storage | None = None,
        open_reader: Callable[[], Storage] | None = None,
        refresh_s: float = 5.0,
        poll_timeout_s: float = 10.0,
        ws_queue_size: int = 1000,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.reader = reader
        self._open_reader = open_reader
        self._reader_lock = asyncio.Lock()
        self._storage_lock = asyncio.Lock()  # one storage snapshot at a time, so an older one never lands last
        self._snapshot: asyncio.Task[None] | None = None
        self.refresh_s = refresh_s
        self.user_id = settings.user_id
        self.state = ReplicaState(clock) if clock else ReplicaState()
        self.metrics = ApiMetrics(self.status_body)
        self.ws_queue_size = ws_queue_size
        self.fanout = EventFanout(backend, self.state, self.metrics, poll_timeout_s=poll_timeout_s,
                                  queue_size=ws_queue_size, on_fell_off=self._schedule_refresh)
        self._tasks: list[asyncio.Task[Any]] = []
        self._refresh_now = asyncio.Event()
        #: What of the engine is still starting; ``/health`` is 503 until it is empty.
        self.engine_starting: list[str] = []

    # ---- lifecycle --------------------------------------------------------------------------
    @asynccontextmanager
    async def lifespan(self, _app: FastAPI) -> AsyncIterator[None]:
        """Load the engine's status and markets, then keep the read state fresh (event pump +
        periodic refresh) while serving.

        The API may come up while the engine's actors are still starting: ``/health`` then answers
        503 with what is still starting, until the engine says every actor is up and wired. The
        storage snapshot (open positions, trader counts) is not read here: see `_start_snapshot`.
        """
        await self._ask_starting(0.0)
        await self._refresh_engine()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self.fanout.run()), loop.create_task(self._refresh_loop())]
        if self.engine_starting:
            self._tasks.append(loop.create_task(self._follow_start()))
        try:
            yield
        finally:
            tasks = [*self._tasks, *([self._snapshot] if self._snapshot else [])]
            for task in tasks:
                task.cancel()
            for task in tasks:
                with suppress(asyncio.CancelledError, Exception):
                    await task

    async def _ask_starting(self, wait_s: float) -> None:
        try:
            self.engine_starting = await self.backend.starting(wait_s)
        except Exception as exc:  # the supervisor's process may not be answering yet
            log.debug("engine start-up state unavailable: %s", type(exc).__name__)
            self.engine_starting = self.engine_starting or ["the supervisor"]
            await asyncio.sleep(min(wait_s, 0.5))

    async def _follow_start(self) -> None:
        while self.engine_starting:
            await self._ask_starting(STARTING_POLL_S)
        self._refresh_now.set()  # the engine's first status, without waiting for the next refresh

    def _schedule_refresh(self) -> None:
        self._refresh_now.set()

    async def _refresh_loop(self) -> None:
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._refresh_now.wait(), self.refresh_s)
            self._refresh_now.clear()
            await self._refresh_engine()
            if self._snapshot is None and not self.engine_starting:
                self._start_snapshot()  # nobody has asked yet: read it now the engine is up
            elif self._snapshot is not None and self._snapshot.done():
                await self._refresh_storage()

    def _start_snapshot(self) -> asyncio.Task[None]:
        """The first storage snapshot's task, started on the first call.

        The snapshot needs the read-only Storage (SQLAlchemy, the table models: about half a
        CPU-second to load) and nothing on the way to a healthy ``/health`` needs it, while the
        engine's start-up is CPU-bound. So it is read once the API has answered healthy, or when
        a route needs it (`_snapshot_loaded`), or at the first periodic refresh after the engine
        is up, whichever comes first.
        """
        if self._snapshot is None:
            self._snapshot = asyncio.get_running_loop().create_task(self._refresh_storage())
        return self._snapshot

    async def _snapshot_loaded(self) -> None:
        """Wait until the first storage snapshot was read (or failed, logged): the read state is whole."""
        snapshot = self._start_snapshot()
        if not snapshot.done():
            await asyncio.shield(snapshot)

    async def refresh(self) -> None:
        """Re-read engine status, markets and open positions; each part may fail on its own."""
        await self._refresh_engine()
        await self._refresh_storage()

    async def _refresh_engine(self) -> None:
        try:
            engine_stamp = self.state.engine_stamp
            status = await self.backend.status()
            if status and self.state.load_engine(status, engine_stamp):
                self.metrics.engine_status(status)
        except Exception as exc:
            log.warning("engine status unavailable: %s", type(exc).__name__)
        try:
            self.state.load_markets(await self.backend.markets())
        except Exception as exc:
            log.warning("market snapshot unavailable: %s", type(exc).__name__)

    async def _refresh_storage(self) -> None:
        async with self._storage_lock:
            try:
                position_stamp = self.state.position_stamp
                rows = await self._read("list_positions", self.user_id, status=PositionStatus.OPEN, limit=10_000)
                self.state.load_positions([row.model_dump(mode="json") for row in rows], as_of=position_stamp)
                traders = await self._read("list_traders", self.user_id)
                self.state.local_counts = {
                    "traders": len(traders),
                    "active_traders": sum(t.status == TraderStatus.ACTIVE for t in traders),
                }
            except Exception as exc:
                log.warning("storage snapshot unavailable: %s", type(exc).__name__)

    # ---- plumbing ---------------------------------------------------------------------------
    async def _storage(self) -> Storage | None:
        """The read-only Storage, opened on first use; None: reads go through the Store actor."""
        if self._open_reader is not None:
            async with self._reader_lock:  # a read asked while it opens waits for it
                if self._open_reader is not None:
                    try:
                        self.reader = await asyncio.to_thread(self._open_reader)
                    except Exception as exc:  # reads then go through the Store actor
                        log.warning("read-only storage unavailable in the API replica (%s); reading through "
                                    "the Store", type(exc).__name__)
                    finally:
                        self._open_reader = None
        return self.reader

    async def _read(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            reader = await self._storage()
            if reader is not None:
                return await asyncio.to_thread(getattr(reader, method), *args, **kwargs)
            return await self.backend.store(method, *args, **kwargs)
        except Exception as exc:
            raise translate(exc, _what(method)) from exc

    async def _write(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return await self.backend.store(method, *args, **kwargs)
        except Exception as exc:
            raise translate(exc, _what(method)) from exc

    async def _notify(self, trader_id: str, removed: bool = False) -> None:
        try:
            if removed:
                await self.backend.trader_removed(trader_id)
            else:
                await self.backend.trader_changed(trader_id)
        except Exception as exc:  # the scheduler rebuilds from storage when it restarts
            log.warning("scheduler not told about trader %s: %s", trader_id, type(exc).__name__)

    # ---- engine -----------------------------------------------------------------------------
    def health(self) -> Health:
        """Healthy once the engine's actors are all up and wired; 503 naming what is still starting."""
        if self.engine_starting:
            raise EngineUnavailable(f"the engine is starting; waiting for {', '.join(self.engine_starting)}",
                                    headers={"Retry-After": "1"})
        if self._snapshot is None:
            self._start_snapshot()  # the API answers healthy: now read what waited for it
        return Health(time=datetime.now(UTC))

    def status_body(self) -> dict[str, Any]:
        """The /status body: the engine's latest status, or what the replica knows without it."""
        engine = self.state.engine or {}
        body: dict[str, Any] = {
            "mode": "paper" if self.settings.paper_trading else "live",
            "running": False,
            "feed": "stale",
            "feed_note": None if engine else "no engine status received yet",
            "user_id": self.user_id,
            "location": "cloud" if self.settings.is_cloud else "local",
            "counts": {**self.state.local_counts, "open_positions": len(self.state.open_positions)},
            "ai_analysis": self.settings.enable_ai_analysis,
            "auto_trading": self.settings.enable_auto_trading,
            **engine,
            "version": aitrader.__version__,
        }
        return body

    async def status(self) -> Status:
        await self._snapshot_loaded()
        try:
            return Status.model_validate(self.status_body())
        except ValidationError as exc:
            log.warning("engine status does not match the schema (%d problems); serving the fallback",
                        exc.error_count())
            fallback = {k: v for k, v in self.status_body().items() if k not in (self.state.engine or {})}
            return Status.model_validate({**fallback, "feed_note": "engine status unreadable"})

    def markets(self) -> Response:
        return Response(self.state.markets_json(), media_type=JSON_TYPE)

    async def metrics_text(self) -> Response:
        await self._snapshot_loaded()
        return Response(self.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    # ---- traders ----------------------------------------------------------------------------
    async def traders(self) -> Traders:
        rows = await self._read("list_traders", self.user_id)
        counts = await self._signal_counts()
        return Traders(traders=[_trader_out(t, counts.get(t.id, 0)) for t in rows])

    async def trader(self, trader_id: str) -> TraderOut:
        trader = await self._read("get_trader", trader_id)
        self._own(trader)
        counts = await self._signal_counts()
        return _trader_out(trader, counts.get(trader_id, 0))

    async def create_trader(self, body: TraderCreate) -> TraderOut:
        compile_checked(body.signal_code)
        trader = _validated_trader({**body.model_dump(), "user_id": self.user_id})
        if trader.status == TraderStatus.ACTIVE:
            await self._check_active_limit()
        saved = await self._write("create_trader", trader)
        await self._notify(saved.id)
        return _trader_out(saved, 0)

    async def update_trader(self, trader_id: str, body: TraderUpdate) -> TraderOut:
        changes = body.model_dump(exclude_unset=True)
        if changes.get("signal_code") is not None:
            compile_checked(changes["signal_code"])
        current = await self._read("get_trader", trader_id)
        self._own(current)
        merged = _validated_trader({**current.model_dump(), **{k: v for k, v in changes.items() if v is not None
                                                                  or k.endswith("_pct")}})
        if merged.status == TraderStatus.ACTIVE and current.status != TraderStatus.ACTIVE:
            await self._check_active_limit()
        updates = {k: getattr(merged, k) for k in changes}
        saved = await self._write("update_trader", trader_id, **updates) if updates else current
        await self._notify(trader_id)
        return _trader_out(saved, (await self._signal_counts()).get(trader_id, 0))

    async def set_trader_active(self, trader_id: str, active: bool) -> TraderOut:
        return await self.update_trader(trader_id, TraderUpdate(status="active" if active else "inactive"))

    async def delete_trader(self, trader_id: str) -> Response:
        self._own(await self._read("get_trader", trader_id))
        await self._write("delete_trader", trader_id)
        await self._notify(trader_id, removed=True)
        return Response(status_code=204)

    def validate_filter(self, signal_code: str) -> FilterVerdict:
        from aitrader.filters import FilterError, compile_filter

        try:
            compiled = compile_filter(signal_code)
        except FilterError as exc:
            return FilterVerdict(valid=False, message=exc.message, line=exc.line, col=exc.col)
        return FilterVerdict(valid=True, conditions=list(compiled.conditions))

    def _own(self, row: Any) -> None:
        if getattr(row, "user_id", self.user_id) != self.user_id:
            raise NotFoundError(f"{type(row).__name__.lower()} not found")

    async def _check_active_limit(self) -> None:
        active = await self._read("list_traders", self.user_id, active_only=True)
        limit = self.settings.max_active_traders
        if len(active) >= limit:
            raise ConflictError(f"{len(active)} traders are already active (MAX_ACTIVE_TRADERS={limit}); "
                                "disable one first or raise MAX_ACTIVE_TRADERS")

    async def _signal_counts(self) -> dict[str, int]:
        engine = getattr(await self._storage(), "engine", None)
        if engine is None:
            return {}
        return await asyncio.to_thread(_count_signals, engine, self.user_id)

    # ---- signals, positions, balances, orders -----------------------------------------------
    async def signals(self, trader_id: str | None, symbol: str | None, status: SignalStatus | None,
                      limit: int) -> Signals:
        rows = await self._read("list_signals", user_id=self.user_id, trader_id=trader_id,
                                symbol=symbol.upper() if symbol else None, status=status, limit=limit)
        names = {t.id: t.name for t in await self._read("list_traders", self.user_id)}
        return Signals(signals=[_signal_out(s, names.get(s.trader_id, "")) for s in rows])

    async def positions(self, status: str | None) -> Positions | Response:
        if status == "open":
            await self._snapshot_loaded()
            return Response(self.state.open_positions_json(), media_type=JSON_TYPE)
        rows = await self._read("list_positions", self.user_id, limit=500)
        if status == "closed":
            rows = [p for p in rows if p.status != PositionStatus.OPEN]
        return Positions.model_validate({"positions": rows})

    async def close_position(self, position_id: str) -> ClosedPosition:
        try:
            position = await self.backend.close_position(position_id, "manual")
        except Exception as exc:
            raise translate(exc, "position") from exc
        self.state.position_closed(position_id)  # so a refresh that read storage before cannot revive it
        return ClosedPosition.model_validate({"position": position})

    async def balance(self) -> Balances:
        rows = await self._read("get_balances", self.user_id)
        equity = (self.state.engine or {}).get("equity")
        return Balances.model_validate({"balances": rows, "equity": equity})

    async def orders(self, status: OrderStatus | None, limit: int) -> Orders:
        rows = await self._read("list_orders", self.user_id, status=[status] if status else None, limit=limit)
        return Orders.model_validate({"orders": rows})

    async def submit_order(self, body: OrderRequest) -> OrderOut:
        request = {**body.model_dump(mode="json"), "symbol": body.symbol.upper(), "user_id": self.user_id,
                   "purpose": "manual"}
        try:
            order = await self.backend.submit_order(request)
        except Exception as exc:
            self.metrics.orders_failed.inc()
            raise translate(exc, "order") from exc
        return OrderOut.model_validate(order)


def compile_checked(code: str) -> tuple[str, ...]:
    """The filter's conditions, or `InvalidFilter` locating the error."""
    from aitrader.filters import FilterError, compile_filter

    try:
        return tuple(compile_filter(code).conditions)
    except FilterError as exc:
        raise InvalidFilter(exc.message, exc.line, exc.col) from exc


def _validated_trader(data: dict[str, Any]) -> Trader:
    from aitrader.models import Trader

    try:
        return Trader.model_validate(data)
    except ValidationError as exc:
        raise RequestInvalid(exc.errors(include_url=False, include_context=False)) from exc


def _trader_out(trader: Trader, signal_count: int) -> TraderOut:
    return TraderOut.model_validate({**trader.model_dump(), "signal_count": signal_count})


def _signal_out(signal: Any, trader_name: str) -> SignalOut:
    conditions = (signal.meta or {}).get("conditions") or []
    return SignalOut.model_validate({**signal.model_dump(), "trader_name": trader_name,
                                     "conditions": [str(c) for c in conditions]})


def _count_signals(engine: Any, user_id: str) -> dict[str, int]:
    from sqlalchemy import func
    from sqlmodel import Session, select

    from aitrader.models import Signal

    with Session(engine) as session:
        rows = session.exec(select(Signal.trader_id, func.count()).where(Signal.user_id == user_id)
                            .group_by(Signal.trader_id)).all()
    return {trader_id: int(count) for trader_id, count in rows}


def _what(method: str) -> str:
    for noun in ("trader", "signal", "position", "order", "balance"):
        if noun in method:
            return noun
    return "item"


__all__ = ["ApiError", "ApiService"]
