"""The FastAPI app without Ray: routes, validation, errors, read state, metrics."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from starlette.testclient import TestClient

from aitrader.models import Position, Signal
from aitrader.trading.errors import CircuitOpen, InsufficientBalance
from tests.unit.api_fixtures import AUTH, KEY, Api, make_api, trader_body, wait_until


@pytest.fixture
def api(tmp_path: Any) -> Api:
    return make_api(tmp_path, max_active_traders=2)


@pytest.fixture
def client(api: Api):
    with TestClient(api.app, headers=AUTH) as client:
        yield client


def test_health_needs_no_key(api: Api) -> None:
    with TestClient(api.app) as anonymous:
        response = anonymous.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"


def test_status_without_engine_reports_settings_and_local_counts(client: TestClient) -> None:
    body = client.get("/status").json()
    assert body["mode"] == "paper" and body["user_id"] == "alice" and body["location"] == "local"
    assert body["feed"] == "stale" and body["running"] is False and body["version"]
    assert set(body["counts"]) == {"traders", "active_traders", "open_positions", "signals"}


def test_status_uses_engine_status_and_engine_events(api: Api, client: TestClient) -> None:
    api.backend.publish("engine", "engine", {"mode": "paper", "running": True, "feed": "binance", "user_id": "alice",
                                             "location": "local", "equity": "10012.5", "metrics": {"errors": 3}})
    body = wait_until(lambda: (b := client.get("/status").json())["running"] and b)
    assert body["feed"] == "binance" and body["equity"] == "10012.5" and body["metrics"]["errors"] == 3


def test_markets_come_from_replica_state_and_follow_ticker_events(api: Api, client: TestClient) -> None:
    body = client.get("/api/markets").json()
    assert [m["symbol"] for m in body["markets"]] == ["BTCUSDT", "ETHUSDT"] and body["timestamp"]
    api.backend.publish("tickers", "ticker_update", {"symbol": "BTCUSDT", "price": "61000.5", "change24h": "2"})
    market = wait_until(lambda: (m := client.get("/api/markets").json()["markets"][0])["price"] == "61000.5" and m)
    assert market["change24h"] == "2" and market["volume24h"] == "1000"


def test_trader_lifecycle_reaches_the_scheduler(api: Api, client: TestClient) -> None:
    created = client.post("/api/traders", json=trader_body())
    assert created.status_code == 201, created.text
    trader = created.json()
    assert trader["status"] == "inactive" and trader["signal_count"] == 0
    tid = trader["id"]
    api.storage.create_signal(Signal.model_validate({
        "trader_id": tid, "user_id": "alice", "symbol": "BTCUSDT", "timeframe": "1m", "candle_time": 1,
        "meta": {"conditions": ["rsi(close, 14) < 30"]}}))
    assert client.get("/api/traders").json()["traders"][0]["signal_count"] == 1
    signals = client.get("/api/signals", params={"trader_id": tid}).json()["signals"]
    assert signals[0]["trader_name"] == "rsi-dip" and signals[0]["conditions"] == ["rsi(close, 14) < 30"]
    patched = client.patch(f"/api/traders/{tid}", json={"symbols": ["ethusdt"], "stop_loss_pct": "2.5"}).json()
    assert patched["symbols"] == ["ETHUSDT"] and patched["stop_loss_pct"] == "2.5"
    assert client.post(f"/api/traders/{tid}/enable").json()["status"] == "active"
    assert client.post(f"/api/traders/{tid}/disable").json()["status"] == "inactive"
    assert client.delete(f"/api/traders/{tid}").status_code == 204
    assert client.get(f"/api/traders/{tid}").status_code == 404
    assert api.backend.scheduler_calls == [("upsert", tid)] * 4 + [("remove", tid)]


def test_bad_filter_is_422_with_location(client: TestClient) -> None:
    response = client.post("/api/traders", json=trader_body(signal_code="rsi(close,"))
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert detail["error"] == "invalid_filter" and detail["line"] == 1 and detail["col"] >= 1 and detail["message"]


def test_validate_reports_conditions_or_error(client: TestClient) -> None:
    ok = client.post("/api/traders/validate", json={"signal_code": "rsi(close, 14) < 30 and close[-1] > 1"}).json()
    assert ok == {"valid": True, "message": None, "line": None, "col": None,
                  "conditions": ["rsi(close, 14) < 30", "close[-1] > 1"]}
    bad = client.post("/api/traders/validate", json={"signal_code": "import os"}).json()
    assert bad["valid"] is False and bad["line"] == 1 and bad["message"]


def test_name_conflict_is_409_and_active_limit_is_enforced(client: TestClient) -> None:
    assert client.post("/api/traders", json=trader_body("a", status="active")).status_code == 201
    assert client.post("/api/traders", json=trader_body("a")).status_code == 409
    assert client.post("/api/traders", json=trader_body("b", status="active")).status_code == 201
    third = client.post("/api/traders", json=trader_body("c", status="active"))
    assert third.status_code == 409 and "MAX_ACTIVE_TRADERS" in third.json()["detail"]
    inactive = client.post("/api/traders", json=trader_body("d")).json()
    assert client.post(f"/api/traders/{inactive['id']}/enable").status_code == 409


@pytest.mark.parametrize("body", [
    {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET"},
    {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "1", "quote_quantity": "10"},
    {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "1"},
    {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "-1"},
    {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "abc"},
    {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "NaN"},
    {"symbol": "BTCUSDT", "side": "HOLD", "type": "MARKET", "quantity": "1"},
    {"symbol": "BTC/USDT", "side": "BUY", "type": "MARKET", "quantity": "1"},
    {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "1", "leverage": 10},
])
def test_bad_orders_are_422_and_never_reach_the_executor(api: Api, client: TestClient, body: dict) -> None:
    assert client.post("/api/orders", json=body).status_code == 422
    assert api.backend.orders == []


def test_manual_buy_fills_and_opens_a_long(api: Api, client: TestClient) -> None:
    response = client.post("/api/orders", json={"symbol": "btcusdt", "side": "BUY", "type": "MARKET",
                                                "quote_quantity": 250, "stop_loss": "90"})
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["status"] == "FILLED" and order["position_id"]
    assert order["fills"][0] == {"price": "100", "qty": "2.5", "commission": "0", "commission_asset": "USDT"}
    assert api.backend.orders[0]["quote_quantity"] == "250" and api.backend.orders[0]["symbol"] == "BTCUSDT"
    opened = wait_until(lambda: client.get("/api/positions", params={"status": "open"}).json()["positions"])
    assert opened[0]["side"] == "LONG" and opened[0]["size"] == "2.5"


@pytest.mark.parametrize(("error", "status"), [
    (InsufficientBalance("Account has insufficient balance for requested action."), 400),
    (CircuitOpen(30), 503),
])
def test_broker_errors_map_to_readable_statuses(api: Api, client: TestClient, error: Exception, status: int) -> None:
    api.backend.order_error = lambda _request: error
    response = client.post("/api/orders", json={"symbol": "BTCUSDT", "side": "BUY", "quantity": "1"})
    assert response.status_code == status
    assert response.json()["detail"] and "Traceback" not in response.text


def test_close_position_returns_it_closed_and_updates_open_list(api: Api, client: TestClient) -> None:
    position = api.storage.create_position(Position.model_validate({
        "user_id": "alice", "symbol": "ETHUSDT", "side": "LONG", "entry_price": Decimal("3000"), "size": "1"}))
    wait_until(lambda: client.get("/api/positions", params={"status": "open"}).json()["positions"])
    closed = client.post(f"/api/positions/{position.id}/close")
    assert closed.status_code == 200 and closed.json()["position"]["status"] == "closed"
    assert client.get("/api/positions", params={"status": "open"}).json()["positions"] == []
    assert client.get("/api/positions", params={"status": "closed"}).json()["positions"][0]["id"] == position.id
    assert client.post("/api/positions/nope/close").status_code == 404


def test_balance_and_orders_lists(client: TestClient) -> None:
    assert client.get("/api/balance").json() == {"balances": [], "equity": None}
    assert client.get("/api/orders").json() == {"orders": []}


@pytest.mark.parametrize(("path", "params"), [
    ("/api/signals", {"limit": 0}), ("/api/signals", {"limit": 100_000}), ("/api/signals", {"status": "x"}),
    ("/api/positions", {"status": "maybe"}), ("/api/orders", {"limit": -1}), ("/api/signals", {"trader_id": "x" * 65}),
])
def test_query_parameters_are_validated(client: TestClient, path: str, params: dict) -> None:
    assert client.get(path, params=params).status_code == 422


def test_long_ids_are_422_not_500(client: TestClient) -> None:
    assert client.get("/api/traders/" + "a" * 200).status_code == 422


def test_metrics_exposes_prometheus_text(client: TestClient) -> None:
    client.get("/api/markets")
    text = client.get("/metrics").text
    for name in ("aitrader_signals_created_total", "aitrader_orders_executed_total", "aitrader_orders_failed_total",
                 "aitrader_stream_reconnects_total", "aitrader_stream_gaps_total", "aitrader_active_traders",
                 "aitrader_open_positions", "aitrader_stream_latency_seconds", "aitrader_filter_check_seconds",
                 "aitrader_actor_restarts_total", 'aitrader_http_request_duration_seconds_count{method="GET",'
                 'route="/api/markets",status="200"}'):
        assert name in text
    assert KEY not in text


def test_every_route_is_in_openapi_with_a_response_schema(api: Api) -> None:
    schema = api.app.openapi()
    paths = schema["paths"]
    for path in ("/health", "/status", "/metrics", "/api/markets", "/api/traders", "/api/traders/{trader_id}",
                 "/api/traders/{trader_id}/enable", "/api/traders/{trader_id}/disable", "/api/traders/validate",
                 "/api/signals", "/api/positions", "/api/positions/{position_id}/close", "/api/balance",
                 "/api/orders"):
        assert path in paths
    assert "application/json" in paths["/api/markets"]["get"]["responses"]["200"]["content"]
    assert "Markets" in str(paths["/api/markets"]["get"]["responses"]["200"])


def test_cors_is_off_unless_configured(api: Api, client: TestClient) -> None:
    response = client.get("/status", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers
