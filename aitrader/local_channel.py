"""A request/answer channel over a Unix socket, for the close path between actors on one machine.

On this project's 2-core machine a Ray actor call costs ~2 ms one way when the callee was idle
(its process is woken through several threads), a Unix socket ~0.15 ms. The close path (Monitor ->
Executor -> Store) takes a channel where both ends are on one machine and keeps the Ray call as the
way that always works: a `LocalChannelError` (no server, a dead or restarted one, an error raised by
the handler) tells the caller to make the same call through Ray, which retries across restarts and
raises the handler's typed errors. Every call sent this way must therefore be safe to run twice.

Frames are a 4-byte big-endian length and a msgpack body: ``[request id, payload]`` from the
client, ``[request id, ok, payload or error text]`` back. The socket lives in a directory only this
user can enter (mode 0700), so another local user cannot send requests; the directory is named after
the serving process, and a new server removes those whose process is gone (killed actors leave theirs).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import shutil
import socket
import struct
import tempfile
import threading
from collections.abc import Awaitable, Callable
from itertools import count

import msgspec

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">I")
_MAX_FRAME = 64 * 1024 * 1024
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder()

Handler = Callable[[bytes], bytes]


class LocalChannelError(Exception):
    """The local channel could not deliver a call or its answer: make the call through Ray instead."""


class LocalServer:
    """Serves ``handler`` (bytes in, bytes out) on a Unix socket, one thread per connection.

    Requests of one connection are answered in order; the handler does its own locking.
    """

    def __init__(self, handler: Handler, name: str = "channel") -> None:
        self._handler = handler
        self._directory = _socket_directory()
        self.path = os.path.join(self._directory, f"{name}.sock")
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.bind(self.path)
        self._socket.listen(16)
        self._closed = False
        self._connections: set[socket.socket] = set()
        threading.Thread(target=self._accept, name=f"{name}-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                connection, _ = self._socket.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), name="channel-serve", daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        self._connections.add(connection)
        try:
            self._answer(connection)
        finally:
            self._connections.discard(connection)
            connection.close()

    def _answer(self, connection: socket.socket) -> None:
        while not self._closed:
            try:
                request_id, payload = _DECODER.decode(_read_frame(connection))
            except (OSError, LocalChannelError, msgspec.DecodeError, ValueError):
                return  # the client went away (or sent garbage): drop the connection
            try:
                answer = [request_id, True, self._handler(payload)]
            except Exception as error:  # the caller retries through Ray, which raises the typed error
                answer = [request_id, False, f"{type(error).__name__}: {error}"]
            try:
                _write_frame(connection, _ENCODER.encode(answer))
            except OSError:
                return

    def close(self) -> None:
        """Stop accepting and drop every connection (their clients get `LocalChannelError`)."""
        self._closed = True
        with contextlib.suppress(OSError):
            self._socket.close()
        for connection in list(self._connections):
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        shutil.rmtree(self._directory, ignore_errors=True)


class AsyncLocalServer:
    """Serves an async ``handler`` (bytes in, bytes out) on a Unix socket in the running event loop,
    so a request reaches an asyncio actor's state without a thread hop. Requests of one connection
    are answered in order."""

    def __init__(self, handler: Callable[[bytes], Awaitable[bytes]], directory: str, path: str) -> None:
        self._handler = handler
        self._directory = directory
        self.path = path
        self._server: asyncio.base_events.Server | None = None

    @classmethod
    async def start(cls, handler: Callable[[bytes], Awaitable[bytes]], name: str = "channel") -> AsyncLocalServer:
        directory = _socket_directory()
        server = cls(handler, directory, os.path.join(directory, f"{name}.sock"))
        server._server = await asyncio.start_unix_server(server._serve, path=server.path, limit=_MAX_FRAME)
        return server

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readexactly(_HEADER.size)
                request_id, payload = _DECODER.decode(await reader.readexactly(_HEADER.unpack(header)[0]))
                try:
                    answer = [request_id, True, await self._handler(payload)]
                except Exception as error:  # the caller retries through Ray, which raises the typed error
                    answer = [request_id, False, f"{type(error).__name__}: {error}"]
                body = _ENCODER.encode(answer)
                writer.write(_HEADER.pack(len(body)) + body)
        except (OSError, asyncio.IncompleteReadError, msgspec.DecodeError, ValueError):
            pass  # the client went away (or sent garbage): drop the connection
        finally:
            writer.close()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        shutil.rmtree(self._directory, ignore_errors=True)


class LocalClient:
    """A blocking client of one `LocalServer`; calls from several threads take turns."""

    def __init__(self, path: str, timeout_s: float = 120.0) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._ids = count(1)
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._socket.settimeout(timeout_s)
        try:
            self._socket.connect(path)
        except OSError as error:
            self._socket.close()
            raise LocalChannelError(f"cannot connect to {path}: {error}") from error

    def call(self, payload: bytes) -> bytes:
        """Send ``payload`` and wait for the answer; `LocalChannelError` when the channel failed."""
        with self._lock:
            request_id = next(self._ids)
            try:
                _write_frame(self._socket, _ENCODER.encode([request_id, payload]))
                answer_id, ok, answer = _DECODER.decode(_read_frame(self._socket))
            except (OSError, LocalChannelError, msgspec.DecodeError, ValueError) as error:
                self.close()
                raise LocalChannelError(f"the local call failed: {error}") from error
        if answer_id != request_id:
            self.close()
            raise LocalChannelError("the local channel answered another request")
        if not ok:
            raise LocalChannelError(f"the handler failed: {answer}")
        assert isinstance(answer, bytes)
        return answer

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.close()


class AsyncLocalClient:
    """An asyncio client of one `LocalServer`: several calls in flight on one connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = count(1)
        self._waiting: dict[int, asyncio.Future[bytes]] = {}
        self._task = asyncio.get_running_loop().create_task(self._read_answers())

    @classmethod
    async def connect(cls, path: str) -> AsyncLocalClient:
        try:
            reader, writer = await asyncio.open_unix_connection(path, limit=_MAX_FRAME)
        except OSError as error:
            raise LocalChannelError(f"cannot connect to {path}: {error}") from error
        return cls(reader, writer)

    @property
    def closed(self) -> bool:
        return self._task.done()

    def send(self, payload: bytes) -> asyncio.Future[bytes]:
        """Send now (before any await); the future holds the answer or a `LocalChannelError`."""
        if self.closed:
            raise LocalChannelError("the local channel is closed")
        request_id = next(self._ids)
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        body = _ENCODER.encode([request_id, payload])
        self._writer.write(_HEADER.pack(len(body)) + body)
        return future

    async def _read_answers(self) -> None:
        error: Exception = LocalChannelError("the local channel closed")
        try:
            while True:
                header = await self._reader.readexactly(_HEADER.size)
                request_id, ok, answer = _DECODER.decode(await self._reader.readexactly(_HEADER.unpack(header)[0]))
                future = self._waiting.pop(request_id, None)
                if future is None or future.done():
                    continue
                if ok:
                    future.set_result(answer)
                else:
                    future.set_exception(LocalChannelError(f"the handler failed: {answer}"))
        except (OSError, asyncio.IncompleteReadError, msgspec.DecodeError, ValueError) as failure:
            error = LocalChannelError(f"the local channel failed: {failure}")
        finally:
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(error)
            self._waiting.clear()
            self._writer.close()

    def close(self) -> None:
        self._task.cancel()


_DIRECTORY_PREFIX = "aitrader-channel-"


def _socket_directory() -> str:
    """A new directory for a socket (mode 0700), named after this process; first removes the
    directories of processes that no longer exist."""
    root = tempfile.gettempdir()
    with contextlib.suppress(OSError):
        for entry in os.scandir(root):
            owner = entry.name.removeprefix(_DIRECTORY_PREFIX).split("-", 1)[0]
            if entry.name.startswith(_DIRECTORY_PREFIX) and owner.isdigit() and not _alive(int(owner)):
                shutil.rmtree(entry.path, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{_DIRECTORY_PREFIX}{os.getpid()}-", dir=root)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # someone else's process: alive, and not ours to clean up
        return True
    return True


def _read_frame(connection: socket.socket) -> bytes:
    size = _HEADER.unpack(_read_exactly(connection, _HEADER.size))[0]
    if size > _MAX_FRAME:
        raise LocalChannelError(f"a frame of {size} bytes is too large")
    return _read_exactly(connection, size)


def _read_exactly(connection: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = connection.recv(size - len(chunks))
        if not chunk:
            raise LocalChannelError("the other end closed the connection")
        chunks += chunk
    return bytes(chunks)


def _write_frame(connection: socket.socket, body: bytes) -> None:
    connection.sendall(_HEADER.pack(len(body)) + body)


# -- price pushes to the Monitor ---------------------------------------------------------------

_PRICES = msgspec.msgpack.Decoder(tuple[dict[str, str], int])
_COUNT = msgspec.msgpack.Decoder(int)


def encode_prices(prices: dict[str, str], event_time_ms: int = 0) -> bytes:
    """A price push (the arguments of ``Monitor.on_prices``) as msgpack."""
    return _ENCODER.encode([prices, event_time_ms])


def decode_prices(message: bytes) -> tuple[dict[str, str], int]:
    return _PRICES.decode(message)


def encode_count(count: int) -> bytes:
    return _ENCODER.encode(count)


def decode_count(message: bytes) -> int:
    return _COUNT.decode(message)


# -- garbage collection between closes ---------------------------------------------------------


class IdleCollector:
    """Runs Python's cyclic garbage collector between the calls a lock guards, not inside them.

    CPython collects when allocations pass a threshold, that is in the middle of the work that
    allocates: in an Executor or a Store, a close (a young pass costs ~0.5 ms here, a middle one up
    to ~5 ms). `start` turns the automatic collector off and collects from a thread every
    ``interval_s`` while holding ``lock`` (the one a close holds), choosing the generation by
    CPython's own thresholds; `stop` turns the automatic collector back on.
    """

    def __init__(self, lock: threading.Lock | threading.RLock, interval_s: float = 0.25) -> None:
        self._lock = lock
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.collections = [0, 0, 0]

    def start(self) -> None:
        gc.disable()
        threading.Thread(target=self._run, name="idle-collector", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        gc.enable()

    def collect_if_due(self) -> int | None:
        """Collect now if CPython would have by now; the generation collected, or None."""
        young, middle, old = gc.get_threshold()
        # Allocations since the last pass, young passes since the last middle one, middle since the last old.
        allocated, young_passes, middle_passes = gc.get_count()
        if allocated < young:
            return None
        generation = 2 if middle_passes >= old else 1 if young_passes >= middle else 0
        with self._lock:
            gc.collect(generation)
        self.collections[generation] += 1
        return generation

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.collect_if_due()
            except Exception:  # never let the collector thread die: memory would only grow
                log.exception("garbage collection between closes failed")
