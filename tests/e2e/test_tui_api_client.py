"""The API client against the fake engine: REST calls, errors, and the reconnecting event stream."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from cli.api_client import (
    ApiClient,
    ApiUnreachable,
    AuthError,
    Backoff,
    ConnectionChanged,
    FilterError,
    RateLimited,
    RequestInvalid,
)
from tests.e2e.fake_api import FakeApi


@pytest.fixture
def fake() -> Iterator[FakeApi]:
    api = FakeApi().start()
    yield api
    api.close()


async def test_rest_calls_return_the_contract_bodies(fake: FakeApi) -> None:
    client = ApiClient(fake.url, fake.api_key)
    try:
        assert (await client.status())["user_id"] == "alice"
        assert [m["symbol"] for m in await client.markets()][:2] == ["BTCUSDT", "ETHUSDT"]
        trader = await client.create_trader(
            {"name": "x", "symbols": ["BTCUSDT"], "timeframes": ["1m"], "signal_code": "close[-1] > 1"}
        )
        assert (await client.enable_trader(trader["id"]))["status"] == "active"
        await client.delete_trader(trader["id"])
        assert trader["id"] not in [t["id"] for t in await client.traders()]
        assert (await client.close_position("pos-1"))["status"] == "closed"
    finally:
        await client.aclose()


async def test_errors_are_translated(fake: FakeApi) -> None:
    client = ApiClient(fake.url, "wrong")
    good = ApiClient(fake.url, fake.api_key)
    try:
        with pytest.raises(AuthError):
            await client.status()
        with pytest.raises(FilterError) as bad_filter:
            await good.create_trader({"name": "x", "symbols": ["A"], "timeframes": ["1m"], "signal_code": "rsi(("})
        assert bad_filter.value.line == 1 and bad_filter.value.col is not None
        with pytest.raises(RequestInvalid, match="name"):
            await good.create_trader({"symbols": ["A"], "timeframes": ["1m"], "signal_code": "1"})
    finally:
        await client.aclose()
        await good.aclose()


async def test_rate_limit_and_unreachable() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(429, headers={"Retry-After": "7"}, json={"detail": "slow"}))
    client = ApiClient("http://engine", "k", transport=transport)
    with pytest.raises(RateLimited) as limited:
        await client.status()
    assert limited.value.retry_after == 7
    down = ApiClient("http://127.0.0.1:9", "k", timeout=2)
    with pytest.raises(ApiUnreachable, match="cannot reach"):
        await down.status()


async def test_stream_resumes_by_seq_after_a_restart(fake: FakeApi) -> None:
    client = ApiClient(fake.url, fake.api_key, backoff=Backoff(initial=0.05, cap=0.2))
    stream = client.events(["signals"])
    seen: list[object] = []
    task = asyncio.create_task(_consume(stream, seen, lambda item: item.get("seq") == 3))
    await _until(lambda: ConnectionChanged(True) in seen)
    await asyncio.to_thread(fake.emit, "log", {"message": "one"})
    await _until(lambda: stream.last_seq == 1)
    await asyncio.to_thread(fake.stop)
    await _until(lambda: any(isinstance(i, ConnectionChanged) and not i.connected for i in seen))
    await asyncio.to_thread(fake.emit, "log", {"message": "two"})  # missed while down: replayed by seq
    await asyncio.to_thread(fake.start)
    await asyncio.to_thread(fake.emit, "log", {"message": "three"})
    await asyncio.wait_for(task, 20)
    messages = [i["data"]["message"] for i in seen if isinstance(i, dict)]
    assert messages == ["one", "two", "three"]


async def _consume(stream: Any, seen: list[object], last: Any) -> None:
    """Collect what ``stream`` yields into ``seen`` until an event for which ``last(event)`` holds."""
    async for item in stream:
        seen.append(item)
        if isinstance(item, dict) and last(item):
            return


async def _until(predicate, limit: float = 20.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(poll(), limit)


async def test_stream_starts_over_when_the_engine_restarted_with_a_new_seq_series(fake: FakeApi) -> None:
    client = ApiClient(fake.url, fake.api_key, backoff=Backoff(initial=0.05, cap=0.2))
    stream = client.events(["logs"])
    seen: list[object] = []
    task = asyncio.create_task(_consume(stream, seen, lambda item: item.get("data", {}).get("message") == "new 4"))
    await _until(lambda: ConnectionChanged(True) in seen)
    for n in range(3):
        await asyncio.to_thread(fake.emit, "log", {"message": f"old {n}"})
    await _until(lambda: stream.last_seq == 3)
    await asyncio.to_thread(fake.stop)
    await _until(lambda: any(isinstance(i, ConnectionChanged) and not i.connected for i in seen))
    await asyncio.to_thread(fake.new_run)
    for n in range(4):  # seqs 1-4 of the new run, while the client is away: its seq 3 says nothing of them
        await asyncio.to_thread(fake.emit, "log", {"message": f"new {n}"})
    await asyncio.to_thread(fake.start)
    await _until(lambda: seen.count(ConnectionChanged(True)) == 2)
    await asyncio.to_thread(fake.emit, "log", {"message": "new 4"})
    await asyncio.wait_for(task, 20)

    after = seen[seen.index(ConnectionChanged(True), seen.index(ConnectionChanged(True)) + 1) + 1:]
    assert [i["type"] for i in after if isinstance(i, dict)] == ["resync", "log"], after
    assert after[-1]["data"]["message"] == "new 4" and stream.last_seq == 5  # type: ignore[index]
    assert stream.run_id == "run-2"
