"""Async client of the engine's HTTP + WebSocket API (used by the TUI and `aitrader status`).

Errors form a small tree, translated here at the edge::

    ApiError                 any failed call; ``str(error)`` is a sentence for the user
    ├── ApiUnreachable       no connection (engine down, wrong address, timeout)
    ├── AuthError            401: the API key was refused
    ├── RateLimited          429: ``retry_after`` seconds to wait
    ├── FilterError          422 invalid_filter: ``message``, ``line``, ``col``
    └── RequestInvalid       other 422s: ``errors`` as pydantic-style dicts

`EventStream` is the live `/ws` subscription: it reconnects with capped exponential backoff,
resumes from the last ``seq`` it saw and yields `ConnectionChanged` markers between events.
A seq is only meaningful within one run of the engine's event hub: the stream resumes with the
``run_id`` the seq came from, and when the engine answers with another run (it restarted) the
stream drops its cursor and yields a ``resync`` event, so the caller re-fetches its snapshot.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets

JSON = dict[str, Any]
CHANNELS = ("tickers", "signals", "positions", "orders", "logs", "engine")


class ApiError(Exception):
    """A call to the engine API failed."""

    def __init__(self, message: str, status: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class ApiUnreachable(ApiError):
    """The engine could not be reached."""


class AuthError(ApiError):
    """The engine refused the API key (401)."""


class RateLimited(ApiError):
    """Too many requests (429); wait ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, 429)
        self.retry_after = retry_after


class FilterError(ApiError):
    """The trader's filter does not compile; ``line``/``col`` locate the error (1-based)."""

    def __init__(self, message: str, line: int | None, col: int | None) -> None:
        where = f" (line {line}, col {col})" if line else ""
        super().__init__(f"invalid filter{where}: {message}", 422)
        self.message, self.line, self.col = message, line, col


class RequestInvalid(ApiError):
    """The engine rejected the request body (422); ``errors`` holds one dict per problem."""

    def __init__(self, errors: list[JSON]) -> None:
        lines = [f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}" for e in errors]
        super().__init__("; ".join(lines) or "the request was rejected", 422, errors)
        self.errors = errors


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = response.text
    status = response.status_code
    if status == 401:
        raise AuthError(f"the engine refused the API key ({detail}); check --api-key", 401, detail)
    if status == 429:
        retry = float(response.headers.get("Retry-After", "1") or 1)
        raise RateLimited(f"rate limited by the engine: retry in {retry:g} s", retry)
    if status == 422 and isinstance(detail, dict) and detail.get("error") == "invalid_filter":
        raise FilterError(str(detail.get("message")), detail.get("line"), detail.get("col"))
    if status == 422 and isinstance(detail, list):
        raise RequestInvalid(detail)
    raise ApiError(f"{response.request.method} {response.request.url.path} failed ({status}): {detail}", status, detail)


@dataclass(frozen=True)
class ConnectionChanged:
    """Marker from `EventStream`: the WebSocket connected or dropped (``reason`` says why)."""

    connected: bool
    reason: str = ""


@dataclass
class Backoff:
    """Capped exponential backoff with full jitter."""

    initial: float = 0.5
    cap: float = 10.0
    attempt: int = field(default=0, init=False)

    def next_delay(self) -> float:
        delay = min(self.cap, self.initial * 2**self.attempt)
        self.attempt += 1
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempt = 0


class EventStream:
    """Reconnecting `/ws` subscription; iterate to get event dicts and `ConnectionChanged` markers."""

    def __init__(self, ws_url: str, api_key: str, channels: Iterable[str], backoff: Backoff) -> None:
        self._url = ws_url
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self.channels = list(channels)
        self.backoff = backoff
        self.last_seq: int | None = None
        #: The event hub run ``last_seq`` belongs to (from ``subscribed``); None before the first.
        self.run_id: str | None = None

    async def __aiter__(self) -> AsyncIterator[JSON | ConnectionChanged]:
        while True:
            try:
                async with websockets.connect(
                    self._url, additional_headers=self._headers, open_timeout=5, max_size=2**22
                ) as ws:
                    request: JSON = {"type": "subscribe", "data": {"channels": self.channels}}
                    if self.last_seq is not None:
                        request["since"] = self.last_seq
                        if self.run_id is not None:
                            request["run_id"] = self.run_id
                    await ws.send(json.dumps(request))
                    async for raw in ws:
                        event = json.loads(raw)
                        kind = event.get("type")
                        if kind == "subscribed":
                            self.backoff.reset()
                            yield ConnectionChanged(True)
                            if self._new_run(event.get("run_id")) and "since" not in request:
                                # Resuming with a run id, the engine sends the resync itself.
                                yield {"type": "resync", "data": {"reason": "the engine restarted"}}
                            continue
                        if kind == "resync":  # after a restart of the engine's event hub it names the new run
                            self._new_run((event.get("data") or {}).get("run_id"))
                        if isinstance(event.get("seq"), int):
                            self.last_seq = event["seq"]
                        yield event
                    reason = ws.close_reason or "the engine closed the connection"
            except (OSError, TimeoutError, websockets.WebSocketException) as exc:
                reason = str(exc) or type(exc).__name__
            yield ConnectionChanged(False, reason)
            await asyncio.sleep(self.backoff.next_delay())

    def _new_run(self, run_id: object) -> bool:
        """Note the engine's run id; True (and the cursor dropped) if it differs from the known one."""
        if not isinstance(run_id, str) or run_id == self.run_id:
            return False
        known, self.run_id = self.run_id, run_id
        self.last_seq = None
        return known is not None


class ApiClient:
    """One engine's API: REST calls as coroutines, live events through `events()`."""

    def __init__(
        self,
        address: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.address = address.rstrip("/")
        self.api_key = api_key
        self.backoff = backoff or Backoff()
        self._http = httpx.AsyncClient(
            base_url=self.address,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiUnreachable(f"cannot reach the engine at {self.address}: {exc or type(exc).__name__}") from exc
        _raise_for(response)
        return None if response.status_code == 204 else response.json()

    # ---- engine
    async def health(self) -> JSON:
        return await self._call("GET", "/health")

    async def status(self) -> JSON:
        return await self._call("GET", "/status")

    async def markets(self) -> list[JSON]:
        return (await self._call("GET", "/api/markets"))["markets"]

    async def balance(self) -> JSON:
        return await self._call("GET", "/api/balance")

    async def orders(self) -> list[JSON]:
        return (await self._call("GET", "/api/orders"))["orders"]

    # ---- traders
    async def traders(self) -> list[JSON]:
        return (await self._call("GET", "/api/traders"))["traders"]

    async def trader(self, trader_id: str) -> JSON:
        return await self._call("GET", f"/api/traders/{trader_id}")

    async def create_trader(self, body: JSON) -> JSON:
        return await self._call("POST", "/api/traders", json=body)

    async def update_trader(self, trader_id: str, changes: JSON) -> JSON:
        return await self._call("PATCH", f"/api/traders/{trader_id}", json=changes)

    async def delete_trader(self, trader_id: str) -> None:
        await self._call("DELETE", f"/api/traders/{trader_id}")

    async def enable_trader(self, trader_id: str) -> JSON:
        return await self._call("POST", f"/api/traders/{trader_id}/enable")

    async def disable_trader(self, trader_id: str) -> JSON:
        return await self._call("POST", f"/api/traders/{trader_id}/disable")

    async def validate_filter(self, signal_code: str) -> JSON:
        return await self._call("POST", "/api/traders/validate", json={"signal_code": signal_code})

    # ---- signals and positions
    async def signals(
        self, *, trader_id: str | None = None, symbol: str | None = None, status: str | None = None, limit: int = 200
    ) -> list[JSON]:
        params = {k: v for k, v in {"trader_id": trader_id, "symbol": symbol, "status": status}.items() if v}
        return (await self._call("GET", "/api/signals", params={**params, "limit": limit}))["signals"]

    async def positions(self, status: str | None = "open") -> list[JSON]:
        params = {"status": status} if status else {}
        return (await self._call("GET", "/api/positions", params=params))["positions"]

    async def close_position(self, position_id: str) -> JSON:
        return (await self._call("POST", f"/api/positions/{position_id}/close"))["position"]

    # ---- live events
    def ws_url(self) -> str:
        scheme, rest = self.address.split("://", 1)
        return ("wss" if scheme == "https" else "ws") + "://" + rest + "/ws"

    def events(self, channels: Iterable[str] = CHANNELS) -> EventStream:
        """A reconnecting subscription to ``channels`` (iterate it with ``async for``)."""
        return EventStream(self.ws_url(), self.api_key, channels, self.backoff)
