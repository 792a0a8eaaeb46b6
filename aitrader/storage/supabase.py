"""The Storage protocol over a Supabase project's REST API (PostgREST).

Requests go straight through httpx, the client supabase-py and postgrest-py use underneath:
postgrest-py's ``APIError`` drops the HTTP status, and the retry rule needs it (retry 5xx and
timeouts with 1 s, 2 s, 4 s backoff, never a 4xx). Decimals travel as JSON strings and come
back parsed as `Decimal` (never through a float); enums travel as their values.

The schema (tables, indexes, row-level security) is `aitrader/storage/supabase_schema.sql`,
printed by ``aitrader db supabase-sql``; ``set_balances`` calls its ``set_balances`` function
so the replacement is one transaction.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from enum import Enum
from importlib import resources
from typing import Any, TypeVar

import httpx
from sqlmodel import SQLModel
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from aitrader.models import (
    Balance,
    Heartbeat,
    Order,
    OrderStatus,
    Position,
    PositionStatus,
    Signal,
    SignalStatus,
    Trader,
    TraderStatus,
    normalize,
    utcnow,
)
from aitrader.storage.base import Conflict, NotFound, StorageError, StorageUnavailable

T = TypeVar("T", bound=SQLModel)

#: Seconds before the first, second and third retry of a 5xx or a timeout.
RETRY_DELAYS = (1.0, 2.0, 4.0)
_TABLES: dict[type[SQLModel], str] = {
    Trader: "traders",
    Signal: "signals",
    Position: "positions",
    Order: "orders",
    Balance: "balances",
    Heartbeat: "heartbeats",
}


def schema_sql() -> str:
    """The SQL that creates the tables, indexes and row-level-security policies in a Supabase project."""
    return resources.files("aitrader.storage").joinpath("supabase_schema.sql").read_text(encoding="utf-8")


class _Transient(Exception):
    """A 5xx answer or a timeout: worth another try."""


def _decimal(text: str) -> Decimal:
    return normalize(Decimal(text))


def _jsonable(value: Any) -> Any:
    """Decimal -> plain string ("0.00000001", never "1E-8"), enum -> value, datetime -> ISO 8601."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _to_row(model: SQLModel, include: set[str] | None = None) -> dict[str, Any]:
    row = {name: _jsonable(value) for name, value in model.model_dump(include=include).items()}
    if isinstance(model, Signal) and "meta" in row:
        row["metadata"] = row.pop("meta")
    return row


def _from_row(model: type[T], row: dict[str, Any]) -> T:
    if model is Signal and "metadata" in row:
        row = {**row, "meta": row.pop("metadata")}
    return model.model_validate(row)


def _conflict_message(detail: str) -> str:
    if "uq_traders_user_name" in detail:
        return "a trader with this name already exists; choose another name"
    if "client_order_id" in detail:
        return "an order with this client order id already exists"
    if "foreign key" in detail.lower():
        return "the row refers to a trader, signal or position that does not exist"
    return f"the write breaks a uniqueness or reference rule: {detail}"


class SupabaseStorage:
    """Storage over ``{url}/rest/v1`` with a project key (service-role, or a user's JWT with RLS)."""

    def __init__(
        self,
        url: str,
        key: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = url.rstrip("/") + "/rest/v1"
        self._sleep = sleep
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={
                "apikey": key,
                "Authorization": f"Bearer {key}",
                "Accept": "application/json",
                "Content-Type": "application/json",
            },
            timeout=timeout,
            transport=transport,
        )

    # -- plumbing -------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        body: Any = None,
        prefer: str | None = None,
    ) -> Any:
        headers = {"Prefer": prefer} if prefer else {}
        content = json.dumps(body) if body is not None else None

        def attempt() -> httpx.Response:
            try:
                response = self._http.request(
                    method, path, params=tuple(params or ()), content=content, headers=headers
                )
            except httpx.TimeoutException as exc:
                raise _Transient(f"{method} {path} timed out") from exc
            except httpx.TransportError as exc:
                raise StorageUnavailable(f"Supabase cannot be reached at {self.base_url}: {exc}") from exc
            if response.status_code >= 500:
                raise _Transient(f"{method} {path} answered {response.status_code}: {response.text[:200]}")
            return response

        retrying = Retrying(
            retry=retry_if_exception_type(_Transient),
            stop=stop_after_attempt(len(RETRY_DELAYS) + 1),
            wait=wait_exponential(multiplier=RETRY_DELAYS[0], min=RETRY_DELAYS[0], max=RETRY_DELAYS[-1]),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            response = retrying(attempt)
        except _Transient as exc:
            raise StorageUnavailable(f"Supabase is unavailable after {len(RETRY_DELAYS)} retries: {exc}") from exc
        return self._decode(response, method, path)

    def _decode(self, response: httpx.Response, method: str, path: str) -> Any:
        payload: Any = None
        if response.content:
            try:
                payload = json.loads(response.content, parse_float=_decimal)
            except ValueError:
                payload = response.text
        if response.is_success:
            return payload
        detail = payload if isinstance(payload, str) else json.dumps(payload, default=str)
        if response.status_code == 409:
            raise Conflict(_conflict_message(detail))
        if response.status_code in (401, 403):
            raise StorageError(
                f"Supabase refused the request ({response.status_code}); check SUPABASE_KEY and the "
                f"row-level-security policies: {detail}"
            )
        raise StorageError(f"{method} {path} failed ({response.status_code}): {detail}")

    def _rows(self, model: type[T], params: list[tuple[str, str]]) -> list[T]:
        rows = self._request("GET", f"/{_TABLES[model]}", params=[("select", "*"), *params])
        return [_from_row(model, row) for row in rows]

    def _one(self, model: type[T], column: str, key: str) -> T:
        rows = self._rows(model, [(column, f"eq.{key}")])
        if not rows:
            raise NotFound(f"no {model.__name__.lower()} with id {key!r}")
        return rows[0]

    def _insert(self, row: T) -> T:
        model = type(row)
        checked = model.model_validate(row.model_dump())
        rows = self._request("POST", f"/{_TABLES[model]}", body=_to_row(checked), prefer="return=representation")
        return _from_row(model, rows[0])

    def _update(self, model: type[T], key: str, changes: dict[str, Any]) -> T:
        unknown = set(changes) - set(model.model_fields)
        if unknown:
            raise ValueError(f"{model.__name__} has no field(s) {', '.join(sorted(unknown))}")
        current = self._one(model, "id", key)
        merged = {**current.model_dump(), **changes}
        names = set(changes)
        if "updated_at" in model.model_fields:
            merged["updated_at"] = utcnow()
            names.add("updated_at")
        checked = model.model_validate(merged)
        rows = self._request(
            "PATCH",
            f"/{_TABLES[model]}",
            params=[("id", f"eq.{key}")],
            body=_to_row(checked, names),
            prefer="return=representation",
        )
        if not rows:
            raise NotFound(f"no {model.__name__.lower()} with id {key!r}")
        return _from_row(model, rows[0])

    @staticmethod
    def _limit(limit: int) -> tuple[str, str]:
        return ("limit", str(max(1, min(limit, 10_000))))

    # -- traders --------------------------------------------------------------------------

    def list_traders(self, user_id: str, *, active_only: bool = False) -> list[Trader]:
        params = [("user_id", f"eq.{user_id}")]
        if active_only:
            params.append(("status", f"eq.{TraderStatus.ACTIVE.value}"))
        return self._rows(Trader, [*params, ("order", "created_at.asc")])

    def get_trader(self, trader_id: str) -> Trader:
        return self._one(Trader, "id", trader_id)

    def create_trader(self, trader: Trader) -> Trader:
        return self._insert(trader)

    def update_trader(self, trader_id: str, **changes: Any) -> Trader:
        return self._update(Trader, trader_id, changes)

    def delete_trader(self, trader_id: str) -> None:
        rows = self._request(
            "DELETE", "/traders", params=[("id", f"eq.{trader_id}")], prefer="return=representation"
        )
        if not rows:
            raise NotFound(f"no trader with id {trader_id!r}")

    # -- signals --------------------------------------------------------------------------

    def create_signal(self, signal: Signal) -> tuple[Signal, bool]:
        checked = Signal.model_validate(signal.model_dump())
        rows = self._request(
            "POST",
            "/signals",
            params=[("on_conflict", "id")],
            body=_to_row(checked),
            prefer="resolution=ignore-duplicates,return=representation",
        )
        if rows:
            return _from_row(Signal, rows[0]), True
        return self.get_signal(checked.id), False

    def get_signal(self, signal_id: str) -> Signal:
        return self._one(Signal, "id", signal_id)

    def update_signal(self, signal_id: str, **changes: Any) -> Signal:
        return self._update(Signal, signal_id, changes)

    def list_signals(
        self,
        *,
        user_id: str | None = None,
        trader_id: str | None = None,
        symbol: str | None = None,
        status: SignalStatus | None = None,
        limit: int = 100,
    ) -> list[Signal]:
        params: list[tuple[str, str]] = []
        for column, value in (("user_id", user_id), ("trader_id", trader_id), ("symbol", symbol)):
            if value is not None:
                params.append((column, f"eq.{value}"))
        if status is not None:
            params.append(("status", f"eq.{SignalStatus(status).value}"))
        params += [("order", "created_at.desc,candle_time.desc"), self._limit(limit)]
        return self._rows(Signal, params)

    # -- positions ------------------------------------------------------------------------

    def create_position(self, position: Position) -> Position:
        return self._insert(position)

    def get_position(self, position_id: str) -> Position:
        return self._one(Position, "id", position_id)

    def update_position(self, position_id: str, **changes: Any) -> Position:
        return self._update(Position, position_id, changes)

    def list_positions(
        self, user_id: str, *, status: PositionStatus | None = None, limit: int = 500
    ) -> list[Position]:
        params = [("user_id", f"eq.{user_id}")]
        if status is not None:
            params.append(("status", f"eq.{PositionStatus(status).value}"))
        return self._rows(Position, [*params, ("order", "created_at.desc"), self._limit(limit)])

    def close_position(
        self,
        position_id: str,
        *,
        exit_price: Decimal,
        pnl: Decimal,
        pnl_pct: Decimal,
        reason: str,
        status: PositionStatus = PositionStatus.CLOSED,
        exit_order_id: str | None = None,
        fees: Decimal | None = None,
    ) -> tuple[Position, bool]:
        if status is PositionStatus.OPEN:
            raise ValueError("close_position needs a closed status (closed or stopped)")
        now = utcnow().isoformat()
        values: dict[str, Any] = {
            "status": PositionStatus(status).value,
            "exit_price": _jsonable(exit_price),
            "current_price": _jsonable(exit_price),
            "pnl": _jsonable(pnl),
            "pnl_pct": _jsonable(pnl_pct),
            "close_reason": reason,
            "exit_order_id": exit_order_id,
            "closed_at": now,
            "updated_at": now,
        }
        if fees is not None:
            values["fees"] = _jsonable(fees)
        # The status=eq.open condition makes the close exactly-once across racing callers.
        rows = self._request(
            "PATCH",
            "/positions",
            params=[("id", f"eq.{position_id}"), ("status", f"eq.{PositionStatus.OPEN.value}")],
            body=values,
            prefer="return=representation",
        )
        if rows:
            return _from_row(Position, rows[0]), True
        return self.get_position(position_id), False

    # -- orders ---------------------------------------------------------------------------

    def create_order(self, order: Order) -> Order:
        return self._insert(order)

    def get_order(self, order_id: str) -> Order:
        return self._one(Order, "id", order_id)

    def get_order_by_client_id(self, client_order_id: str) -> Order | None:
        rows = self._rows(Order, [("client_order_id", f"eq.{client_order_id}")])
        return rows[0] if rows else None

    def update_order(self, order_id: str, **changes: Any) -> Order:
        return self._update(Order, order_id, changes)

    def list_orders(
        self, user_id: str, *, status: Sequence[OrderStatus] | None = None, limit: int = 100
    ) -> list[Order]:
        params = [("user_id", f"eq.{user_id}")]
        if status:
            params.append(("status", "in.(" + ",".join(OrderStatus(s).value for s in status) + ")"))
        return self._rows(Order, [*params, ("order", "created_at.desc"), self._limit(limit)])

    # -- balances -------------------------------------------------------------------------

    def get_balances(self, user_id: str) -> list[Balance]:
        return self._rows(Balance, [("user_id", f"eq.{user_id}"), ("order", "asset.asc")])

    def set_balances(self, user_id: str, balances: Sequence[Balance]) -> None:
        rows = [Balance.model_validate({**b.model_dump(), "user_id": user_id}) for b in balances]
        body = {"p_user_id": user_id, "p_balances": [_to_row(row) for row in rows]}
        self._request("POST", "/rpc/set_balances", body=body)

    def update_balances(self, user_id: str, balances: Sequence[Balance]) -> None:
        if not balances:
            return
        rows = [Balance.model_validate({**b.model_dump(), "user_id": user_id, "updated_at": utcnow()})
                for b in balances]
        self._request(
            "POST",
            "/balances",
            params=[("on_conflict", "user_id,asset")],
            body=[_to_row(row) for row in rows],
            prefer="resolution=merge-duplicates,return=minimal",
        )

    # -- heartbeat ------------------------------------------------------------------------

    def heartbeat(self, component: str, user_id: str = "", info: dict[str, Any] | None = None) -> None:
        row = Heartbeat(component=component, user_id=user_id, at=utcnow(), info=info or {})
        self._request(
            "POST",
            "/heartbeats",
            params=[("on_conflict", "component")],
            body=_to_row(row),
            prefer="resolution=merge-duplicates,return=minimal",
        )

    def get_heartbeat(self, component: str) -> Heartbeat | None:
        rows = self._rows(Heartbeat, [("component", f"eq.{component}")])
        return rows[0] if rows else None

    def close(self) -> None:
        self._http.close()
