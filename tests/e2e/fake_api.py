"""A small real HTTP + WebSocket server speaking the engine API contract, for TUI and client tests.

It runs aiohttp on its own event loop in a background thread, so both async Pilot tests and
synchronous snapshot tests can use it. Data is deterministic (fixed times, seeded prices);
tests script events with `emit()` and outages with `stop()` / `start()` on the same port;
`new_run()` plays a restarted engine, whose event hub starts a new seq series (a new run id).
"""

from __future__ import annotations

import ast
import asyncio
import copy
import json
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

JSON = dict[str, Any]
T0 = "2024-05-01T12:00:00Z"
T0_MS = 1_714_564_800_000  # T0 in epoch milliseconds, as candle times are given


@dataclass(eq=False)
class _Subscriber:
    """A subscribed socket: the last seq it has been sent, and a lock that keeps its frames in order."""

    ws: web.WebSocketResponse
    sent_seq: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _sparkline(seed: int, n: int = 24) -> list[float]:
    return [round(100 + ((seed * 7 + i * 13) % 17) - (i % 5), 2) for i in range(n)]


def make_markets(count: int = 6) -> list[JSON]:
    """``count`` deterministic markets (BTCUSDT, ETHUSDT, ... then SYM006USDT ...)."""
    names = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT"]
    out = []
    for i in range(count):
        symbol = names[i] if i < len(names) else f"SYM{i:03d}USDT"
        out.append({
            "symbol": symbol,
            "price": f"{(60000 / (i + 1)):.2f}",
            "change24h": f"{((i * 37) % 11 - 5) * 0.75:.2f}",
            "volume24h": f"{(i + 1) * 1234567.5:.1f}",
            "sparkline": _sparkline(i),
        })
    return out


def make_trader(trader_id: str, name: str, code: str, *, status: str = "active", count: int = 0, **extra: Any) -> JSON:
    trader = {
        "id": trader_id, "name": name, "description": "", "symbols": ["BTCUSDT", "ETHUSDT"],
        "timeframes": ["1m", "5m"], "check_interval": 60, "signal_code": code, "status": status,
        "auto_trade": False, "stop_loss_pct": "2", "take_profit_pct": "4", "signal_count": count,
        "created_at": T0, "updated_at": T0,
    }
    trader.update(extra)
    return trader


def make_signal(n: int, trader: JSON, symbol: str = "BTCUSDT", **extra: Any) -> JSON:
    signal = {
        "id": f"sig-{n}", "trader_id": trader["id"], "trader_name": trader["name"], "symbol": symbol,
        "timeframe": "1m", "candle_time": T0_MS + (n - 1) % 60 * 60_000, "signal_type": "long", "status": "executed", "trigger_price": "60000.00",
        "confidence": 0.72, "reasoning": "RSI is oversold while volume doubles; momentum turning up.",
        "decision": "enter", "conditions": ["rsi(close, 14) < 30", "volume[-1] > 2 * sma(volume, 20)[-1]"],
        "created_at": f"2024-05-01T12:{n % 60:02d}:00Z",  # stored as its 1m candle closed
    }
    signal.update(extra)
    return signal


def make_position(n: int, symbol: str = "BTCUSDT", side: str = "LONG", pnl: str = "12.34", **extra: Any) -> JSON:
    position = {
        "id": f"pos-{n}", "symbol": symbol, "side": side, "size": "0.010", "entry_price": "60000.00",
        "current_price": "61234.00", "stop_loss": "58800.00", "take_profit": "62400.00", "pnl": pnl,
        "pnl_pct": "2.06" if not pnl.startswith("-") else "-1.10", "status": "open", "close_reason": None,
        "created_at": T0, "closed_at": None,
    }
    position.update(extra)
    return position


def validate_filter(code: str) -> JSON:
    """A toy of the engine's filter compiler: Python syntax, top-level ``and`` clauses as conditions."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return {"valid": False, "message": exc.msg, "line": exc.lineno, "col": exc.offset, "conditions": []}
    if not tree.body or not isinstance(tree.body[-1], ast.Expr):
        return {"valid": False, "message": "the filter must end with an expression", "line": 1, "col": 1,
                "conditions": []}
    last = tree.body[-1].value
    clauses = last.values if isinstance(last, ast.BoolOp) and isinstance(last.op, ast.And) else [last]
    return {"valid": True, "message": None, "line": None, "col": None, "conditions": [ast.unparse(c) for c in clauses]}


class FakeApi:
    """The fake engine. ``state`` holds the data served; mutate it or call `emit()`."""

    def __init__(self, api_key: str = "test-key", *, markets: int = 6, ring: int = 1000, ai_analysis: bool = True):
        self.api_key = api_key
        self.port = 0
        self.seq = 0
        self.run_id = "run-1"
        self.ring: deque[JSON] = deque(maxlen=ring)
        trader_a = make_trader("t-1", "rsi-dip", "rsi(close, 14) < 30 and volume[-1] > 2 * sma(volume, 20)[-1]",
                               count=2)
        trader_b = make_trader("t-2", "ema-cross", "crossover(ema(close, 12), sma(close, 26))", status="inactive",
                               timeframes=["15m"], symbols=["SOLUSDT"])
        self.state: JSON = {
            "status": {
                "version": "0.1.0", "mode": "paper", "running": True, "feed": "binance", "feed_note": None,
                "user_id": "alice", "location": "local", "connected_symbols": ["BTCUSDT", "ETHUSDT"],
                "counts": {"traders": 2, "active_traders": 1, "open_positions": 2, "signals": 2},
                "metrics": {"signals_created": 2, "trades_executed": 2, "total_pnl": "12.34", "avg_check_ms": 1.2,
                            "stream_latency_ms": 35.0, "errors": 0},
                "equity": "10012.34", "ai_analysis": ai_analysis, "auto_trading": False,
            },
            "markets": make_markets(markets),
            "traders": [trader_a, trader_b],
            "signals": [make_signal(2, trader_a, "ETHUSDT", confidence=0.41, decision="wait", status="analyzing"),
                        make_signal(1, trader_a)],
            "positions": [make_position(1), make_position(2, "ETHUSDT", "SHORT", "-3.30")],
            "balance": {"balances": [{"asset": "USDT", "free": "9400.00", "locked": "0"}], "equity": "10012.34"},
        }
        self.requests: list[tuple[str, str]] = []
        self._subscribers: dict[web.WebSocketResponse, _Subscriber] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="fake-api")
        self._thread.start()
        self._runner: web.AppRunner | None = None
        self._next_id = 3

    # ---- lifecycle (called from the test thread)
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def start(self) -> FakeApi:
        """Serve (again, on the same port after `stop()`)."""
        self._run(self._start())
        return self

    def stop(self) -> None:
        """Close every WebSocket and stop listening, as an engine restart would."""
        self._run(self._stop())

    def new_run(self) -> None:
        """Play an engine started again (call between `stop()` and `start()`): a new run id, seqs from 1 again."""
        self.run_id = f"run-{int(self.run_id.rsplit('-', 1)[1]) + 1}"
        self.seq = 0
        self.ring.clear()

    def close(self) -> None:
        if self._runner is not None:
            self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def emit(self, type_: str, data: JSON) -> int:
        """Append an event to the ring and push it to subscribed sockets; returns its seq."""
        return self._run(self._emit(type_, data))

    # ---- server internals (run on the server loop)
    async def _start(self) -> None:
        app = web.Application(middlewares=[self._auth])
        r = app.router
        r.add_get("/health", self._health)
        r.add_get("/status", lambda _: self._json(self.state["status"]))
        r.add_get("/api/markets", lambda _: self._json({"markets": self.state["markets"], "timestamp": T0}))
        r.add_get("/api/balance", lambda _: self._json(self.state["balance"]))
        r.add_get("/api/orders", lambda _: self._json({"orders": []}))
        r.add_get("/api/traders", lambda _: self._json({"traders": self.state["traders"]}))
        r.add_post("/api/traders/validate", self._validate)
        r.add_post("/api/traders", self._create_trader)
        r.add_route("*", "/api/traders/{id}", self._trader)
        r.add_post("/api/traders/{id}/{action:enable|disable}", self._toggle_trader)
        r.add_get("/api/signals", self._signals)
        r.add_get("/api/positions", self._positions)
        r.add_post("/api/positions/{id}/close", self._close_position)
        r.add_get("/ws", self._ws)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        for ws in list(self._subscribers):
            await ws.close(code=1012, message=b"engine restarting")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @staticmethod
    def _json(body: Any, status: int = 200) -> web.Response:
        return web.json_response(body, status=status)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        if request.path != "/health":
            header = request.headers.get("Authorization", "")
            key = header.removeprefix("Bearer ") if header else request.query.get("api_key", "")
            if key != self.api_key:
                return self._json({"detail": "invalid API key"}, 401)
        return await handler(request)

    async def _health(self, _: web.Request) -> web.Response:
        return self._json({"status": "healthy", "time": T0})

    async def _validate(self, request: web.Request) -> web.Response:
        return self._json(validate_filter((await request.json()).get("signal_code", "")))

    def _find(self, kind: str, item_id: str) -> JSON | None:
        return next((x for x in self.state[kind] if x["id"] == item_id), None)

    async def _create_trader(self, request: web.Request) -> web.Response:
        body = await request.json()
        errors = [{"loc": ["body", k], "msg": "Field required", "type": "missing"}
                  for k in ("name", "symbols", "timeframes", "signal_code") if not body.get(k)]
        if errors:
            return self._json({"detail": errors}, 422)
        result = validate_filter(body["signal_code"])
        if not result["valid"]:
            return self._json({"detail": {"error": "invalid_filter", "message": result["message"],
                                          "line": result["line"], "col": result["col"]}}, 422)
        trader = make_trader(f"t-{self._next_id}", body["name"], body["signal_code"], status="inactive", **{
            k: v for k, v in body.items() if k not in ("name", "signal_code")})
        self._next_id += 1
        self.state["traders"].append(trader)
        return self._json(trader, 201)

    async def _trader(self, request: web.Request) -> web.Response:
        trader = self._find("traders", request.match_info["id"])
        if trader is None:
            return self._json({"detail": "trader not found"}, 404)
        if request.method == "DELETE":
            self.state["traders"].remove(trader)
            return web.Response(status=204)
        if request.method == "PATCH":
            changes = await request.json()
            if "signal_code" in changes and not (result := validate_filter(changes["signal_code"]))["valid"]:
                return self._json({"detail": {"error": "invalid_filter", "message": result["message"],
                                              "line": result["line"], "col": result["col"]}}, 422)
            trader.update(changes)
        return self._json(trader)

    async def _toggle_trader(self, request: web.Request) -> web.Response:
        trader = self._find("traders", request.match_info["id"])
        if trader is None:
            return self._json({"detail": "trader not found"}, 404)
        trader["status"] = "active" if request.match_info["action"] == "enable" else "inactive"
        return self._json(trader)

    async def _signals(self, request: web.Request) -> web.Response:
        limit = int(request.query.get("limit", 200))
        return self._json({"signals": self.state["signals"][:limit]})

    async def _positions(self, request: web.Request) -> web.Response:
        status = request.query.get("status")
        rows = [p for p in self.state["positions"] if status is None or (p["status"] == "open") == (status == "open")]
        return self._json({"positions": rows})

    async def _close_position(self, request: web.Request) -> web.Response:
        position = self._find("positions", request.match_info["id"])
        if position is None:
            return self._json({"detail": "position not found"}, 404)
        position.update(status="closed", close_reason="manual", closed_at=T0)
        await self._emit("position_update", copy.deepcopy(position))
        return self._json({"position": position})

    async def _emit(self, type_: str, data: JSON) -> int:
        self.seq += 1
        event = {"type": type_, "seq": self.seq, "data": data}
        self.ring.append(event)
        if type_ == "ticker_update":  # like the engine, later REST snapshots show the new price
            for market in self.state["markets"]:
                if market["symbol"] == data["symbol"]:
                    market.update({k: data[k] for k in ("price", "change24h", "volume24h") if k in data})
        text = json.dumps(event)
        for sub in list(self._subscribers.values()):
            async with sub.lock:  # waits for a replay in flight, which may already have sent this event
                if sub.ws.closed or event["seq"] <= sub.sent_seq:
                    continue
                await sub.ws.send_str(text)
                sub.sent_seq = event["seq"]
        return event["seq"]

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    break
                body = json.loads(msg.data)
                if body.get("type") != "subscribe":
                    continue
                # Live from here on: an event emitted while the ack or the replay is being sent waits
                # for the lock, then goes out unless the replay (read from the ring) already sent it.
                sub = self._subscribers.setdefault(ws, _Subscriber(ws, self.seq))
                async with sub.lock:
                    await ws.send_str(json.dumps({"type": "subscribed", "data": body.get("data", {}),
                                                  "last_seq": self.seq, "run_id": self.run_id}))
                    since = body.get("since")
                    if since is not None:
                        if body.get("run_id") not in (None, self.run_id):
                            await ws.send_str(json.dumps({"type": "resync", "data": {
                                "reason": "seq from another engine run", "run_id": self.run_id}}))
                        elif self.ring and since < self.ring[0]["seq"] - 1:
                            await ws.send_str(json.dumps({"type": "resync", "data": {
                                "reason": "fell off the ring", "run_id": self.run_id}}))
                        else:
                            sub.sent_seq = min(since, sub.sent_seq)
                            while replay := [e for e in self.ring if e["seq"] > sub.sent_seq]:
                                for event in replay:
                                    await ws.send_str(json.dumps(event))
                                    sub.sent_seq = event["seq"]
        finally:
            self._subscribers.pop(ws, None)
        return ws
