"""A small PostgREST stand-in over in-memory tables, served through `httpx.MockTransport`.

It speaks enough of PostgREST for `SupabaseStorage`: ``eq.``/``in.`` filters, ``order``,
``limit``, ``on_conflict``, ``Prefer: return=representation | resolution=ignore-duplicates |
merge-duplicates``, unique and foreign-key violations as 409 with Postgres error codes,
numeric columns answered as JSON numbers, and the schema's ``rpc/set_balances``. It records
every request and can fail on demand (503s, timeouts, connection refused).
"""

from __future__ import annotations

import json
import re
from collections import deque
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

import httpx

KEY = "service-role-key-for-tests"
UNIQUE: dict[str, list[tuple[tuple[str, ...], str]]] = {
    "traders": [(("id",), "traders_pkey"), (("user_id", "name"), "uq_traders_user_name")],
    "signals": [(("id",), "signals_pkey"), (("trader_id", "symbol", "timeframe", "candle_time"), "uq_signals_candle")],
    "positions": [(("id",), "positions_pkey")],
    "orders": [(("id",), "orders_pkey"), (("client_order_id",), "orders_client_order_id_key")],
    "balances": [(("user_id", "asset"), "balances_pkey")],
    "heartbeats": [(("component",), "heartbeats_pkey")],
}
NUMERIC = {
    "stop_loss_pct", "take_profit_pct", "trailing_stop_pct", "trigger_price", "target_price", "stop_loss",
    "entry_price", "current_price", "size", "take_profit", "best_price", "pnl", "pnl_pct", "fees",
    "exit_price", "quantity", "quote_quantity", "price", "executed_qty", "cumulative_quote_qty", "free", "locked",
}


class FakePostgrest:
    """The handler of a `MockTransport`; ``tables`` holds the rows, ``requests`` what was asked."""

    def __init__(self) -> None:
        self.tables: dict[str, list[dict[str, Any]]] = {name: [] for name in UNIQUE}
        self.requests: list[httpx.Request] = []
        self.failures: deque[str | int] = deque()  # 503 / "timeout" / "refused", consumed per request
        self.down = False  # every request refused while True

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if self.failures:
            failure = self.failures.popleft()
            if failure == "timeout":
                raise httpx.ReadTimeout("timed out", request=request)
            if failure == "refused":
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(int(failure), json={"message": "injected failure"})
        if request.headers.get("apikey") != KEY or request.headers.get("authorization") != f"Bearer {KEY}":
            return httpx.Response(401, json={"message": "Invalid API key"})
        path = request.url.path.removeprefix("/rest/v1/")
        params = parse_qsl(request.url.query.decode(), keep_blank_values=True)
        body = json.loads(request.content) if request.content else None
        prefer = request.headers.get("prefer", "")
        if path == "rpc/set_balances":
            return self._set_balances(body)
        if path not in self.tables:
            return httpx.Response(404, json={"code": "42P01", "message": f'relation "{path}" does not exist'})
        handler = {"GET": self._get, "POST": self._post, "PATCH": self._patch, "DELETE": self._delete}
        return handler[request.method](path, params, body, prefer)

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _matches(row: dict[str, Any], params: list[tuple[str, str]]) -> bool:
        for column, expr in params:
            if column in ("select", "order", "limit", "on_conflict"):
                continue
            op, _, arg = expr.partition(".")
            value = "" if row.get(column) is None else str(row.get(column))
            if op == "eq" and value != arg:
                return False
            if op == "in" and value not in arg.strip("()").split(","):
                return False
            if op not in ("eq", "in"):
                raise AssertionError(f"unsupported filter {expr}")
        return True

    @staticmethod
    def _answer(rows: list[dict[str, Any]], status: int = 200) -> httpx.Response:
        # PostgREST answers NUMERIC columns as JSON numbers: emit them raw, not as strings.
        marked = [{k: f"@@{v}@@" if k in NUMERIC and v is not None else v for k, v in row.items()} for row in rows]
        text = re.sub(r'"@@([-0-9.Ee+]+)@@"', r"\1", json.dumps(marked))
        return httpx.Response(status, content=text.encode(), headers={"content-type": "application/json"})

    @staticmethod
    def _conflict(code: str, message: str) -> httpx.Response:
        return httpx.Response(409, json={"code": code, "message": message, "details": None, "hint": None})

    def _clash(self, table: str, row: dict[str, Any], ignore: dict[str, Any] | None = None) -> tuple[str, dict] | None:
        for columns, name in UNIQUE[table]:
            for other in self.tables[table]:
                if other is not ignore and all(other.get(c) == row.get(c) for c in columns):
                    return name, other
        return None

    # -- verbs ------------------------------------------------------------------------------

    def _get(self, table: str, params: list[tuple[str, str]], _body: Any, _prefer: str) -> httpx.Response:
        rows = [r for r in self.tables[table] if self._matches(r, params)]
        for column, expr in params:
            if column == "order":
                for part in reversed(expr.split(",")):
                    name, _, direction = part.partition(".")
                    rows.sort(key=lambda r, n=name: (r.get(n) is None, r.get(n)), reverse=direction == "desc")
            if column == "limit":
                rows = rows[: int(expr)]
        return self._answer(rows)

    def _post(self, table: str, params: list[tuple[str, str]], body: Any, prefer: str) -> httpx.Response:
        created: list[dict[str, Any]] = []
        for row in body if isinstance(body, list) else [body]:
            if table == "signals" and not any(t["id"] == row["trader_id"] for t in self.tables["traders"]):
                return self._conflict("23503", 'insert or update on table "signals" violates foreign key constraint')
            clash = self._clash(table, row)
            if clash is not None:
                name, existing = clash
                if "resolution=ignore-duplicates" in prefer:
                    continue
                if "resolution=merge-duplicates" in prefer:
                    existing.update(row)
                    created.append(existing)
                    continue
                return self._conflict("23505", f'duplicate key value violates unique constraint "{name}"')
            self.tables[table].append(dict(row))
            created.append(dict(row))
        return self._answer(created, 201) if "return=representation" in prefer else httpx.Response(201)

    def _patch(self, table: str, params: list[tuple[str, str]], body: Any, prefer: str) -> httpx.Response:
        rows = [r for r in self.tables[table] if self._matches(r, params)]
        for row in rows:
            clash = self._clash(table, {**row, **body}, ignore=row)
            if clash is not None:
                return self._conflict("23505", f'duplicate key value violates unique constraint "{clash[0]}"')
        for row in rows:
            row.update(body)
        return self._answer(rows) if "return=representation" in prefer else httpx.Response(204)

    def _delete(self, table: str, params: list[tuple[str, str]], _body: Any, prefer: str) -> httpx.Response:
        gone = [r for r in self.tables[table] if self._matches(r, params)]
        self.tables[table] = [r for r in self.tables[table] if r not in gone]
        if table == "traders":
            ids = {r["id"] for r in gone}
            self.tables["signals"] = [s for s in self.tables["signals"] if s["trader_id"] not in ids]
            for position in self.tables["positions"]:
                if position.get("trader_id") in ids:
                    position["trader_id"] = None
        return self._answer(gone) if "return=representation" in prefer else httpx.Response(204)

    def _set_balances(self, body: dict[str, Any]) -> httpx.Response:
        user = body["p_user_id"]
        self.tables["balances"] = [b for b in self.tables["balances"] if b["user_id"] != user]
        self.tables["balances"] += [{**b, "user_id": user} for b in body["p_balances"]]
        return httpx.Response(204)


def test_fake_answers_numeric_columns_as_json_numbers() -> None:
    fake = FakePostgrest()
    fake.tables["balances"].append({"user_id": "alice", "asset": "BTC", "free": "0.00000001", "locked": "0"})
    client = httpx.Client(transport=fake.transport(), headers={"apikey": KEY, "Authorization": f"Bearer {KEY}"})
    response = client.get("http://x/rest/v1/balances", params={"user_id": "eq.alice"})
    assert b'"free": 0.00000001' in response.content
    assert json.loads(response.content, parse_float=Decimal)[0]["free"] == Decimal("0.00000001")


def test_fake_refuses_a_wrong_key() -> None:
    fake = FakePostgrest()
    client = httpx.Client(transport=fake.transport(), headers={"apikey": "wrong", "Authorization": "Bearer wrong"})
    assert client.get("http://x/rest/v1/traders").status_code == 401
