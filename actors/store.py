"""Store actor: the single writer to storage.

Two kinds of writes, by what losing one would cost:

* money writes (orders, positions, balances) go through `call` or `call_many` and are committed
  to the backend before the caller gets an answer — never held in memory, neither here nor in a
  `BufferedStorage` under it (see `BufferedStorage.unbuffered`); a kill -9 of the Store loses none;
* signals, heartbeats and P&L marks may go through `enqueue`, batched every
  ``flush_interval_s``; a kill -9 loses at most that batch, which the next tick rewrites.
  A queued P&L mark is applied only while its position is open, so a late mark never overwrites
  a close.

With SQLite, commits never checkpoint the WAL: the flusher thread does, every
``CHECKPOINT_EVERY_COMMITS`` commits, outside the Store's lock and on a connection of its own
(aitrader/storage/engine.py `WalCheckpointer`), so a close's commit does not copy back 1,000 pages.

A caller goes before the flusher: the flusher applies the queue in small transactions (`MARK_BATCH`
marks, `FLUSH_BATCH` other writes) and starts none while a call is waiting for the Store's lock,
so a close waits for one small batch at most.
"""

from __future__ import annotations

import gc
import itertools
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import ray

from aitrader.local_channel import IdleCollector, LocalServer
from aitrader.models import PositionStatus
from aitrader.storage import Conflict, NotFound, Storage, StorageUnavailable, WriteBuffered, open_storage
from aitrader.storage.base import Storage as StorageProtocol
from aitrader.trader_records import TraderRecord, trader_record
from aitrader.views import position_view

if TYPE_CHECKING:
    from aitrader.config import Settings

log = logging.getLogger("aitrader.store")

#: Storage methods other actors may call through the Store.
ALLOWED = frozenset(
    name for name in dir(StorageProtocol) if not name.startswith("_") and name not in {"close"}
)
#: Writes that move or record money: committed before the caller proceeds, never queued.
MONEY_WRITES = frozenset({
    "create_order", "update_order", "create_position", "update_position", "close_position", "set_balances",
    "update_balances",
})
#: Writes that may be batched: losing the last batch costs nothing the next one does not rewrite.
QUEUEABLE = frozenset({"heartbeat", "create_signal", "update_signal", "update_position"})
#: The only fields a queued `update_position` may change: the Monitor's P&L marks.
MARK_FIELDS = frozenset({"current_price", "best_price", "pnl", "pnl_pct"})
MAX_BUFFERED = 1_000
#: The most open positions `open_position_views` answers (the Monitor restores its book from them).
OPEN_POSITIONS_LIMIT = 10_000
#: Queued writes applied per transaction by the flusher (a money call waits for one such batch at most).
FLUSH_BATCH = 8
#: Queued P&L marks applied by one `mark_positions` transaction (~20 us a mark: the lock is held < ~1.5 ms).
MARK_BATCH = 50
#: How long the flusher steps aside, each time, while a call waits for the Store's lock.
_YIELD_S = 0.0002
#: Python's GIL switch interval in the Store: a channel thread answering a close waits at most this long
#: for a flusher thread running Python code (the default, 5 ms, would be half the close path's budget).
SWITCH_INTERVAL_S = 0.001
#: With AITRADER_CLOSE_STAMPS=1 (bench/tick_to_close.py sets it) each close sent over the local channel
#: records when it was received, got the lock and was committed (`close_stamps`).
_STAMPS_ENV = "AITRADER_CLOSE_STAMPS"

Write = tuple[str, tuple[Any, ...], dict[str, Any]]


def check_queueable(method: str, kwargs: dict[str, Any]) -> None:
    """Refuse a queued write that must be durable before its caller proceeds."""
    if method not in ALLOWED:
        raise AttributeError(f"Storage has no method {method!r}")
    if method not in QUEUEABLE or (method == "update_position" and not set(kwargs) <= MARK_FIELDS):
        raise ValueError(f"{method} moves money and cannot be queued: send it with Store.call (or call_many), "
                         "which commits it before answering")


@ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0)
class Store:
    """Owns the storage connection; `call`/`call_many` write now, `enqueue` batches non-money writes."""

    def __init__(self, settings: Settings, flush_interval_s: float = 0.05) -> None:
        self._storage: Storage = open_storage(settings, background_checkpoints=True)
        self._queue: deque[Write] = deque()
        self._lock = threading.RLock()
        self._waiting = 0  # calls waiting for `_lock`: the flusher starts no batch meanwhile
        self._waiting_lock = threading.Lock()
        self._degraded: str | None = None
        self._written = 0
        self._stamps: deque[tuple[str, list[float]]] = deque(maxlen=10_000)
        self._stamping_on = os.environ.get(_STAMPS_ENV) == "1"  # read here: Ray may ship this class by value
        self._open_ids: set[str] = set()  # positions known open, so a queued mark needs no read first
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, args=(flush_interval_s,), daemon=True)
        self._flusher.start()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        # The paper close path's writes, from an Executor on this machine (see `local_address`).
        self._channel = LocalServer(lambda message: self._call_many_bytes(message, last_only=True), name="store")
        # Young generations only, as the scheduler does: a full collection walks every object the process
        # holds (~0.1 CPU-s of a CPU-bound engine start) and freed nothing in the Store's start-up.
        gc.collect(1)
        gc.freeze()  # the engine, metadata and compiled statements live for good: keep them out of collections
        # Collections between calls, not inside a close its allocations would trigger them in.
        self._collector = IdleCollector(self._lock)
        self._collector.start()

    def ping(self) -> bool:
        return True

    def pid(self) -> int:
        return os.getpid()

    def local_address(self) -> tuple[str, str]:
        """(Ray node id, Unix socket path) where an actor on the same node can send `call_many` messages
        (`encode_writes` bytes, answered as with ``last_only``) without a Ray call; see
        `aitrader.local_channel`. Only idempotent writes go there: a failed send is retried here."""
        return ray.get_runtime_context().get_node_id(), self._channel.path

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run one storage method now, after every queued write (so order is kept).

        A money write is committed to the backend before this returns, or raises. It does not wait
        for the queue: nothing queued is a money write, and a queued mark never lands on a close.
        """
        if method not in ALLOWED:
            raise AttributeError(f"Storage has no method {method!r}")
        with self._turn():
            if method not in MONEY_WRITES:
                self._drain()
            return self._apply(method, args, kwargs)

    def traders(self, user_id: str, active_only: bool = False) -> list[TraderRecord]:
        """`list_traders` as plain records: the supervisor and the scheduler read traders without
        loading the tables to unpickle them (`aitrader.trader_records`)."""
        return [trader_record(t) for t in self.call("list_traders", user_id, active_only=active_only)]

    def trader(self, trader_id: str) -> TraderRecord:
        """`get_trader` as a plain record; raises `NotFound` as it does."""
        return trader_record(self.call("get_trader", trader_id))

    def open_position_views(self, user_id: str) -> list[dict[str, Any]]:
        """Every open position of ``user_id`` as its `position_view` (what the Monitor watches), so the
        Monitor restores its book without loading the tables."""
        positions = self.call("list_positions", user_id, status=PositionStatus.OPEN, limit=OPEN_POSITIONS_LIMIT)
        return [position_view(p) for p in positions]

    def seed_trader(self, fields: dict[str, Any]) -> TraderRecord | None:
        """Create the trader ``fields`` describe (with its ``user_id``) if that user has none yet, as the
        engine seeds its example trader on an empty database; None if the user has traders already."""
        from aitrader.models import Trader  # the tables: here, not in every process holding a Store handle

        with self._turn():
            if self.call("list_traders", fields["user_id"]):
                return None
            return trader_record(self.call("create_trader", Trader.model_validate(fields)))

    def call_many(self, writes: list[Write] | bytes, last_only: bool = False) -> list[Any] | bytes:
        """Apply several writes in order, now (one message for, e.g., a fill's order, balances and close).

        Returns their results, in order; with ``last_only`` only the last one (as a one-item list),
        so rows the caller does not need are not sent back. Writes given as an `encode_writes`
        message (bytes) are answered with an `encode_results` message.

        With a SQL backend they are ONE transaction, committed before this returns (or none is, and
        the error is raised). A retry after a Store restart re-applies them: a retried create that
        finds its row already committed falls back to the write-by-write path, where it answers the
        stored row; the other writes a broker sends this way are idempotent.
        """
        if isinstance(writes, bytes):
            return self._call_many_bytes(writes, last_only)
        return self._call_many(writes, last_only)

    def _call_many_bytes(self, message: bytes, last_only: bool) -> bytes:
        from aitrader.storage.wire import decode_writes, encode_results

        if not self._stamping_on:
            return encode_results(self._call_many(decode_writes(message), last_only))
        stamps = [time.time()]
        writes = decode_writes(message)
        with self._turn():
            stamps.append(time.time())
            results = self._call_many(writes, last_only)
        stamps.append(time.time())
        closes = [args[0] for method, args, _kwargs in writes if method == "close_position"]
        if closes:
            self._stamps.append((closes[-1], stamps))
        return encode_results(results)

    def close_stamps(self) -> list[tuple[str, list[float]]]:
        """(position id, [received, locked, committed]) of recent closes sent over the local channel
        (epoch seconds; only with AITRADER_CLOSE_STAMPS=1)."""
        return list(self._stamps)

    def _call_many(self, writes: list[Write], last_only: bool) -> list[Any]:
        for method, _args, _kwargs in writes:
            if method not in ALLOWED:
                raise AttributeError(f"Storage has no method {method!r}")
        with self._turn():
            money = all(method in MONEY_WRITES for method, _args, _kwargs in writes)
            if not money:
                self._drain()
            apply_many = getattr(self._storage, "apply_many", None)
            if callable(apply_many) and len(writes) > 1:
                try:
                    with self._durable(money):
                        results: list[Any] = apply_many(writes)
                except Conflict:
                    pass  # rolled back whole: replay write by write, answering rows stored by a first run
                else:
                    for method, args, _kwargs in writes:
                        self._note(method, args)
                    return results[-1:] if last_only else results
            results = [self._apply(method, args, kwargs) for method, args, kwargs in writes]
            return results[-1:] if last_only else results

    def enqueue(self, method: str, *args: Any, **kwargs: Any) -> int:
        """Queue a non-money write to be applied in order within ``flush_interval_s``; return the queue length."""
        check_queueable(method, kwargs)
        with self._lock:
            self._check_room(1)
            self._queue.append((method, args, kwargs))
            return len(self._queue)

    def enqueue_many(self, writes: list[Write]) -> int:
        """Queue several non-money writes at once: they arrive together, in order, or not at all."""
        for method, _args, kwargs in writes:
            check_queueable(method, kwargs)
        with self._lock:
            self._check_room(len(writes))
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
        self._collector.stop()
        self._channel.close()
        self._stop.set()
        remaining = self.flush()
        self._storage.close()
        return remaining

    # -- internals ------------------------------------------------------------------------------

    @contextmanager
    def _turn(self) -> Iterator[None]:
        """Hold the Store's lock for a caller, ahead of the flusher (which starts no batch while a caller waits)."""
        with self._waiting_lock:
            self._waiting += 1
        try:
            self._lock.acquire()
        finally:
            with self._waiting_lock:
                self._waiting -= 1
        try:
            yield
        finally:
            self._lock.release()

    def _note(self, method: str, args: tuple[Any, ...]) -> None:
        """Keep `_open_ids` current, so a queued P&L mark of a position known open needs no read."""
        if method == "close_position":
            self._open_ids.discard(args[0])
        elif method == "create_position" and args and getattr(args[0], "status", None) is PositionStatus.OPEN:
            self._open_ids.add(args[0].id)

    def _apply(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if method == "close_position":
            self._open_ids.discard(args[0])  # before the write: a mark must never land on a close
        with self._durable(method in MONEY_WRITES):
            try:
                result = getattr(self._storage, method)(*args, **kwargs)
            except Conflict:
                stored = self._created_before(method, args)
                if stored is None:
                    raise
                return stored
        self._note(method, args)
        return result

    def _created_before(self, method: str, args: tuple[Any, ...]) -> Any:
        """The row a create already stored under the same id: Ray retried a call whose first run committed."""
        getter = {"create_order": self._storage.get_order, "create_position": self._storage.get_position}.get(method)
        if getter is None or not args:
            return None
        try:
            return getter(args[0].id)
        except NotFound:
            return None

    def _durable(self, money: bool) -> AbstractContextManager[Any]:
        """For a money write, switch off the backend's outage buffer: commit it or raise."""
        unbuffered = getattr(self._storage, "unbuffered", None)
        return unbuffered() if money and callable(unbuffered) else nullcontext()

    def _drain(self) -> None:
        self._flush()
        if self._queue:
            raise StorageUnavailable(f"storage is unavailable: {self._degraded}; {len(self._queue)} writes queued")

    def _check_room(self, count: int) -> None:
        if len(self._queue) + count > MAX_BUFFERED:
            raise StorageUnavailable(
                f"storage has been unavailable ({self._degraded}) and {MAX_BUFFERED} writes are queued; "
                "fix the database connection before more can be accepted"
            )

    def _apply_queued(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self._still_wanted(method, args, kwargs):
            getattr(self._storage, method)(*args, **kwargs)

    def _flush(self) -> None:
        while self._flush_batch() or self._flush_one():
            pass

    def _flush_marks(self) -> bool:
        """Apply the run of P&L marks at the head of the queue (up to `MARK_BATCH`) with the backend's
        `mark_positions`: one statement for all of them, which skips positions no longer open. False
        if the head is not a mark, the backend cannot, or the write failed (the slower paths then try)."""
        mark_positions = getattr(self._storage, "mark_positions", None)
        with self._lock:
            if not callable(mark_positions):
                return False
            run = list(itertools.takewhile(lambda write: write[0] == "update_position",
                                           itertools.islice(self._queue, MARK_BATCH)))
            if not run:
                return False
            try:
                with self._durable(True):
                    mark_positions([(args[0], kwargs) for _method, args, kwargs in run])
            except Exception:
                return False
            for _ in run:
                self._queue.popleft()
            self._written += len(run)
            return True

    def _flush_batch(self) -> bool:
        """Apply up to `FLUSH_BATCH` queued writes as one transaction; False if that is not possible now
        (an empty or one-write queue, no `apply_many`, or a write failed: `_flush_one` handles those)."""
        if self._flush_marks():
            return True
        apply_many = getattr(self._storage, "apply_many", None)
        with self._lock:
            if len(self._queue) < 2 or not callable(apply_many):
                return False
            batch = [self._queue[i] for i in range(min(FLUSH_BATCH, len(self._queue)))]
            try:
                writes = [w for w in batch if self._still_wanted(*w)]
                with self._durable(True):  # committed, or raised and retried one by one
                    apply_many(writes)
            except Exception:
                return False
            for _ in batch:
                self._queue.popleft()
            self._written += len(batch)
            return True

    def _still_wanted(self, method: str, args: tuple[Any, ...], _kwargs: dict[str, Any]) -> bool:
        """False for a P&L mark of a position no longer open: a late mark never overwrites a close."""
        if method != "update_position" or args[0] in self._open_ids:
            return True
        try:
            if self._storage.get_position(args[0]).status is not PositionStatus.OPEN:
                return False
        except NotFound:
            return False
        self._open_ids.add(args[0])  # every close goes through this Store, which forgets the id then
        return True

    def _flush_one(self) -> bool:
        """Apply the first queued write; False when the queue is empty or storage is down.

        The lock is taken per write, so a money call waits for one queued write at most.
        """
        with self._lock:
            if not self._queue:
                if self._degraded is not None:
                    log.warning("storage available again; queued writes flushed")
                    self._degraded = None
                return False
            method, args, kwargs = self._queue[0]
            try:
                self._apply_queued(method, args, kwargs)
            except WriteBuffered:
                pass  # accepted: the backend's own BufferedStorage keeps it in order until it is back
            except StorageUnavailable as exc:
                if self._degraded is None:
                    log.error("storage unavailable, keeping %d writes in order: %s", len(self._queue), exc)
                self._degraded = str(exc)
                return False
            except Exception:
                # A write that can never succeed (a validation or uniqueness error) must not
                # block every write behind it.
                log.exception("dropping a queued %s write that failed", method)
            self._queue.popleft()
            self._written += 1
            return True

    def _flush_in_turn(self) -> None:
        """`_flush` for the flusher thread: one small batch at a time, none while a caller waits for the lock."""
        while True:
            if self._waiting:
                time.sleep(_YIELD_S)
                continue
            if not (self._flush_batch() or self._flush_one()):
                return

    def _flush_loop(self, interval: float) -> None:
        checkpoint_if_due = getattr(self._storage, "checkpoint_if_due", None)
        while not self._stop.wait(interval):
            self._flush_in_turn()
            if callable(checkpoint_if_due):
                try:
                    checkpoint_if_due()  # outside the lock: writes go on while the WAL is copied back
                except Exception:  # the next run tries again; the WAL only grows meanwhile
                    log.exception("background WAL checkpoint failed")
