"""The order journal: every order is stored (PENDING_SUBMIT) before it is sent, then updated."""

from __future__ import annotations

from aitrader.models import Order, OrderStatus, TradingMode
from aitrader.storage.base import Storage
from aitrader.storage.validate import validated
from aitrader.trading.broker import OrderResult, SubmitOrder


class OrderJournal:
    """Writes a broker's orders to storage, keyed by their client order id."""

    def __init__(self, storage: Storage, user_id: str, mode: TradingMode) -> None:
        self.storage = storage
        self.user_id = user_id
        self.mode = mode

    def find(self, client_order_id: str) -> Order | None:
        """The stored order with this client order id, if any."""
        return self.storage.get_order_by_client_id(client_order_id)

    def begin(self, request: SubmitOrder) -> Order:
        """Store the order as PENDING_SUBMIT (before anything is sent) and return the stored row."""
        order = validated(  # as Order.model_validate does, without SQLAlchemy's per-field instrumentation
            Order,
            {
                "user_id": self.user_id,
                "client_order_id": request.client_order_id,
                "symbol": request.symbol,
                "side": request.side,
                "type": request.type,
                "mode": self.mode,
                "quantity": request.quantity,
                "quote_quantity": request.quote_quantity,
                "price": request.price,
                "status": OrderStatus.PENDING_SUBMIT,
                "position_id": request.position_id,
                "signal_id": request.signal_id,
                "purpose": request.purpose,
            }
        )
        return self.storage.create_order(order)

    def record(self, result: OrderResult) -> Order | None:
        """Copy a broker result onto the stored order (no-op if the order is not in storage)."""
        order = self.find(result.client_order_id)
        if order is None:
            return None
        return self.storage.update_order(
            order.id,
            status=result.status,
            exchange_order_id=result.exchange_order_id or None,
            executed_qty=result.executed_qty,
            cumulative_quote_qty=result.cumulative_quote_qty,
            fills=[f.to_json() for f in result.fills],
        )

    def reject(self, client_order_id: str, error: str, status: OrderStatus = OrderStatus.REJECTED) -> None:
        """Mark the stored order as refused (or expired), keeping the reason."""
        order = self.find(client_order_id)
        if order is not None:
            self.storage.update_order(order.id, status=status, error=error)
