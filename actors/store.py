"""Store actor: the single writer to storage; batches fire-and-forget writes in order."""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

import ray

from aitrader.config import Settings
from aitrader.storage import Storage, StorageUnavailable, WriteBuffered, open_storage
from aitrader.storage.base import Storage as StorageProtocol

log = logging.getLogger("aitrader.store")

#: Storage methods other actors may call through the Store.
ALLOWED = frozenset(
    name for name in dir(StorageProtocol) if not name.startswith("_") and name not in {"close"}
)
MAX_BUFFERED = 1_000


@ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0)
class Store:
    """Owns the storage connection; `call` runs one method, `enqueue` batches writes in order."""

    def __init__(self, settings: Settings, flush_interval_s: float = 0.05) -> None:
        self._storage: Storage = open_storage(settings)
        self._queue: deque[tuple[str, tuple[Any, ...], dict[str, Any]]] = deque()
        self._lock = threading.RLock()
        self._degraded: str | None = None
        self._written = 0
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, args=(flush_interval_s,), daemon=True)
        self._flusher.start()

    def ping(self) -> bool:
        return True

    def pid(self) -> int:
        import os

        return os.getpid()

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run one storage method now, after every queued write (so order is kept)."""
        if method not in ALLOWED:
            raise AttributeError(f"Storage has no method {method!r}")
        with self._lock:
            self._flush()
            if self._queue:
                raise StorageUnavailable(f"storage is unavailable: {self._degraded}; {len(self._queue)} writes queued")
            return getattr(self._storage, method)(*args, **kwargs)

    def enqueue(self, method: str, *args: Any, **kwargs: Any) -> int:
        """Queue a write to be applied in order within ``flush_interval_s``; return the queue length."""
        if method not in ALLOWED:
            raise AttributeError(f"Storage has no method {method!r}")
        with self._lock:
            if len(self._queue) >= MAX_BUFFERED:
                raise StorageUnavailable(
                    f"storage has been unavailable ({self._degraded}) and {MAX_BUFFERED} writes are queued; "
                    "fix the database connection before more can be accepted"
                )
            self._queue.append((method, args, kwargs))
            return len(self._queue)

    def enqueue_many(self, writes: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> int:
        """Queue several writes at once: they arrive together, in order, or not at all."""
        for method, _args, _kwargs in writes:
            if method not in ALLOWED:
                raise AttributeError(f"Storage has no method {method!r}")
        with self._lock:
            if len(self._queue) + len(writes) > MAX_BUFFERED:
                raise StorageUnavailable(
                    f"storage has been unavailable ({self._degraded}) and {MAX_BUFFERED} writes are queued; "
                    "fix the database connection before more can be accepted"
                )
            self._queue.extend(writes)
            return len(self._queue)

    def flush(self) -> int:
        """Apply every queued write now; return how many are still queued."""
        with self._lock:
            self._flush()
            return len(self._queue)

    def health(self) -> dict[str, Any]:
        with self._lock:
            report = {"queued": len(self._queue), "degraded": self._degraded, "written": self._written}
            inner = getattr(self._storage, "health", None)
            if callable(inner):
                backend = inner()
                report["backend"] = backend
                report["degraded"] = report["degraded"] or backend.get("degraded")
            return report

    def shutdown(self) -> int:
        self._stop.set()
        remaining = self.flush()
        self._storage.close()
        return remaining

    def _flush(self) -> None:
        while self._queue:
            method, args, kwargs = self._queue[0]
            try:
                getattr(self._storage, method)(*args, **kwargs)
            except WriteBuffered:
                pass  # accepted: the backend's own BufferedStorage keeps it in order until it is back
            except StorageUnavailable as exc:
                if self._degraded is None:
                    log.error("storage unavailable, keeping %d writes in order: %s", len(self._queue), exc)
                self._degraded = str(exc)
                return
            except Exception:
                # A write that can never succeed (a validation or uniqueness error) must not
                # block every write behind it.
                log.exception("dropping a queued %s write that failed", method)
            self._queue.popleft()
            self._written += 1
        if self._degraded is not None:
            log.warning("storage available again; queued writes flushed")
            self._degraded = None

    def _flush_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            with self._lock:
                if self._queue:
                    self._flush()
