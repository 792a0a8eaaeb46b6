"""`/ws`: subscribe, unsubscribe, resume by seq, resync, malformed messages, slow clients."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.testclient import TestClient

from aitrader.events import EventLog
from serve.fanout import EventFanout, Subscriber
from serve.metrics import ApiMetrics
from serve.state import ReplicaState
from tests.unit.api_fixtures import AUTH, Api, make_api


@pytest.fixture
def api(tmp_path: Any) -> Api:
    return make_api(tmp_path, capacity=10)


def _subscribe(ws: Any, channels: list[str], since: int | None = None) -> dict:
    message: dict[str, Any] = {"type": "subscribe", "data": {"channels": channels}}
    if since is not None:
        message["since"] = since
    ws.send_json(message)
    reply = ws.receive_json()
    assert reply["type"] == "subscribed"
    return reply


def test_subscribed_client_receives_events_of_its_channels_only(api: Api) -> None:
    with TestClient(api.app) as client, client.websocket_connect("/ws", headers=AUTH) as ws:
        assert _subscribe(ws, ["signals"])["data"]["channels"] == ["signals"]
        api.backend.publish("tickers", "ticker_update", {"symbol": "BTCUSDT", "price": "1"})
        seq = api.backend.publish("signals", "signal_created", {"id": "s1", "trader_id": "t1"})
        assert ws.receive_json() == {"type": "signal_created", "seq": seq, "data": {"id": "s1", "trader_id": "t1"}}


def test_unsubscribe_stops_a_channel(api: Api) -> None:
    with TestClient(api.app) as client, client.websocket_connect("/ws", headers=AUTH) as ws:
        _subscribe(ws, ["tickers", "logs"])
        ws.send_json({"type": "unsubscribe", "data": {"channels": ["tickers"]}})
        assert ws.receive_json() == {"type": "unsubscribed", "data": {"channels": ["logs"]}}
        api.backend.publish("tickers", "ticker_update", {"symbol": "BTCUSDT", "price": "1"})
        seq = api.backend.publish("logs", "log", {"message": "hello"})
        assert ws.receive_json()["seq"] == seq


def test_resume_by_seq_replays_the_backlog_then_goes_live(api: Api) -> None:
    first = api.backend.publish("signals", "signal_created", {"id": "a"})
    second = api.backend.publish("signals", "signal_created", {"id": "b"})
    third = api.backend.publish("signals", "signal_updated", {"id": "b"})
    with TestClient(api.app) as client, client.websocket_connect("/ws", headers=AUTH) as ws:
        _subscribe(ws, ["signals"], since=first)
        assert [ws.receive_json()["seq"] for _ in range(2)] == [second, third]
        live = api.backend.publish("signals", "signal_created", {"id": "c"})
        assert ws.receive_json()["seq"] == live


def test_a_reader_that_fell_off_the_ring_is_told_to_resync(api: Api) -> None:
    first = api.backend.publish("logs", "log", {"n": 0})
    for n in range(20):  # the ring keeps 10
        api.backend.publish("logs", "log", {"n": n + 1})
    with TestClient(api.app) as client, client.websocket_connect("/ws", headers=AUTH) as ws:
        _subscribe(ws, ["logs"], since=first)
        message = ws.receive_json()
        assert message["type"] == "resync" and "re-fetch" in message["data"]["reason"]
        live = api.backend.publish("logs", "log", {"n": 99})
        assert ws.receive_json()["seq"] == live


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", '{"type": "shout"}', '{"type": "subscribe", "data": '
                                 '{"channels": ["moon"]}}', '{"type": "subscribe", "since": -4}',
                                 '{"type": "subscribe", "data": {"channels": "tickers"}}', "x" * 20_000,
                                 '{"type": "subscribe", "since": 1, "run_id": 7}'])
def test_malformed_messages_get_an_error_and_the_socket_stays_open(api: Api, raw: str) -> None:
    with TestClient(api.app) as client, client.websocket_connect("/ws", headers=AUTH) as ws:
        ws.send_text(raw)
        error = ws.receive_json()
        assert error["type"] == "error" and error["data"]["message"]
        _subscribe(ws, ["tickers"])


async def test_a_client_that_cannot_keep_up_is_closed_without_blocking_the_pump() -> None:
    log = EventLog(capacity=100)
    metrics = ApiMetrics(lambda: {})
    fanout = EventFanout(None, ReplicaState(), metrics, queue_size=3)  # type: ignore[arg-type]
    stuck = asyncio.Event()
    closed: list[tuple[int, str]] = []

    async def blocked_send(_text: str) -> None:
        await stuck.wait()

    async def close(code: int, reason: str) -> None:
        closed.append((code, reason))

    fast_texts: list[str] = []

    async def fast_send(text: str) -> None:
        fast_texts.append(text)

    async def noop_close(_code: int, _reason: str) -> None:
        return None

    slow, fast = Subscriber(blocked_send, close, 3), Subscriber(fast_send, noop_close, 3)
    for sub in (slow, fast):
        sub.channels = {"tickers"}
        fanout.attach(sub)
    for n in range(10):
        fanout.dispatch(log.publish("tickers", "ticker_update", {"symbol": "BTCUSDT", "price": str(n)}))
        await asyncio.sleep(0)  # the fast client's sender drains its queue
    for _ in range(10):
        await asyncio.sleep(0)
    assert closed and closed[0][0] == 1013 and "too slow" in closed[0][1]
    assert slow not in fanout.subscribers and fast in fanout.subscribers
    assert len(fast_texts) == 10
    fanout.detach(fast)
    stuck.set()


def test_subscribed_names_the_event_hub_run(api: Api) -> None:
    with TestClient(api.app) as client, client.websocket_connect("/ws", headers=AUTH) as ws:
        assert _subscribe(ws, ["logs"])["run_id"] == api.backend.log.run_id


def test_a_resume_with_the_seq_of_another_run_is_told_to_resync_without_a_replay(api: Api) -> None:
    first = api.backend.publish("logs", "log", {"n": 1})
    api.backend.publish("logs", "log", {"n": 2})  # a seq the client's earlier run also had: not its event
    with TestClient(api.app) as client, client.websocket_connect("/ws", headers=AUTH) as ws:
        ws.send_json({"type": "subscribe", "data": {"channels": ["logs"]}, "since": first, "run_id": "an-old-run"})
        assert ws.receive_json()["type"] == "subscribed"
        resync = ws.receive_json()
        assert resync["type"] == "resync" and "another engine run" in resync["data"]["reason"]
        assert resync["data"]["run_id"] == api.backend.log.run_id
        live = api.backend.publish("logs", "log", {"n": 3})
        assert ws.receive_json()["seq"] == live


async def test_the_pump_starts_over_when_the_hub_restarts_with_a_lower_seq_series(tmp_path: Any) -> None:
    """The restarted hub's seqs need not be above the old ones (another node's clock): clients are
    told to resync and get the new run's events instead of waiting for its seq to pass the old one."""
    api = make_api(tmp_path)
    fanout, backend = api.service.fanout, api.backend
    backend.log = EventLog(capacity=100, start_seq=5_000)
    sent: list[dict[str, Any]] = []

    async def send(text: str) -> None:
        sent.append(json.loads(text))

    async def close(_code: int, _reason: str) -> None:
        return None

    pump = asyncio.create_task(fanout.run())
    sub = Subscriber(send, close, 100)
    fanout.attach(sub)
    try:
        await fanout.subscribe(sub, frozenset({"logs"}), None)
        await _until(lambda: fanout.seq is not None)  # the pump reads from the hub's last seq on
        backend.publish("logs", "log", {"message": "old run"})
        await _until(lambda: any(m.get("seq") == 5_001 for m in sent), what=sent)
        backend.log = EventLog(capacity=100, start_seq=10)  # the hub restarted
        backend.publish("logs", "log", {"message": "new run"})
        await _until(lambda: any(m.get("data", {}).get("message") == "new run" for m in sent), what=sent)
    finally:
        pump.cancel()
        fanout.detach(sub)
    kinds = [(m["type"], m.get("seq")) for m in sent]
    assert kinds == [("subscribed", None), ("log", 5_001), ("resync", None), ("log", 11)], kinds
    assert sent[2]["data"]["run_id"] == backend.log.run_id and fanout.run_id == backend.log.run_id


async def _until(predicate: Any, limit: float = 5.0, what: Any = None) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(poll(), limit)
    except TimeoutError:
        raise AssertionError(f"not seen in {limit} s: {what}") from None
