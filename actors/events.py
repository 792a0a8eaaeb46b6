"""EventHub actor: the engine's ordered event log, with async long-poll reads by seq.

Every start of the actor (a new engine run, or Ray restarting it after a crash) is a new log with
a new ``run_id``; reads answer with it, so readers never resume a seq of an earlier run.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ray

from aitrader.events import EventBatch, EventLog


@ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0, max_concurrency=1000)
class EventHub:
    """Holds an `EventLog`; publishers append, readers long-poll with `since`."""

    def __init__(self, capacity: int = 10_000) -> None:
        # A restarted hub starts a new seq epoch above any seq a reader may still hold (readers
        # that ignore run ids are told they fell off rather than silently skipping events), and a
        # new run id, which does not depend on this machine's clock agreeing with the last one's.
        import time

        self._log = EventLog(capacity=capacity, start_seq=int(time.time() * 1000) * 1000)
        self._changed = asyncio.Condition()

    async def ping(self) -> int:
        return self._log.last_seq

    async def pid(self) -> int:
        import os

        return os.getpid()

    async def publish(self, channel: str, type: str, data: dict[str, Any]) -> int:
        event = self._log.publish(channel, type, data)
        async with self._changed:
            self._changed.notify_all()
        return event.seq

    async def publish_many(self, events: list[tuple[str, str, dict[str, Any]]]) -> int:
        seq = self._log.last_seq
        for channel, type, data in events:
            seq = self._log.publish(channel, type, data).seq
        async with self._changed:
            self._changed.notify_all()
        return seq

    async def since(
        self, seq: int, channels: list[str] | None = None, timeout: float = 0.0, limit: int = 1000
    ) -> EventBatch:
        """Events after ``seq``; waits up to ``timeout`` seconds for one if there are none yet."""
        batch = self._log.since(seq, channels, limit)
        if batch.events or batch.fell_off or timeout <= 0:
            return batch
        deadline = asyncio.get_running_loop().time() + min(timeout, 60.0)
        async with self._changed:
            while True:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    break
                batch = self._log.since(seq, channels, limit)
                if batch.events or batch.fell_off:
                    return batch
        return self._log.since(seq, channels, limit)

    async def last_seq(self) -> int:
        return self._log.last_seq

    async def run_id(self) -> str:
        """This log's id: it changes whenever the hub starts again, and with it the seq series."""
        return self._log.run_id
