"""Auth on every route (header and WebSocket query parameter) and per-key rate limits."""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from serve import RateLimiter, RateLimits, create_app
from serve.auth import UNAUTHORIZED
from tests.unit.api_fixtures import AUTH, KEY, Api, make_api


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api(tmp_path: Any) -> Api:
    return make_api(tmp_path)


def _routes(api: Api) -> list[tuple[str, str]]:
    """Every (method, path) the OpenAPI schema documents, with ids filled in."""
    found = []
    for template, operations in api.app.openapi()["paths"].items():
        path = re.sub(r"\{[^}]+\}", "abc123", template)
        found += [(method.upper(), path) for method in operations]
    return found


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-key-000000000000"},
                                     {"Authorization": f"Basic {KEY}"}, {"Authorization": KEY}])
def test_every_route_but_health_refuses_a_missing_or_wrong_key(api: Api, headers: dict) -> None:
    with TestClient(api.app) as client:
        routes = _routes(api)
        assert len(routes) >= 17
        for method, path in routes:
            response = client.request(method, path, headers=headers, json={})
            if path == "/health":
                assert response.status_code == 200
                continue
            assert response.status_code == 401, (method, path)
            assert response.json() == {"detail": UNAUTHORIZED}
        for path in ("/docs", "/openapi.json"):
            assert client.get(path, headers=headers).status_code == 401


def test_every_route_accepts_the_right_key_and_never_echoes_it(api: Api) -> None:
    with TestClient(api.app, headers=AUTH) as client:
        for method, path in _routes(api):
            response = client.request(method, path, json={})
            assert response.status_code not in (401, 403) and response.status_code < 500, (method, path)
            assert KEY not in response.text
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/docs").status_code == 200


def test_api_key_query_parameter_is_not_accepted_on_http(api: Api) -> None:
    with TestClient(api.app) as client:
        assert client.get("/status", params={"api_key": KEY}).status_code == 401


@pytest.mark.parametrize(("url", "headers"), [("/ws", {}), ("/ws?api_key=nope", {}),
                                              ("/ws", {"Authorization": "Bearer nope"})])
def test_websocket_refuses_a_missing_or_wrong_key(api: Api, url: str, headers: dict) -> None:
    with (TestClient(api.app) as client, client.websocket_connect(url, headers=headers) as ws,
          pytest.raises(WebSocketDisconnect) as closed):
        ws.receive_json()
    assert closed.value.code == 1008 and closed.value.reason == UNAUTHORIZED


@pytest.mark.parametrize(("url", "headers"), [(f"/ws?api_key={KEY}", {}), ("/ws", AUTH)])
def test_websocket_accepts_the_key_in_header_or_query(api: Api, url: str, headers: dict) -> None:
    with TestClient(api.app) as client, client.websocket_connect(url, headers=headers) as ws:
        ws.send_json({"type": "subscribe", "data": {"channels": ["tickers"]}})
        assert ws.receive_json()["type"] == "subscribed"


def test_data_routes_allow_100_per_minute_then_429_with_retry_after(api: Api) -> None:
    clock = FakeClock()
    app = create_app(api.service, api.settings, limiter=RateLimiter(RateLimits(), clock))
    with TestClient(app, headers=AUTH) as client:
        assert all(client.get("/api/markets").status_code == 200 for _ in range(100))
        refused = client.get("/status")
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert "rate limit" in refused.json()["detail"]
        assert client.get("/health").status_code == 200
        clock.now += 1.0  # 100/min refills one token in 0.6 s
        assert client.get("/status").status_code == 200
        assert client.get("/status").status_code == 429


def test_order_routes_allow_10_per_minute_per_key(api: Api) -> None:
    clock = FakeClock()
    app = create_app(api.service, api.settings, limiter=RateLimiter(RateLimits(), clock))
    body = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0"}  # 422, but it still counts
    with TestClient(app, headers=AUTH) as client:
        assert [client.post("/api/orders", json=body).status_code for _ in range(10)] == [422] * 10
        refused = client.post("/api/positions/p1/close")
        assert refused.status_code == 429 and refused.headers["Retry-After"] == "6"
        assert client.get("/api/orders").status_code == 200  # data bucket is separate
        clock.now += 6
        assert client.post("/api/orders", json=body).status_code == 422


def test_buckets_are_per_key() -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateLimits(data_per_min=1), clock)
    assert limiter.check("a", "data") == 0
    assert limiter.check("a", "data") == 60
    assert limiter.check("b", "data") == 0
