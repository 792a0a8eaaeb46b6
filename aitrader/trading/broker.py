"""The Broker protocol shared by the paper and live brokers, and the messages it takes and returns."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol, runtime_checkable

from aitrader.models import Fill, Order, OrderSide, OrderStatus, OrderType

_ZERO = Decimal(0)

#: Order purposes: an entry opens (or adds to) a position, an exit closes one.
ENTRY, EXIT, MANUAL = "entry", "exit", "manual"


def client_order_id_for(source_id: str, purpose: str) -> str:
    """The one client order id for (signal or position id, purpose): identical on every retry.

    36 characters of ``[a-z0-9-]`` (Binance allows ``^[a-zA-Z0-9-_]{1,36}$``).
    """
    digest = hashlib.blake2b(f"{source_id}|{purpose}".encode(), digest_size=16).hexdigest()
    return f"ait-{digest}"


@dataclass(frozen=True, slots=True)
class SubmitOrder:
    """Command: place one order. Give exactly one of ``quantity`` or ``quote_quantity`` (MARKET only)."""

    symbol: str
    side: OrderSide
    type: OrderType
    client_order_id: str
    quantity: Decimal | None = None
    quote_quantity: Decimal | None = None
    price: Decimal | None = None
    purpose: str = MANUAL
    position_id: str | None = None
    signal_id: str | None = None

    def __post_init__(self) -> None:
        if (self.quantity is None) == (self.quote_quantity is None):
            raise ValueError("give exactly one of quantity or quote_quantity")
        if self.type is OrderType.LIMIT and (self.price is None or self.quantity is None):
            raise ValueError("a LIMIT order needs a price and a quantity")


@dataclass(frozen=True, slots=True)
class OrderResult:
    """Event: the broker's view of an order after a call (placed, filled, cancelled or looked up)."""

    symbol: str
    client_order_id: str
    exchange_order_id: str
    status: OrderStatus
    side: OrderSide
    type: OrderType
    executed_qty: Decimal = _ZERO
    cumulative_quote_qty: Decimal = _ZERO
    fills: tuple[Fill, ...] = field(default_factory=tuple)
    price: Decimal | None = None
    orig_qty: Decimal | None = None

    @property
    def average_price(self) -> Decimal | None:
        """Volume-weighted fill price, or None before any fill."""
        if self.executed_qty <= 0:
            return None
        return self.cumulative_quote_qty / self.executed_qty

    def commission(self, asset: str) -> Decimal:
        """Total commission charged in ``asset``."""
        return sum((f.commission for f in self.fills if f.commission_asset == asset), _ZERO)

    @classmethod
    def from_order(cls, order: Order) -> OrderResult:
        """The result recorded on a stored order."""
        return cls(
            symbol=order.symbol,
            client_order_id=order.client_order_id,
            exchange_order_id=order.exchange_order_id or "",
            status=order.status,
            side=order.side,
            type=order.type,
            executed_qty=order.executed_qty,
            cumulative_quote_qty=order.cumulative_quote_qty,
            fills=tuple(Fill.from_json(f) for f in order.fills),
            price=order.price,
            orig_qty=order.quantity,
        )


@dataclass(frozen=True, slots=True)
class AssetBalance:
    """Free and locked amounts of one asset (free may be negative in paper mode: a short's borrow)."""

    asset: str
    free: Decimal
    locked: Decimal = _ZERO

    @property
    def total(self) -> Decimal:
        """Free plus locked."""
        return self.free + self.locked


@runtime_checkable
class Broker(Protocol):
    """Places, cancels and looks up orders, and reports balances; paper and live alike."""

    def submit(self, request: SubmitOrder) -> OrderResult:
        """Place an order (idempotent per client order id); raise an `OrderRejected` subclass if refused."""
        ...

    def cancel(self, symbol: str, client_order_id: str) -> OrderResult:
        """Cancel an open order; raise `UnknownOrder` if there is none with that id."""
        ...

    def order_status(self, symbol: str, client_order_id: str) -> OrderResult:
        """Look an order up by its client order id; raise `UnknownOrder` if there is none."""
        ...

    def balances(self) -> dict[str, AssetBalance]:
        """Balances by asset."""
        ...

    def price(self, symbol: str) -> Decimal:
        """The latest price of ``symbol``."""
        ...
