"""The Unix-socket request/answer channel of the close path (aitrader.local_channel)."""

from __future__ import annotations

import asyncio
import gc
import os
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from aitrader.local_channel import (
    AsyncLocalClient,
    AsyncLocalServer,
    IdleCollector,
    LocalChannelError,
    LocalClient,
    LocalServer,
    decode_count,
    decode_prices,
    encode_count,
    encode_prices,
)


def _upper(payload: bytes) -> bytes:
    if payload == b"boom":
        raise ValueError("the handler refused it")
    return payload.upper()


def test_a_blocking_client_gets_each_answer_and_a_handler_error_as_a_channel_error() -> None:
    server = LocalServer(_upper, name="test")
    client = LocalClient(server.path)
    try:
        assert client.call(b"close abc") == b"CLOSE ABC"
        with pytest.raises(LocalChannelError, match="ValueError: the handler refused it"):
            client.call(b"boom")
        assert client.call(b"x" * 300_000) == b"X" * 300_000  # a frame larger than one recv
    finally:
        client.close()
        server.close()


def test_only_this_user_can_reach_the_socket() -> None:
    server = LocalServer(_upper, name="test")
    try:
        mode = stat.S_IMODE(os.stat(os.path.dirname(server.path)).st_mode)
        assert mode & 0o077 == 0
    finally:
        server.close()


def test_a_closed_server_is_a_channel_error_for_new_and_connected_clients() -> None:
    server = LocalServer(_upper, name="test")
    client = LocalClient(server.path)
    assert client.call(b"a") == b"A"

    server.close()

    with pytest.raises(LocalChannelError):
        client.call(b"anything")
    with pytest.raises(LocalChannelError, match="cannot connect"):
        LocalClient(server.path)


def test_an_async_client_keeps_several_calls_in_flight_and_fails_them_when_the_server_goes() -> None:
    server = LocalServer(_upper, name="test")

    async def scenario() -> tuple[list[bytes], BaseException | None]:
        client = await AsyncLocalClient.connect(server.path)
        futures = [client.send(f"p{i}".encode()) for i in range(20)]
        answers = list(await asyncio.gather(*futures))
        failed = client.send(b"boom")
        error: BaseException | None = None
        try:
            await failed
        except LocalChannelError as raised:
            error = raised
        client.close()
        await asyncio.sleep(0)
        with pytest.raises(LocalChannelError):
            await asyncio.wait_for(asyncio.shield(client.send(b"late")), 5)
        return answers, error

    try:
        answers, error = asyncio.run(scenario())
    finally:
        server.close()
    assert answers == [f"P{i}".encode() for i in range(20)]
    assert isinstance(error, LocalChannelError) and "refused" in str(error)


def test_an_asyncio_server_answers_in_its_own_loop_and_in_order() -> None:
    seen: list[bytes] = []

    async def record(payload: bytes) -> bytes:
        if payload == b"boom":
            raise ValueError("the handler refused it")
        seen.append(payload)
        return str(len(seen)).encode()

    async def scenario() -> tuple[list[bytes], str]:
        server = await AsyncLocalServer.start(record, name="test")
        try:
            client = LocalClient(server.path)
            # the blocking client runs in a thread: the server's loop must stay free to answer it
            answers = [await asyncio.to_thread(client.call, f"push {i}".encode()) for i in range(5)]
            try:
                await asyncio.to_thread(client.call, b"boom")
                error = ""
            except LocalChannelError as raised:
                error = str(raised)
            client.close()
            return answers, error
        finally:
            server.close()

    answers, error = asyncio.run(scenario())

    assert answers == [b"1", b"2", b"3", b"4", b"5"]
    assert seen == [f"push {i}".encode() for i in range(5)]
    assert "ValueError: the handler refused it" in error


def test_a_new_server_removes_the_socket_directories_of_dead_processes(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # Arrange: one directory left by a process that is gone, one of a live process (this one)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"aitrader-channel-{dead.pid}-abc"
    stale.mkdir()
    (stale / "store.sock").touch()
    live = tmp_path / f"aitrader-channel-{os.getpid()}-def"
    live.mkdir()
    other = tmp_path / "aitrader-bench-xyz"
    other.mkdir()

    # Act
    server = LocalServer(_upper, name="test")
    server.close()

    # Assert
    assert not stale.exists() and live.exists() and other.exists()


def test_a_price_push_and_its_answer_round_trip() -> None:
    assert decode_prices(encode_prices({"BTCUSDT": "65000.01"}, 1_700_000_000_000)) == (
        {"BTCUSDT": "65000.01"}, 1_700_000_000_000)
    assert decode_count(encode_count(3)) == 3


def test_the_idle_collector_collects_only_between_the_calls_its_lock_guards() -> None:
    # Arrange: automatic collection off; a "close" holds the lock while garbage cycles pile up
    lock = threading.RLock()
    collector = IdleCollector(lock, interval_s=0.01)
    collector.start()
    try:
        assert not gc.isenabled()
        with lock:
            for _ in range(5 * gc.get_threshold()[0]):
                cycle: list[object] = []
                cycle.append(cycle)
            time.sleep(0.1)
            during = sum(collector.collections)  # Act (1): the collector waited for the lock
        deadline = time.monotonic() + 5
        while not sum(collector.collections) and time.monotonic() < deadline:
            time.sleep(0.01)  # Act (2): the lock is free, so the due collection runs
    finally:
        collector.stop()
    # Assert
    assert during == 0
    assert sum(collector.collections) >= 1
    assert gc.isenabled()


def test_the_idle_collector_picks_the_generation_cpython_would() -> None:
    collector = IdleCollector(threading.Lock())
    gc.disable()
    try:
        gc.collect()
        assert collector.collect_if_due() is None  # nothing allocated since
        for _ in range(gc.get_threshold()[0] + 10):
            cycle: list[object] = []
            cycle.append(cycle)
        assert collector.collect_if_due() == 0
    finally:
        gc.enable()
