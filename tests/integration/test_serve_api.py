"""The real Serve deployment on a free port over real EventHub + Store actors."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from pydantic import SecretStr

from aitrader.config import Settings

KEY = "integration-key-0123456789abcdef"
# The first test's setup starts Ray (up to two 180 s attempts on a loaded machine) and Serve;
# pytest-timeout's default 300 s fired inside Serve's proxy wait and surfaced as a SystemError.
pytestmark = pytest.mark.timeout(900)
# On a loaded machine the metrics agent can take longer than Ray's default to start.
os.environ.setdefault("RAY_agent_register_timeout_ms", "120000")


@pytest.fixture(scope="module")
def engine_api(ray_session: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import ray
    from ray import serve

    from actors.events import EventHub
    from actors.store import Store
    from serve.deployment import start_api
    from serve.options import free_api_port

    folder: Path = tmp_path_factory.mktemp("serve-api")
    settings = Settings(api_key=SecretStr(KEY), user_id="alice", sqlite_path=folder / "data.db")
    events = EventHub.options(name="events-serve-test").remote()
    store = Store.options(name="store-serve-test").remote(settings)
    ray.get([events.ping.remote(), store.ping.remote()], timeout=120)
    port = free_api_port()
    start_api(settings, port, store=store, events=events)
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=30) as client:
        for _ in range(300):
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            import time

            time.sleep(0.2)
        yield {"base": base, "port": port, "events": events, "client": client}
    serve.shutdown()
    for actor in (events, store):
        ray.kill(actor, no_restart=True)


def test_health_is_public_and_everything_else_needs_the_key(engine_api: dict[str, Any]) -> None:
    client: httpx.Client = engine_api["client"]
    assert client.get("/health").json()["status"] == "healthy"
    assert client.get("/status").status_code == 401
    assert client.get("/status", headers={"Authorization": "Bearer wrong-key-0000000000"}).status_code == 401
    status = client.get("/status", headers={"Authorization": f"Bearer {KEY}"})
    assert status.status_code == 200 and status.json()["user_id"] == "alice"
    created = client.post("/api/traders", headers={"Authorization": f"Bearer {KEY}"}, json={
        "name": "dip", "symbols": ["BTCUSDT"], "signal_code": "rsi(close, 14) < 30"})
    assert created.status_code == 201, created.text
    listed = client.get("/api/traders", headers={"Authorization": f"Bearer {KEY}"}).json()["traders"]
    assert [t["name"] for t in listed] == ["dip"]


def test_a_hub_event_reaches_a_websocket_client_and_the_read_state(engine_api: dict[str, Any]) -> None:
    import ray

    async def scenario() -> tuple[dict, int]:
        url = f"ws://127.0.0.1:{engine_api['port']}/ws"
        async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {KEY}"},
                                      open_timeout=30) as ws:
            await ws.send(json.dumps({"type": "subscribe", "data": {"channels": ["tickers"]}}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 30))["type"] == "subscribed"
            ref = engine_api["events"].publish.remote("tickers", "ticker_update",
                                                      {"symbol": "BTCUSDT", "price": "61000.5"})
            seq = await ref
            return json.loads(await asyncio.wait_for(ws.recv(), 30)), seq

    message, seq = asyncio.run(scenario())
    assert message == {"type": "ticker_update", "seq": seq, "data": {"symbol": "BTCUSDT", "price": "61000.5"}}
    markets = engine_api["client"].get("/api/markets", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert markets["markets"][0]["symbol"] == "BTCUSDT" and markets["markets"][0]["price"] == "61000.5"
    assert ray.is_initialized()


def test_websocket_with_a_wrong_query_key_is_closed_1008(engine_api: dict[str, Any]) -> None:
    async def scenario() -> websockets.ConnectionClosed:
        url = f"ws://127.0.0.1:{engine_api['port']}/ws?api_key=wrong"
        async with websockets.connect(url, open_timeout=30) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 30)
            return closed.value

    from serve.auth import UNAUTHORIZED

    closed = asyncio.run(scenario())
    # The replica (direct ingress: no proxy in between) sends its close code and reason to the client.
    assert closed.rcvd is not None and (closed.rcvd.code, closed.rcvd.reason) == (1008, UNAUTHORIZED)


async def _subscribe(ws: Any, channels: list[str], since: int | None = None) -> dict:
    body: dict[str, Any] = {"type": "subscribe", "data": {"channels": channels}}
    if since is not None:
        body["since"] = since
    await ws.send(json.dumps(body))
    return await _next(ws)


async def _next(ws: Any) -> dict:
    return json.loads(await asyncio.wait_for(ws.recv(), 30))


def _ws_url(engine_api: dict[str, Any]) -> str:
    return f"ws://127.0.0.1:{engine_api['port']}/ws?api_key={KEY}"


def test_websocket_subscribe_then_unsubscribe_stops_that_channel(engine_api: dict[str, Any]) -> None:
    hub = engine_api["events"]

    async def scenario() -> list[dict]:
        got = []
        async with websockets.connect(_ws_url(engine_api), open_timeout=30) as ws:
            got.append(await _subscribe(ws, ["tickers", "logs"]))
            await hub.publish.remote("tickers", "ticker_update", {"symbol": "ETHUSDT", "price": "3000"})
            await hub.publish.remote("logs", "log", {"message": "first"})
            got += [await _next(ws), await _next(ws)]
            await ws.send(json.dumps({"type": "unsubscribe", "data": {"channels": ["tickers"]}}))
            got.append(await _next(ws))
            await hub.publish.remote("tickers", "ticker_update", {"symbol": "ETHUSDT", "price": "3001"})
            await hub.publish.remote("logs", "log", {"message": "second"})
            got.append(await _next(ws))  # the ticker must have been dropped: the log comes next
        return got

    subscribed, ticker, log1, unsubscribed, log2 = asyncio.run(scenario())
    assert subscribed["type"] == "subscribed" and subscribed["data"]["channels"] == ["logs", "tickers"]
    assert isinstance(subscribed["last_seq"], int)
    assert (ticker["type"], ticker["data"]["price"]) == ("ticker_update", "3000")
    assert (log1["type"], log1["data"]) == ("log", {"message": "first"}) and log1["seq"] > ticker["seq"]
    assert unsubscribed == {"type": "unsubscribed", "data": {"channels": ["logs"]}}
    assert (log2["type"], log2["data"]) == ("log", {"message": "second"}) and log2["seq"] == log1["seq"] + 2


def test_websocket_resumes_after_a_seq_then_joins_the_live_stream(engine_api: dict[str, Any]) -> None:
    import ray

    hub = engine_api["events"]
    # Published while no client is connected: the backlog a reconnecting client asks for.
    first = ray.get(hub.publish.remote("logs", "log", {"message": "seen before the disconnect"}), timeout=60)
    ray.get(hub.publish.remote("tickers", "ticker_update", {"symbol": "SOLUSDT", "price": "150"}), timeout=60)
    missed = [ray.get(hub.publish.remote("logs", "log", {"message": f"missed {n}"}), timeout=60) for n in (1, 2)]

    async def scenario() -> tuple[dict, list[dict], dict]:
        async with websockets.connect(_ws_url(engine_api), open_timeout=30) as ws:
            subscribed = await _subscribe(ws, ["logs"], since=first)
            replayed = [await _next(ws), await _next(ws)]
            live_seq = await hub.publish.remote("logs", "log", {"message": "live"})
            live = await _next(ws)
            assert live["seq"] == live_seq
        return subscribed, replayed, live

    subscribed, replayed, live = asyncio.run(scenario())
    assert subscribed["type"] == "subscribed" and subscribed["last_seq"] >= missed[-1]
    assert [(m["seq"], m["data"]["message"]) for m in replayed] == [(missed[0], "missed 1"), (missed[1], "missed 2")]
    assert live["data"] == {"message": "live"}  # not a replayed event again, not the ticker


def test_websocket_resume_from_an_unknown_future_seq_asks_for_a_resync(engine_api: dict[str, Any]) -> None:
    import ray

    last = ray.get(engine_api["events"].last_seq.remote(), timeout=60)

    async def scenario() -> tuple[dict, dict]:
        async with websockets.connect(_ws_url(engine_api), open_timeout=30) as ws:
            return await _subscribe(ws, ["logs"], since=last + 1000), await _next(ws)

    subscribed, resync = asyncio.run(scenario())
    assert subscribed["type"] == "subscribed"
    assert resync["type"] == "resync" and f"seq {last + 1000}" in resync["data"]["reason"]


def test_the_api_answers_on_its_port_again_after_its_replica_dies(engine_api: dict[str, Any]) -> None:
    """Serve replaces a dead replica; the replacement must bind the same port even though the dead
    one's connections (closed by its side) linger in TIME_WAIT. Runs last: it kills the replica."""
    import time

    import ray

    client: httpx.Client = engine_api["client"]
    assert client.get("/health").status_code == 200  # a keep-alive connection the replica will close
    replicas = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                if a["namespace"] == "serve" and "ApiIngress" in a["name"]]
    assert len(replicas) == 1, replicas
    ray.kill(ray.get_actor(replicas[0], namespace="serve"), no_restart=True)

    deadline, answered = time.monotonic() + 120, None
    while time.monotonic() < deadline and answered != 200:
        time.sleep(0.5)
        try:
            answered = httpx.get(f"{engine_api['base']}/health", timeout=5).status_code
        except httpx.HTTPError:
            answered = None
    assert answered == 200, "no replica answered on the API's port within 120 s of the old one dying"
