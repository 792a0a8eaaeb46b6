"""A Storage that forwards every call to the Store actor, so the Store stays the single writer."""

from __future__ import annotations

from typing import Any

import ray


class RemoteStorage:
    """Implements the Storage protocol by calling ``store.call(method, ...)`` and waiting for it."""

    def __init__(self, store: Any, timeout_s: float = 30.0) -> None:
        self._store = store
        self._timeout = timeout_s

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_"):
            raise AttributeError(method)

        def call(*args: Any, **kwargs: Any) -> Any:
            return ray.get(self._store.call.remote(method, *args, **kwargs), timeout=self._timeout)

        call.__name__ = method
        return call

    def enqueue(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Fire-and-forget write, applied in order by the Store's batcher."""
        self._store.enqueue.remote(method, *args, **kwargs)

    def enqueue_many(self, writes: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> None:
        """Several fire-and-forget writes in one message (applied together, in order)."""
        self._store.enqueue_many.remote(writes)

    def close(self) -> None:
        """The Store owns the connection; nothing to close here."""
