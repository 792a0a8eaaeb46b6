"""A Storage wrapper for the one writer of orders (the Executor): orders by client order id from memory,
and, optionally, order updates and balances written behind.

New orders are always written through (an order is stored before it is sent). With ``write_behind``
(the Store actor's in-order ``enqueue``), ``update_order`` and ``set_balances`` are queued instead
of waited for; the Store applies queued writes before any later call, so the next synchronous
write (e.g. the position's close) lands after them. A Store crash can lose queued writes: use
write-behind for paper trading only, where start-up settles orders left PENDING_SUBMIT.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from aitrader.models import Balance, Order, utcnow
from aitrader.storage.base import Storage

WriteBehind = Callable[..., None]
#: Sends several queued writes in one message, so they reach the Store together or not at all.
WriteBehindMany = Callable[[list[tuple[str, tuple[Any, ...], dict[str, Any]]]], None]


class OrderCache:
    """Delegates everything to ``storage`` except the order and balance calls described above."""

    def __init__(self, storage: Storage, user_id: str, *, write_behind: WriteBehind | None = None,
                 write_behind_many: WriteBehindMany | None = None, preload_limit: int = 10_000) -> None:
        self._storage = storage
        self._write_behind = write_behind
        self._write_behind_many = write_behind_many
        self._batch: list[tuple[str, tuple[Any, ...], dict[str, Any]]] | None = None
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
        self._queue("update_order", order_id, **changes)
        return self._remember(merged)

    def set_balances(self, user_id: str, balances: Sequence[Balance]) -> None:
        if self._write_behind is None:
            self._storage.set_balances(user_id, balances)
        else:
            self._queue("set_balances", user_id, list(balances))

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Send the written-behind writes of one broker operation as one message.

        A fill changes the balances and the order's status: if the process dies between two
        separate messages, storage could hold the new balances next to an order still pending,
        and the order would be sent again after a restart. One message arrives whole or not at all.
        """
        if self._batch is not None or self._write_behind_many is None:
            yield
            return
        self._batch = []
        try:
            yield
        finally:
            writes, self._batch = self._batch, None
            if writes:
                self._write_behind_many(writes)

    def _queue(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self._batch is not None:
            self._batch.append((method, args, kwargs))
        else:
            assert self._write_behind is not None
            self._write_behind(method, *args, **kwargs)
