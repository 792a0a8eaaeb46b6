"""The `/ws` endpoint: authenticate, then read subscribe/unsubscribe messages until the client leaves."""

from __future__ import annotations

import json

from fastapi import WebSocket, WebSocketDisconnect

from aitrader.events import parse_channels
from serve.auth import UNAUTHORIZED, bearer_token, key_id, key_matches, query_api_key
from serve.fanout import EventFanout, Subscriber
from serve.ratelimit import DATA, RateLimiter

MAX_MESSAGE_CHARS = 16_384


class BadMessage(ValueError):
    """A client message that cannot be understood; answered with an ``error`` message."""


def parse_message(raw: str | None) -> tuple[str, frozenset[str], int | None, str | None]:
    """(type, channels, since, run_id) of a client message, or `BadMessage` saying what is wrong."""
    if raw is None:
        raise BadMessage("send JSON text messages, not binary")
    if len(raw) > MAX_MESSAGE_CHARS:
        raise BadMessage(f"message too long (over {MAX_MESSAGE_CHARS} characters)")
    try:
        body = json.loads(raw)
    except ValueError:
        raise BadMessage("message is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadMessage("message must be a JSON object")
    kind = body.get("type")
    if kind not in ("subscribe", "unsubscribe"):
        raise BadMessage(f"unknown message type {kind!r}; use 'subscribe' or 'unsubscribe'")
    data = body.get("data") or {}
    names = data.get("channels", []) if isinstance(data, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadMessage("data.channels must be a list of channel names")
    try:
        channels = parse_channels(names)
    except ValueError as exc:
        raise BadMessage(str(exc)) from None
    since = body.get("since")
    if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
        raise BadMessage("since must be a non-negative integer seq")
    run_id = body.get("run_id")
    if run_id is not None and (not isinstance(run_id, str) or not 0 < len(run_id) <= 64):
        raise BadMessage("run_id must be the run_id string of an earlier 'subscribed' message")
    return kind, channels, since, run_id


async def serve_socket(websocket: WebSocket, fanout: EventFanout, api_key: str, limiter: RateLimiter,
                       queue_size: int) -> None:
    """Run one client's connection to the end; never raises for a bad client message."""
    await websocket.accept()
    token = bearer_token(websocket.scope.get("headers", [])) or query_api_key(websocket.scope)
    if not key_matches(token, api_key):
        await websocket.close(code=1008, reason=UNAUTHORIZED)
        return
    assert token is not None
    wait = limiter.check(key_id(token), DATA)
    if wait:
        await websocket.close(code=1013, reason=f"rate limit exceeded; retry in {wait} s")
        return

    async def close(code: int, reason: str) -> None:
        await websocket.close(code=code, reason=reason)

    sub = Subscriber(websocket.send_text, close, queue_size)
    fanout.attach(sub)
    try:
        while not sub.closed:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            try:
                kind, channels, since, run_id = parse_message(message.get("text"))
            except BadMessage as exc:
                await sub.send({"type": "error", "data": {"message": str(exc)}})
                continue
            if kind == "subscribe":
                await fanout.subscribe(sub, channels, since, run_id)
            else:
                await fanout.unsubscribe(sub, channels)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        fanout.detach(sub)
