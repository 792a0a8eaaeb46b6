"""A bounded event queue that never blocks the producer: when full it drops the oldest event."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class DropOldestQueue(Generic[T]):
    """Bounded FIFO for one asyncio loop; ``put`` never waits, ``dropped`` counts evictions."""

    def __init__(self, maxsize: int = 10_000) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, got {maxsize}")
        self._items: deque[T] = deque(maxlen=maxsize)
        self._ready = asyncio.Event()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        """Append ``item``, evicting (and counting) the oldest when full."""
        items = self._items
        if len(items) == items.maxlen:
            self.dropped += 1
        items.append(item)
        self._ready.set()

    def get_nowait(self) -> T | None:
        """The oldest item, or None when empty."""
        items = self._items
        if not items:
            return None
        item = items.popleft()
        if not items:
            self._ready.clear()
        return item

    async def get(self) -> T:
        """Wait for and return the oldest item."""
        while not self._items:
            await self._ready.wait()
        item = self._items.popleft()
        if not self._items:
            self._ready.clear()
        return item

    def drain(self) -> list[T]:
        """Every queued item, oldest first, leaving the queue empty."""
        items = list(self._items)
        self._items.clear()
        self._ready.clear()
        return items
