"""`BufferedStorage`: keep writes in order while a backend is unreachable, flush them when it is back.

It wraps any `Storage` (Supabase's REST API, PostgreSQL). The rules, in one place:

* A write that meets `StorageUnavailable` is queued, and so is every write after it until the
  queue has drained: writes reach the backend in the order they were made. At most
  ``max_buffered`` (1,000) are kept; the next write raises `StorageUnavailable` saying so.
* A queued write answers from what is known: a create returns the validated row it will store
  (ids are made client-side, so that is the row); ``create_signal`` answers ``created=True``
  (the flush is idempotent by the signal's id); an update or a close applies the change to the
  last copy of the row this wrapper has seen. With no copy seen, it raises `WriteBuffered`: the
  write is queued, but no row can be returned.
* Reads while writes are queued raise `StorageUnavailable` — a clear error rather than stale
  data, because a read that misses queued writes would mislead (an open position shown open
  after it was closed).
* Every call first tries to flush the queue. A queued write that fails for another reason than
  unavailability (a uniqueness conflict, say) is logged and dropped, so it cannot block the
  writes behind it; ``dropped`` counts them.
* Inside `unbuffered()` nothing is queued: a write is committed to the backend or raises
  `StorageUnavailable` (also when earlier writes are still queued ahead of it). The Store uses it
  for money writes (orders, positions, balances), which must be durable before their caller goes
  on: the queue lives in memory, and a crash of the process would lose it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, TypeVar

from sqlmodel import SQLModel

from aitrader.models import (
    Balance,
    Heartbeat,
    Order,
    OrderStatus,
    Position,
    PositionStatus,
    Signal,
    SignalStatus,
    Trader,
    utcnow,
)
from aitrader.storage.base import Storage, StorageUnavailable, WriteBuffered

log = logging.getLogger("aitrader.storage")
T = TypeVar("T", bound=SQLModel)
R = TypeVar("R")
_KNOWN_ROWS = 10_000


class BufferedStorage:
    """A `Storage` that queues writes in order while ``inner`` raises `StorageUnavailable`."""

    def __init__(self, inner: Storage, *, max_buffered: int = 1_000) -> None:
        self.inner = inner
        self.max_buffered = max_buffered
        self.dropped = 0
        self._queue: deque[tuple[str, tuple[Any, ...], dict[str, Any]]] = deque()
        self._reason: str | None = None
        self._known: OrderedDict[tuple[type[SQLModel], str], SQLModel] = OrderedDict()
        self._lock = threading.RLock()
        self._unbuffered = threading.local()

    @contextmanager
    def unbuffered(self) -> Iterator[None]:
        """Writes made inside (on this thread) are committed or raise `StorageUnavailable`; none is queued."""
        depth = getattr(self._unbuffered, "depth", 0)
        self._unbuffered.depth = depth + 1
        try:
            yield
        finally:
            self._unbuffered.depth = depth

    # -- state ----------------------------------------------------------------------------

    @property
    def degraded(self) -> str | None:
        """Why writes are being queued (for /status), or None when the backend is healthy."""
        with self._lock:
            return self._reason if self._queue else None

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._queue)

    def health(self) -> dict[str, Any]:
        with self._lock:
            return {"queued": len(self._queue), "degraded": self.degraded, "dropped": self.dropped}

    def flush(self) -> int:
        """Apply queued writes in order until the backend fails again; return how many remain."""
        with self._lock:
            while self._queue:
                method, args, kwargs = self._queue[0]
                try:
                    result = getattr(self.inner, method)(*args, **kwargs)
                except StorageUnavailable as exc:
                    self._reason = str(exc)
                    return len(self._queue)
                except Exception as exc:
                    self.dropped += 1
                    log.error("dropping a queued %s write that cannot succeed: %s", method, exc)
                else:
                    self._remember(result)
                self._queue.popleft()
            if self._reason is not None:
                log.warning("storage available again; queued writes flushed in order")
                self._reason = None
            return 0

    # -- plumbing -------------------------------------------------------------------------

    def _remember(self, result: Any) -> None:
        items = result if isinstance(result, list | tuple) else [result]
        for item in items:
            key = getattr(item, "id", None)
            if isinstance(item, SQLModel) and isinstance(key, str):
                self._known[(type(item), key)] = item
                self._known.move_to_end((type(item), key))
        while len(self._known) > _KNOWN_ROWS:
            self._known.popitem(last=False)

    def _read(self, method: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            if self.flush():
                raise StorageUnavailable(
                    f"storage is unavailable ({self._reason}); {len(self._queue)} writes are queued and "
                    "will be applied in order when it is back, so reads wait until then"
                )
            result = getattr(self.inner, method)(*args, **kwargs)
            self._remember(result)
            return result

    def _write(self, method: str, provisional: Callable[[], R], *args: Any, **kwargs: Any) -> R:
        with self._lock:
            if getattr(self._unbuffered, "depth", 0):
                return self._write_through(method, *args, **kwargs)
            if not self.flush():
                try:
                    result = getattr(self.inner, method)(*args, **kwargs)
                except StorageUnavailable as exc:
                    self._reason = str(exc)
                    log.error("storage unavailable; queueing writes in order: %s", exc)
                else:
                    self._remember(result)
                    return result
            if len(self._queue) >= self.max_buffered:
                raise StorageUnavailable(
                    f"storage has been unavailable ({self._reason}) and {self.max_buffered} writes are "
                    "queued; this write was refused: fix the database connection"
                )
            try:
                answer = provisional()  # a ValueError (a bad write) propagates and nothing is queued
            except WriteBuffered:
                self._queue.append((method, args, kwargs))
                raise
            self._queue.append((method, args, kwargs))
            self._remember(answer)
            return answer

    def _write_through(self, method: str, *args: Any, **kwargs: Any) -> Any:
        queued = self.flush()
        if queued:
            raise StorageUnavailable(
                f"storage is unavailable ({self._reason}); {queued} writes are queued ahead of this {method}, "
                "which must be committed before its caller goes on: it was refused, retry when the database is back"
            )
        try:
            result = getattr(self.inner, method)(*args, **kwargs)
        except StorageUnavailable as exc:
            self._reason = str(exc)
            raise
        self._remember(result)
        return result

    def _changed(self, model: type[T], key: str, changes: dict[str, Any]) -> T:
        unknown = set(changes) - set(model.model_fields)
        if unknown:
            raise ValueError(f"{model.__name__} has no field(s) {', '.join(sorted(unknown))}")
        known = self._known.get((model, key))
        if known is None:
            raise WriteBuffered(
                f"storage is unavailable; the {model.__name__.lower()} {key!r} update is queued and will "
                "be applied in order when it is back"
            )
        merged = {**known.model_dump(), **changes}
        if "updated_at" in model.model_fields:
            merged["updated_at"] = utcnow()
        return model.model_validate(merged)

    @staticmethod
    def _copy(row: T) -> T:
        return type(row).model_validate(row.model_dump())

    # -- traders --------------------------------------------------------------------------

    def list_traders(self, user_id: str, *, active_only: bool = False) -> list[Trader]:
        return self._read("list_traders", user_id, active_only=active_only)

    def get_trader(self, trader_id: str) -> Trader:
        return self._read("get_trader", trader_id)

    def create_trader(self, trader: Trader) -> Trader:
        return self._write("create_trader", lambda: self._copy(trader), trader)

    def update_trader(self, trader_id: str, **changes: Any) -> Trader:
        return self._write("update_trader", lambda: self._changed(Trader, trader_id, changes), trader_id, **changes)

    def delete_trader(self, trader_id: str) -> None:
        self._write("delete_trader", lambda: None, trader_id)

    # -- signals --------------------------------------------------------------------------

    def create_signal(self, signal: Signal) -> tuple[Signal, bool]:
        return self._write("create_signal", lambda: (self._copy(signal), True), signal)

    def get_signal(self, signal_id: str) -> Signal:
        return self._read("get_signal", signal_id)

    def update_signal(self, signal_id: str, **changes: Any) -> Signal:
        return self._write("update_signal", lambda: self._changed(Signal, signal_id, changes), signal_id, **changes)

    def list_signals(
        self,
        *,
        user_id: str | None = None,
        trader_id: str | None = None,
        symbol: str | None = None,
        status: SignalStatus | None = None,
        limit: int = 100,
    ) -> list[Signal]:
        return self._read(
            "list_signals", user_id=user_id, trader_id=trader_id, symbol=symbol, status=status, limit=limit
        )

    # -- positions ------------------------------------------------------------------------

    def create_position(self, position: Position) -> Position:
        return self._write("create_position", lambda: self._copy(position), position)

    def get_position(self, position_id: str) -> Position:
        return self._read("get_position", position_id)

    def update_position(self, position_id: str, **changes: Any) -> Position:
        return self._write(
            "update_position", lambda: self._changed(Position, position_id, changes), position_id, **changes
        )

    def list_positions(
        self, user_id: str, *, status: PositionStatus | None = None, limit: int = 500
    ) -> list[Position]:
        return self._read("list_positions", user_id, status=status, limit=limit)

    def close_position(
        self,
        position_id: str,
        *,
        exit_price: Decimal,
        pnl: Decimal,
        pnl_pct: Decimal,
        reason: str,
        status: PositionStatus = PositionStatus.CLOSED,
        exit_order_id: str | None = None,
        fees: Decimal | None = None,
    ) -> tuple[Position, bool]:
        if status is PositionStatus.OPEN:
            raise ValueError("close_position needs a closed status (closed or stopped)")
        changes: dict[str, Any] = {
            "status": status,
            "exit_price": exit_price,
            "current_price": exit_price,
            "pnl": pnl,
            "pnl_pct": pnl_pct,
            "close_reason": reason,
            "exit_order_id": exit_order_id,
            "closed_at": utcnow(),
        }
        if fees is not None:
            changes["fees"] = fees

        def provisional() -> tuple[Position, bool]:
            known = self._known.get((Position, position_id))
            if isinstance(known, Position) and known.status is not PositionStatus.OPEN:
                return known, False  # queued behind another close: the conditional PATCH no-ops
            return self._changed(Position, position_id, changes), True

        kwargs = {k: v for k, v in changes.items() if k not in ("current_price", "closed_at")}
        kwargs["reason"] = kwargs.pop("close_reason")
        return self._write("close_position", provisional, position_id, **kwargs)

    # -- orders ---------------------------------------------------------------------------

    def create_order(self, order: Order) -> Order:
        return self._write("create_order", lambda: self._copy(order), order)

    def get_order(self, order_id: str) -> Order:
        return self._read("get_order", order_id)

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        return self._read("get_order_by_client_id", client_order_id)

    def update_order(self, order_id: str, **changes: Any) -> Order:
        return self._write("update_order", lambda: self._changed(Order, order_id, changes), order_id, **changes)

    def list_orders(
        self, user_id: str, *, status: Sequence[OrderStatus] | None = None, limit: int = 100
    ) -> list[Order]:
        return self._read("list_orders", user_id, status=status, limit=limit)

    # -- balances -------------------------------------------------------------------------

    def get_balances(self, user_id: str) -> list[Balance]:
        return self._read("get_balances", user_id)

    def set_balances(self, user_id: str, balances: Sequence[Balance]) -> None:
        self._write("set_balances", lambda: None, user_id, list(balances))

    def update_balances(self, user_id: str, balances: Sequence[Balance]) -> None:
        self._write("update_balances", lambda: None, user_id, list(balances))

    # -- several writes at once -----------------------------------------------------------

    def apply_many(self, writes: Sequence[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
        """Apply several writes in order: inside `unbuffered()` as the backend's one transaction when it
        has `apply_many` (committed together or not at all), otherwise one by one like separate calls."""
        with self._lock:
            if getattr(self._unbuffered, "depth", 0) and callable(getattr(self.inner, "apply_many", None)):
                results: list[Any] = self._write_through("apply_many", list(writes))
                return results
            return [getattr(self, method)(*args, **kwargs) for method, args, kwargs in writes]

    # -- heartbeat and lifecycle ----------------------------------------------------------

    def heartbeat(self, component: str, user_id: str = "", info: dict[str, Any] | None = None) -> None:
        self._write("heartbeat", lambda: None, component, user_id, info)

    def get_heartbeat(self, component: str) -> Heartbeat | None:
        return self._read("get_heartbeat", component)

    def close(self) -> None:
        """Try a last flush, then close the backend; writes still queued are logged as lost."""
        with self._lock:
            remaining = self.flush()
            if remaining:
                log.error("closing storage with %d writes still queued: %s", remaining, self._reason)
            self.inner.close()
