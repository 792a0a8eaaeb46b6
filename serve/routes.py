"""The HTTP routes: each one delegates to `ApiService` in one line."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Security
from fastapi.security import HTTPBearer

from aitrader.models import OrderStatus, SignalStatus
from serve.schemas import (
    Balances,
    ClosedPosition,
    FilterCheck,
    FilterVerdict,
    Health,
    Id,
    Markets,
    OrderOut,
    OrderRequest,
    Orders,
    Positions,
    Signals,
    Status,
    Symbol,
    TraderCreate,
    TraderOut,
    Traders,
    TraderUpdate,
)
from serve.service import ApiService

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API_KEY>")
PathId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
_ERRORS: dict[int | str, dict[str, Any]] = {401: {"description": "missing or invalid API key"}, 429: {"description": "rate limit exceeded"}}


def build_routers(service: ApiService) -> list[APIRouter]:
    """The public router (/health) and the authenticated one (everything else)."""
    public = APIRouter()
    api = APIRouter(dependencies=[Security(bearer)], responses=_ERRORS)  # auth itself is AuthMiddleware
    s = service

    @public.get("/health", response_model=Health, tags=["engine"])
    async def health() -> Health:
        return s.health()

    @api.get("/status", response_model=Status, tags=["engine"])
    async def status() -> Status:
        return await s.status()

    @api.get("/metrics", response_model=str, tags=["engine"], responses={200: {"content": {"text/plain": {}}}})
    async def metrics():  # noqa: ANN202 - a Prometheus text Response
        return await s.metrics_text()

    @api.get("/api/markets", response_model=Markets, tags=["markets"])
    async def markets():  # noqa: ANN202 - pre-encoded JSON Response
        return s.markets()

    @api.get("/api/traders", response_model=Traders, tags=["traders"])
    async def traders() -> Traders:
        return await s.traders()

    @api.post("/api/traders", response_model=TraderOut, status_code=201, tags=["traders"],
              responses={409: {"description": "name in use or MAX_ACTIVE_TRADERS reached"},
                         422: {"description": "invalid body or invalid_filter"}})
    async def create_trader(body: TraderCreate) -> TraderOut:
        return await s.create_trader(body)

    @api.post("/api/traders/validate", response_model=FilterVerdict, tags=["traders"])
    async def validate_filter(body: FilterCheck) -> FilterVerdict:
        return s.validate_filter(body.signal_code)

    @api.get("/api/traders/{trader_id}", response_model=TraderOut, tags=["traders"], responses={404: {}})
    async def trader(trader_id: PathId) -> TraderOut:
        return await s.trader(trader_id)

    @api.patch("/api/traders/{trader_id}", response_model=TraderOut, tags=["traders"], responses={404: {}, 409: {}})
    async def update_trader(trader_id: PathId, body: TraderUpdate) -> TraderOut:
        return await s.update_trader(trader_id, body)

    @api.delete("/api/traders/{trader_id}", status_code=204, response_model=None, tags=["traders"],
                responses={404: {}})
    async def delete_trader(trader_id: PathId):  # noqa: ANN202 - 204 Response
        return await s.delete_trader(trader_id)

    @api.post("/api/traders/{trader_id}/enable", response_model=TraderOut, tags=["traders"],
              responses={404: {}, 409: {}})
    async def enable_trader(trader_id: PathId) -> TraderOut:
        return await s.set_trader_active(trader_id, True)

    @api.post("/api/traders/{trader_id}/disable", response_model=TraderOut, tags=["traders"], responses={404: {}})
    async def disable_trader(trader_id: PathId) -> TraderOut:
        return await s.set_trader_active(trader_id, False)

    @api.get("/api/signals", response_model=Signals, tags=["signals"])
    async def signals(
        trader_id: Annotated[Id | None, Query()] = None,
        symbol: Annotated[Symbol | None, Query()] = None,
        status: SignalStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> Signals:
        return await s.signals(trader_id, symbol, status, limit)

    @api.get("/api/positions", response_model=Positions, tags=["positions"])
    async def positions(status: Literal["open", "closed"] | None = None):  # noqa: ANN202
        return await s.positions(status)

    @api.post("/api/positions/{position_id}/close", response_model=ClosedPosition, tags=["positions"],
              responses={400: {}, 404: {}, 503: {}})
    async def close_position(position_id: PathId) -> ClosedPosition:
        return await s.close_position(position_id)

    @api.get("/api/balance", response_model=Balances, tags=["account"])
    async def balance() -> Balances:
        return await s.balance()

    @api.get("/api/orders", response_model=Orders, tags=["orders"])
    async def orders(status: OrderStatus | None = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> Orders:
        return await s.orders(status, limit)

    @api.post("/api/orders", response_model=OrderOut, status_code=201, tags=["orders"],
              responses={400: {"description": "the broker rejected the order"},
                         503: {"description": "exchange circuit open or engine unavailable"}})
    async def submit_order(body: OrderRequest) -> OrderOut:
        return await s.submit_order(body)

    return [public, api]
