"""API-key authentication (constant-time) and per-key rate limits, as a pure ASGI middleware."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from serve.ratelimit import DATA, ORDERS, RateLimiter

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]

UNAUTHORIZED = "missing or invalid API key; send Authorization: Bearer <API_KEY>"
PUBLIC_PATHS = frozenset({"/health"})
_ORDER_ROUTES = (("POST", re.compile(r"^/api/orders/?$")), ("POST", re.compile(r"^/api/positions/[^/]+/close/?$")))


def key_matches(provided: str | None, expected: str) -> bool:
    """Whether ``provided`` is the API key, compared in constant time."""
    if not provided or not expected:
        return False
    return hmac.compare_digest(provided.encode(), expected.encode())


def bearer_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if any."""
    for name, value in headers:
        if name == b"authorization":
            text = value.decode("latin-1").strip()
            scheme, _, token = text.partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


def query_api_key(scope: Scope) -> str | None:
    """The ``api_key`` query parameter (accepted on the WebSocket only)."""
    raw = scope.get("query_string", b"").decode("latin-1")
    values = parse_qs(raw).get("api_key")
    return values[0] if values else None


def route_class(method: str, path: str) -> str:
    """``orders`` for the order routes, ``data`` for every other authenticated route."""
    return ORDERS if any(method == m and pattern.match(path) for m, pattern in _ORDER_ROUTES) else DATA


def key_id(key: str) -> str:
    """A non-secret identifier of a key, used for rate-limit buckets (never the key itself)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class AuthMiddleware:
    """Refuses HTTP requests without the API key (401) or over their rate limit (429).

    WebSocket connections pass through; the `/ws` endpoint authenticates them itself, since a
    browser cannot set headers on a WebSocket and may send the key as ``api_key`` instead.
    """

    def __init__(self, app: ASGIApp, api_key: str, limiter: RateLimiter) -> None:
        self.app = app
        self._api_key = api_key
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        token = bearer_token(scope.get("headers", []))
        if not key_matches(token, self._api_key):
            await _json(send, 401, {"detail": UNAUTHORIZED}, [(b"www-authenticate", b"Bearer")])
            return
        assert token is not None
        wait = self.limiter.check(key_id(token), route_class(scope["method"], scope["path"]))
        if wait:
            body = {"detail": f"rate limit exceeded; retry in {wait} s"}
            await _json(send, 429, body, [(b"retry-after", str(wait).encode())])
            return
        await self.app(scope, receive, send)


async def _json(send: Any, status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
