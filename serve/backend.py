"""What the API needs from the engine: `EngineBackend`, over Ray actors or in-process.

`RayBackend` holds the handles of the named actors: passed in by Serve's ``.bind()``
composition, or asked of the supervisor the first time each is needed (a handle to a restartable
named actor stays valid across restarts; one to an actor the supervisor replaced is asked again).
`LocalBackend` runs the same calls in-process — a real `SQLStorage`, a real `EventLog` and
small recording fakes for the executor and scheduler — so the FastAPI app is testable without Ray.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from aitrader.events import EventBatch, EventLog
from serve.errors import EngineUnavailable

if TYPE_CHECKING:
    from aitrader.storage import Storage


class EngineBackend(Protocol):
    """The engine as the API sees it; every call may raise (see `serve.errors.translate`)."""

    async def status(self) -> dict[str, Any] | None:
        """The supervisor's /status body (without ``version``), or None when there is no supervisor."""
        ...

    async def starting(self, wait_s: float) -> list[str]:
        """What of the engine is still starting (empty once it is up), waiting up to ``wait_s`` for none."""
        ...

    async def markets(self) -> list[dict[str, Any]]: ...
    async def store(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run one Storage method through the single writer."""
        ...

    async def events_since(self, seq: int, channels: list[str] | None, timeout: float, limit: int) -> EventBatch: ...
    async def last_seq(self) -> int: ...
    async def submit_order(self, request: dict[str, Any]) -> dict[str, Any]: ...
    async def close_position(self, position_id: str, reason: str = "manual") -> dict[str, Any]: ...
    async def trader_changed(self, trader_id: str) -> None: ...
    async def trader_removed(self, trader_id: str) -> None: ...


class RayBackend:
    """`EngineBackend` over actor handles.

    Handles not given are asked of the ``supervisor`` on first use (`Supervisor.handle`), so the
    API can be deployed while the supervisor is still building the graph, and the replica imports
    an actor's module (which unpickling its handle does) only once it talks to that actor. Without
    a supervisor, ``store`` and ``events`` are needed; the executor and scheduler are optional.
    """

    def __init__(
        self,
        *,
        store: Any = None,
        events: Any = None,
        supervisor: Any = None,
        executor: Any = None,
        scheduler: Any = None,
    ) -> None:
        if supervisor is None and (store is None or events is None):
            raise ValueError("RayBackend needs the store and events handles, or the supervisor's to ask for them")
        self._supervisor = supervisor
        self._handles: dict[str, Any] = {"store": store, "events": events, "executor": executor,
                                         "scheduler": scheduler}
        self._given = {name for name, handle in self._handles.items() if handle is not None}

    async def _actor(self, name: str) -> Any:
        """The handle of ``name``, asked of the supervisor the first time (None: no such actor)."""
        handle = self._handles.get(name)
        if handle is None and self._supervisor is not None and name not in self._given:
            handle = self._handles[name] = await self._supervisor.handle.remote(name)
        return handle

    async def _call(self, name: str, method: str, *args: Any, **kwargs: Any) -> Any:
        handle = await self._actor(name)
        if handle is None:
            raise EngineUnavailable(f"the {name} is not running; start the engine with `aitrader up`")
        try:
            return await getattr(handle, method).remote(*args, **kwargs)
        except Exception as exc:
            if name not in self._given and _actor_died(exc):
                self._handles[name] = None  # the supervisor replaces a dead actor: ask for the new one
            raise

    async def status(self) -> dict[str, Any] | None:
        return None if self._supervisor is None else await self._supervisor.status.remote()

    async def starting(self, wait_s: float) -> list[str]:
        return [] if self._supervisor is None else await self._supervisor.starting.remote(wait_s)

    async def markets(self) -> list[dict[str, Any]]:
        return [] if self._supervisor is None else await self._supervisor.markets.remote()

    async def store(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await self._call("store", "call", method, *args, **kwargs)

    async def events_since(self, seq: int, channels: list[str] | None, timeout: float, limit: int) -> EventBatch:
        return await self._call("events", "since", seq, channels, timeout, limit)

    async def last_seq(self) -> int:
        return await self._call("events", "last_seq")

    async def submit_order(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self._call("executor", "submit_order", request)

    async def close_position(self, position_id: str, reason: str = "manual") -> dict[str, Any]:
        return await self._call("executor", "close_position", position_id, reason)

    async def trader_changed(self, trader_id: str) -> None:
        if await self._actor("scheduler") is not None:
            await self._call("scheduler", "upsert_trader", trader_id)

    async def trader_removed(self, trader_id: str) -> None:
        if await self._actor("scheduler") is not None:
            await self._call("scheduler", "remove_trader", trader_id)


def _actor_died(exc: Exception) -> bool:
    """Whether ``exc`` says the actor is gone for good (Ray's ``ActorDiedError``), not restarting."""
    from ray.exceptions import ActorDiedError

    return isinstance(exc, ActorDiedError)


class LocalBackend:
    """In-process `EngineBackend` for tests: storage, event log, recording executor and scheduler."""

    def __init__(
        self,
        storage: Storage,
        log: EventLog | None = None,
        *,
        user_id: str = "local",
        markets: list[dict[str, Any]] | None = None,
        status: dict[str, Any] | None = None,
        fill_price: Decimal = Decimal("100"),
        order_error: Callable[[dict[str, Any]], Exception | None] | None = None,
    ) -> None:
        self.storage = storage
        self.log = log or EventLog(capacity=1000)
        self.user_id = user_id
        self.market_rows = markets or []
        self.status_body = status
        self.fill_price = fill_price
        self.order_error = order_error
        self.orders: list[dict[str, Any]] = []
        self.scheduler_calls: list[tuple[str, str]] = []
        #: What `starting` reports: set it to names to play an engine still starting.
        self.still_starting: list[str] = []

    def publish(self, channel: str, type: str, data: dict[str, Any]) -> int:
        """Append an event to the log (safe from any thread; readers poll)."""
        return self.log.publish(channel, type, data).seq

    async def status(self) -> dict[str, Any] | None:
        return self.status_body

    async def starting(self, wait_s: float) -> list[str]:
        if self.still_starting and wait_s > 0:
            await asyncio.sleep(min(wait_s, 0.01))
        return list(self.still_starting)

    async def markets(self) -> list[dict[str, Any]]:
        return list(self.market_rows)

    async def store(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.storage, method)(*args, **kwargs)

    async def events_since(self, seq: int, channels: list[str] | None, timeout: float, limit: int) -> EventBatch:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            batch = self.log.since(seq, channels, limit)
            if batch.events or batch.fell_off or loop.time() >= deadline:
                return batch
            await asyncio.sleep(0.005)

    async def last_seq(self) -> int:
        return self.log.last_seq

    async def submit_order(self, request: dict[str, Any]) -> dict[str, Any]:
        """Fill the order at ``fill_price`` (a BUY opens a LONG, a SELL a SHORT) unless ``order_error`` says no."""
        from aitrader.models import Order, Position, new_id

        self.orders.append(request)
        error = self.order_error(request) if self.order_error else None
        if error is not None:
            raise error
        price = Decimal(request.get("price") or self.fill_price)
        qty = Decimal(request["quantity"]) if request.get("quantity") else Decimal(request["quote_quantity"]) / price
        position = self.storage.create_position(Position.model_validate({
            "user_id": self.user_id, "symbol": request["symbol"], "side": "LONG" if request["side"] == "BUY" else "SHORT",
            "entry_price": price, "size": qty, "current_price": price,
            "stop_loss": request.get("stop_loss"), "take_profit": request.get("take_profit"),
        }))
        order = self.storage.create_order(Order.model_validate({
            "user_id": self.user_id, "client_order_id": new_id(), "symbol": request["symbol"],
            "side": request["side"], "type": request["type"], "quantity": request.get("quantity"),
            "quote_quantity": request.get("quote_quantity"), "price": request.get("price"), "status": "FILLED",
            "executed_qty": qty, "cumulative_quote_qty": qty * price, "position_id": position.id,
            "fills": [{"price": str(price), "qty": str(qty), "commission": "0", "commission_asset": "USDT"}],
        }))
        self.publish("positions", "position_update", position.model_dump(mode="json"))
        return order.model_dump(mode="json")

    async def close_position(self, position_id: str, reason: str = "manual") -> dict[str, Any]:
        from aitrader.models import utcnow

        position = self.storage.get_position(position_id)
        closed, _ = self.storage.close_position(
            position_id, exit_price=position.current_price or position.entry_price, pnl=Decimal(0),
            pnl_pct=Decimal(0), reason=reason,
        )
        data = closed.model_dump(mode="json")
        data["closed_at"] = data.get("closed_at") or utcnow().isoformat()
        self.publish("positions", "position_update", data)
        return data

    async def trader_changed(self, trader_id: str) -> None:
        self.scheduler_calls.append(("upsert", trader_id))

    async def trader_removed(self, trader_id: str) -> None:
        self.scheduler_calls.append(("remove", trader_id))
