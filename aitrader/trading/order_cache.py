"""A Storage wrapper for the one writer of orders (the Executor): orders by client order id from memory,
and, optionally, order updates and balances written behind.

New orders are always written through (an order is stored before it is sent). With ``write_behind``
(the Store actor's in-order ``enqueue``), ``update_order`` and ``set_balances`` are queued instead
of waited for; the Store applies queued writes before any later call, so the next synchronous
write (e.g. the position's close) lands after them. A Store crash can lose queued writes: use
write-behind for paper trading only, where start-up settles orders left PENDING_SUBMIT.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from aitrader.models import Balance, Order, utcnow
from aitrader.storage.base import Storage

WriteBehind = Callable[..., None]


class OrderCache:
    """Delegates everything to ``storage`` except the order and balance calls described above."""

    def __init__(self, storage: Storage, user_id: str, *, write_behind: WriteBehind | None = None,
                 preload_limit: int = 10_000) -> None:
        self._storage = storage
        self._write_behind = write_behind
        loaded = storage.list_orders(user_id, limit=preload_limit)
        self._by_client_id: dict[str, Order] = {o.client_order_id: o for o in loaded}
        self._client_id_of: dict[str, str] = {o.id: o.client_order_id for o in loaded}
        #: True when every stored order is in memory, so a miss means "no such order".
        self._complete = len(loaded) < preload_limit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)

    def _remember(self, order: Order) -> Order:
        self._by_client_id[order.client_order_id] = order
        self._client_id_of[order.id] = order.client_order_id
        return order

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        cached = self._by_client_id.get(client_order_id)
        if cached is not None or self._complete:
            return cached
        found = self._storage.get_order_by_client_id(client_order_id)
        return self._remember(found) if found is not None else None

    def create_order(self, order: Order) -> Order:
        return self._remember(self._storage.create_order(order))

    def update_order(self, order_id: str, **changes: Any) -> Order:
        cached = self._by_client_id.get(self._client_id_of.get(order_id, ""))
        if self._write_behind is None or cached is None:
            return self._remember(self._storage.update_order(order_id, **changes))
        merged = Order.model_validate({**cached.model_dump(), **changes, "updated_at": utcnow()})
        self._write_behind("update_order", order_id, **changes)
        return self._remember(merged)

    def set_balances(self, user_id: str, balances: Sequence[Balance]) -> None:
        if self._write_behind is None:
            self._storage.set_balances(user_id, balances)
        else:
            self._write_behind("set_balances", user_id, list(balances))
