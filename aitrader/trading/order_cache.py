"""A Storage wrapper for the one writer of orders (the paper Executor): orders by client order id from
memory, and each broker operation's writes sent to storage as one synchronous message.

Inside `batch()` (one paper broker operation: a fill, a rest, a cancel), ``create_order``,
``update_order``, ``set_balances`` and ``update_balances`` are collected and sent together through ``write_many`` (the
Store actor's ``call_many``) when the operation ends, and that call returns only once storage has
committed them. Nothing the operation did is acknowledged before then: if the process dies
earlier, storage holds the state from before the operation, which is consistent (a paper fill has
no effect outside this process). If ``write_many`` fails, the cache forgets the batch's orders and
the error propagates, so the broker can roll its memory back too. Outside a batch every write goes
straight through. Orders are never written behind: a queued write could be lost with its queue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from aitrader.models import Balance, Order, utcnow
from aitrader.storage.base import Storage

Write = tuple[str, tuple[Any, ...], dict[str, Any]]
#: Applies several writes in order and returns once every one is committed: their results, in order, or
#: only the last one (a close's result is the only one used).
WriteMany = Callable[[list[Write]], Any]


class OrderCache:
    """Delegates everything to ``storage`` except the order and balance calls described above."""

    def __init__(self, storage: Storage, user_id: str, *, write_many: WriteMany | None = None,
                 preload_limit: int = 10_000) -> None:
        self._storage = storage
        self._write_many = write_many
        self._batch: list[Write] | None = None
        self._undo: dict[str, Order | None] = {}
        #: Client ids a failed batch touched: storage may hold part of it, so ask storage.
        self._unsure: set[str] = set()
        loaded = storage.list_orders(user_id, limit=preload_limit)
        self._by_client_id: dict[str, Order] = {o.client_order_id: o for o in loaded}
        self._client_id_of: dict[str, str] = {o.id: o.client_order_id for o in loaded}
        #: True when every stored order is in memory, so a miss means "no such order".
        self._complete = len(loaded) < preload_limit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._storage, name)

    def _remember(self, order: Order) -> Order:
        if self._batch is not None and order.client_order_id not in self._undo:
            self._undo[order.client_order_id] = self._by_client_id.get(order.client_order_id)
        self._by_client_id[order.client_order_id] = order
        self._client_id_of[order.id] = order.client_order_id
        return order

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        cached = self._by_client_id.get(client_order_id)
        if client_order_id in self._unsure:
            self._unsure.discard(client_order_id)
            cached = None
        elif cached is not None or self._complete:
            return cached
        found = self._storage.get_order_by_client_id(client_order_id)
        return self._remember(found) if found is not None else None

    def create_order(self, order: Order) -> Order:
        if self._batch is not None:
            self._batch.append(("create_order", (order,), {}))
            return self._remember(order)  # `update_order` replaces cached rows, never mutates them
        return self._remember(self._storage.create_order(order))

    def update_order(self, order_id: str, **changes: Any) -> Order:
        cached = self._by_client_id.get(self._client_id_of.get(order_id, ""))
        if self._batch is None or cached is None:
            return self._remember(self._storage.update_order(order_id, **changes))
        # Not validated here: the batch's write is, by storage, before anything is committed.
        merged = self._remember(Order.model_construct(**{**cached.model_dump(), **changes, "updated_at": utcnow()}))
        for index, (method, args, _kwargs) in enumerate(self._batch):
            if method == "create_order" and args[0].id == order_id:  # not stored yet: store the final row once
                self._batch[index] = ("create_order", (merged,), {})
                return merged
        self._batch.append(("update_order", (order_id,), changes))
        return merged

    def set_balances(self, user_id: str, balances: Sequence[Balance]) -> None:
        if self._batch is None:
            self._storage.set_balances(user_id, balances)
        else:
            self._batch.append(("set_balances", (user_id, list(balances)), {}))

    def update_balances(self, user_id: str, balances: Sequence[Balance]) -> None:
        if self._batch is None:
            self._storage.update_balances(user_id, balances)
        else:
            self._batch.append(("update_balances", (user_id, list(balances)), {}))

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Send one broker operation's writes as one synchronous message when it ends (see the module docstring).

        A fill changes the balances and the order's status together: one message is applied whole
        (barring a crash of the Store between two commits), never balances without the order.
        """
        if self._batch is not None or self._write_many is None:
            yield
            return
        self._batch, self._undo = [], {}
        try:
            yield
        finally:
            writes, self._batch = self._batch, None
            if writes:
                self._send(writes)
            self._undo = {}

    def close_position(self, position_id: str, **close: Any) -> Any:
        """Close a position; inside a batch, in the same message as the batch's writes (the exit's fill)."""
        if self._batch is None:
            return self._storage.close_position(position_id, **close)
        writes, self._batch = [*self._batch, ("close_position", (position_id,), close)], []
        return self._send(writes)[-1]

    def _send(self, writes: list[Write]) -> list[Any]:
        assert self._write_many is not None
        try:
            return list(self._write_many(writes))
        except BaseException:
            self._forget(self._undo)
            self._undo = {}
            raise

    def _forget(self, undo: dict[str, Order | None]) -> None:
        """Drop what a batch that never reached storage put in the cache."""
        for client_order_id, previous in undo.items():
            self._unsure.add(client_order_id)
            current = self._by_client_id.pop(client_order_id, None)
            if current is not None:
                self._client_id_of.pop(current.id, None)
            if previous is not None:
                self._by_client_id[client_order_id] = previous
                self._client_id_of[previous.id] = client_order_id
