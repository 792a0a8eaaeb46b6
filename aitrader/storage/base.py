"""The Storage protocol every backend implements, and its errors."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from aitrader.models.enums import OrderStatus, PositionStatus, SignalStatus

if TYPE_CHECKING:  # annotations only: importing the errors must not load the table models
    from aitrader.models import Balance, Heartbeat, Order, Position, Signal, Trader


class StorageError(Exception):
    """Base of every storage failure."""


class NotFound(StorageError):
    """The row asked for does not exist."""


class Conflict(StorageError):
    """The write breaks a uniqueness rule (e.g. a trader name used twice)."""


class StorageUnavailable(StorageError):
    """The backend cannot be reached; the write was not applied (or was buffered, if said so)."""


class WriteBuffered(StorageError):
    """The write is queued and will be applied in order, but no current row can be returned.

    Deliberately not a `StorageUnavailable`: retrying the call would queue the write twice.
    """


@runtime_checkable
class Storage(Protocol):
    """Persistence for traders, signals, positions, orders, balances and heartbeats.

    Every method is synchronous and safe to call from one thread at a time per instance.
    Returned models are detached copies: mutating them changes nothing until passed back.
    """

    # traders
    def list_traders(self, user_id: str, *, active_only: bool = False) -> list[Trader]: ...
    def get_trader(self, trader_id: str) -> Trader: ...
    def create_trader(self, trader: Trader) -> Trader: ...
    def update_trader(self, trader_id: str, **changes: Any) -> Trader: ...
    def delete_trader(self, trader_id: str) -> None: ...

    # signals
    def create_signal(self, signal: Signal) -> tuple[Signal, bool]:
        """Store a signal unless one with its id exists; return (stored signal, created?)."""
        ...

    def get_signal(self, signal_id: str) -> Signal: ...
    def update_signal(self, signal_id: str, **changes: Any) -> Signal: ...
    def list_signals(
        self,
        *,
        user_id: str | None = None,
        trader_id: str | None = None,
        symbol: str | None = None,
        status: SignalStatus | None = None,
        limit: int = 100,
    ) -> list[Signal]: ...

    # positions
    def create_position(self, position: Position) -> Position: ...
    def get_position(self, position_id: str) -> Position: ...
    def update_position(self, position_id: str, **changes: Any) -> Position: ...
    def list_positions(
        self, user_id: str, *, status: PositionStatus | None = None, limit: int = 500
    ) -> list[Position]: ...
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
        """Close an open position exactly once; return (position, closed by this call?)."""
        ...

    # orders
    def create_order(self, order: Order) -> Order: ...
    def get_order(self, order_id: str) -> Order: ...
    def get_order_by_client_id(self, client_order_id: str) -> Order | None: ...
    def update_order(self, order_id: str, **changes: Any) -> Order: ...
    def list_orders(
        self, user_id: str, *, status: Sequence[OrderStatus] | None = None, limit: int = 100
    ) -> list[Order]: ...

    # balances
    def get_balances(self, user_id: str) -> list[Balance]: ...
    def set_balances(self, user_id: str, balances: Sequence[Balance]) -> None:
        """Replace the user's balances with these, atomically."""
        ...

    def update_balances(self, user_id: str, balances: Sequence[Balance]) -> None:
        """Store these assets' balances (insert or update), leaving the user's other assets as they are."""
        ...

    # heartbeat and lifecycle
    def heartbeat(self, component: str, user_id: str = "", info: dict[str, Any] | None = None) -> None: ...
    def get_heartbeat(self, component: str) -> Heartbeat | None: ...
    def close(self) -> None: ...
