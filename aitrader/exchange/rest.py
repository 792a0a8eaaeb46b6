"""REST endpoints of the local exchange (aiohttp handlers), Binance Spot ``/api/v3`` semantics."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qsl

from aiohttp import web

from aitrader.exchange import errors
from aitrader.exchange.auth import check_api_key, secret_for, verify_signature
from aitrader.exchange.clock import MarketClock
from aitrader.exchange.errors import ExchangeError
from aitrader.exchange.faults import Faults
from aitrader.exchange.orders import ORDER_TYPES, SIDES, TIME_IN_FORCE, MatchingEngine, OrderRequest
from aitrader.exchange.payloads import (
    PayloadBuilder,
    account_response,
    cancel_response,
    order_response,
    order_status,
)
from aitrader.exchange.symbols import SymbolSpec
from aitrader.intervals import INTERVAL_MS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_MAX_RECV_WINDOW = 60_000


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


def fault_and_error_middleware(faults: Faults) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Middleware: injected faults, then ``ExchangeError`` -> Binance error body."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        status = faults.take_failure(request.method, request.path)
        if status is not None:
            return _json({"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}, status)
        try:
            response = await handler(request)
        except ExchangeError as error:
            response = _json(error.body(), error.status)
        if faults.take_drop(request.method, request.path) and request.transport is not None:
            request.transport.abort()
        return response

    return middleware


class RestApi:
    """Binds the ``/api/v3`` routes to a market, a matching engine and a clock."""

    def __init__(
        self, engine: MatchingEngine, payloads: PayloadBuilder, clock: MarketClock, master_secret: str
    ) -> None:
        self.engine = engine
        self.market = engine.market
        self.payloads = payloads
        self.clock = clock
        self.master_secret = master_secret

    def routes(self) -> list[web.RouteDef]:
        """aiohttp route table."""
        return [
            web.get("/api/v3/ping", self.ping),
            web.get("/api/v3/time", self.time),
            web.get("/api/v3/exchangeInfo", self.exchange_info),
            web.get("/api/v3/klines", self.klines),
            web.get("/api/v3/ticker/24hr", self.ticker_24hr),
            web.get("/api/v3/ticker/price", self.ticker_price),
            web.post("/api/v3/order", self.new_order),
            web.post("/api/v3/order/test", self.test_order),
            web.get("/api/v3/order", self.query_order),
            web.delete("/api/v3/order", self.cancel_order),
            web.get("/api/v3/openOrders", self.open_orders),
            web.get("/api/v3/allOrders", self.all_orders),
            web.get("/api/v3/account", self.account),
        ]

    # -- helpers ---------------------------------------------------------------------------------
    @staticmethod
    async def _params(request: web.Request) -> dict[str, str]:
        params = dict(request.query)
        if request.body_exists:
            params.update(parse_qsl(await request.text(), keep_blank_values=True))
        return params

    async def _signed(self, request: web.Request) -> tuple[str, dict[str, str]]:
        api_key = check_api_key(request.headers.get("X-MBX-APIKEY"))
        body = await request.text() if request.body_exists else ""
        params = await self._params(request)
        timestamp = _int(params, "timestamp", required=True) or 0
        recv_window = _int(params, "recvWindow") or 5000
        if recv_window > _MAX_RECV_WINDOW:
            raise ExchangeError(-1131, "recvWindow must be less than 60000")
        verify_signature(request.raw_path.partition("?")[2], body, secret_for(api_key, self.master_secret))
        # python-binance stamps wall time while /time serves market time: either clock is accepted.
        references = (int(time.time() * 1000), self.clock.now_ms())
        if not any(timestamp < ref + 1000 and ref - timestamp <= recv_window for ref in references):
            raise errors.outside_recv_window()
        return api_key, params

    def _spec(self, params: dict[str, str]) -> SymbolSpec:
        symbol = params.get("symbol")
        if not symbol:
            raise errors.missing_parameter("symbol")
        return self.engine.spec(symbol.upper())

    # -- market data -----------------------------------------------------------------------------
    async def ping(self, request: web.Request) -> web.Response:
        """``GET /api/v3/ping``."""
        return _json({})

    async def time(self, request: web.Request) -> web.Response:
        """``GET /api/v3/time`` (market time)."""
        return _json({"serverTime": self.clock.now_ms()})

    async def exchange_info(self, request: web.Request) -> web.Response:
        """``GET /api/v3/exchangeInfo`` with ``symbol`` or ``symbols`` filters."""
        params = await self._params(request)
        if "symbol" in params:
            specs = [self._spec(params)]
        elif "symbols" in params:
            try:
                names = json.loads(params["symbols"])
            except ValueError:
                raise errors.illegal_parameter("symbols") from None
            specs = [self.engine.spec(str(n).upper()) for n in names]
        else:
            specs = list(self.market.specs.values())
        return _json(
            {
                "timezone": "UTC",
                "serverTime": self.clock.now_ms(),
                "rateLimits": [
                    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 1, "limit": 10},
                    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
                ],
                "exchangeFilters": [],
                "symbols": [_symbol_info(s) for s in specs],
            }
        )

    async def klines(self, request: web.Request) -> web.Response:
        """``GET /api/v3/klines``: the still-open candle is last, with its partial values."""
        params = await self._params(request)
        spec = self._spec(params)
        interval = params.get("interval")
        if not interval:
            raise errors.missing_parameter("interval")
        if interval not in INTERVAL_MS:
            raise ExchangeError(-1120, "Invalid interval.")
        if not self.market.supports(interval):
            raise ExchangeError(-1120, f"Invalid interval: the replayed candles are coarser than {interval}.")
        limit = min(max(_int(params, "limit") or 500, 1), 1000)
        candles = self.market.klines(
            spec.symbol, interval, self.clock.now_ms(), _int(params, "startTime"), _int(params, "endTime"), limit
        )
        return _json([self.payloads.kline_row(c) for c in candles])

    def _symbols_param(self, params: dict[str, str]) -> list[str]:
        if "symbol" in params:
            return [self._spec(params).symbol]
        if "symbols" in params:
            return [self.engine.spec(str(n).upper()).symbol for n in json.loads(params["symbols"])]
        return list(self.market.specs)

    async def ticker_24hr(self, request: web.Request) -> web.Response:
        """``GET /api/v3/ticker/24hr`` (rolling 24 h; ``type`` FULL or MINI)."""
        params = await self._params(request)
        now = self.clock.now_ms()
        mini = params.get("type", "FULL") == "MINI"
        bodies = [self.payloads.ticker_24hr(s, now, mini) for s in self._symbols_param(params)]
        return _json(bodies[0] if "symbol" in params else bodies)

    async def ticker_price(self, request: web.Request) -> web.Response:
        """``GET /api/v3/ticker/price``."""
        params = await self._params(request)
        now = self.clock.now_ms()
        bodies = [
            {"symbol": s, "price": f"{self.market.last_price(s, now):.8f}"} for s in self._symbols_param(params)
        ]
        return _json(bodies[0] if "symbol" in params else bodies)

    # -- trading ---------------------------------------------------------------------------------
    def _order_request(self, params: dict[str, str]) -> OrderRequest:
        spec = self._spec(params)
        side, order_type = params.get("side"), params.get("type")
        if not side:
            raise errors.missing_parameter("side")
        if not order_type:
            raise errors.missing_parameter("type")
        if side not in SIDES:
            raise ExchangeError(-1117, "Invalid side.")
        if order_type not in ORDER_TYPES:
            raise ExchangeError(-1116, "Invalid orderType.")
        tif = params.get("timeInForce")
        if tif is not None and tif not in TIME_IN_FORCE:
            raise ExchangeError(-1115, "Invalid timeInForce.")
        return OrderRequest(
            symbol=spec.symbol,
            side=side,
            type=order_type,
            quantity=_decimal(params, "quantity"),
            quote_order_qty=_decimal(params, "quoteOrderQty"),
            price=_decimal(params, "price"),
            time_in_force=tif,
            client_order_id=params.get("newClientOrderId") or None,
        )

    async def new_order(self, request: web.Request) -> web.Response:
        """``POST /api/v3/order`` (MARKET or LIMIT; ``newOrderRespType`` ACK/RESULT/FULL)."""
        api_key, params = await self._signed(request)
        order_request = self._order_request(params)
        default_type = "FULL" if order_request.type == "MARKET" else "RESULT"
        resp_type = params.get("newOrderRespType", default_type)
        order = self.engine.place(api_key, order_request)
        return _json(order_response(order, resp_type, self.clock.now_ms()))

    async def test_order(self, request: web.Request) -> web.Response:
        """``POST /api/v3/order/test``: validate only."""
        api_key, params = await self._signed(request)
        self.engine.validate(api_key, self._order_request(params))
        return _json({})

    def _find(self, api_key: str, params: dict[str, str]) -> tuple[str, int | None, str | None]:
        symbol = self._spec(params).symbol
        order_id = _int(params, "orderId")
        client_id = params.get("origClientOrderId")
        if order_id is None and not client_id:
            raise errors.missing_parameter("orderId")
        return symbol, order_id, client_id

    async def query_order(self, request: web.Request) -> web.Response:
        """``GET /api/v3/order`` by ``orderId`` or ``origClientOrderId``."""
        api_key, params = await self._signed(request)
        self.engine.match_resting()
        order = self.engine.find(api_key, *self._find(api_key, params))
        if order is None:
            raise errors.order_does_not_exist()
        return _json(order_status(order))

    async def cancel_order(self, request: web.Request) -> web.Response:
        """``DELETE /api/v3/order``."""
        api_key, params = await self._signed(request)
        order = self.engine.cancel(api_key, *self._find(api_key, params))
        cancel_id = params.get("newClientOrderId") or uuid.uuid4().hex[:22]
        return _json(cancel_response(order, cancel_id, self.clock.now_ms()))

    async def open_orders(self, request: web.Request) -> web.Response:
        """``GET /api/v3/openOrders``."""
        api_key, params = await self._signed(request)
        symbol = self._spec(params).symbol if "symbol" in params else None
        return _json([order_status(o) for o in self.engine.open_orders(api_key, symbol)])

    async def all_orders(self, request: web.Request) -> web.Response:
        """``GET /api/v3/allOrders`` for one symbol."""
        api_key, params = await self._signed(request)
        symbol = self._spec(params).symbol
        self.engine.match_resting()
        orders = [o for o in self.engine.account(api_key).orders.values() if o.symbol == symbol]
        return _json([order_status(o) for o in orders][-(_int(params, "limit") or 500) :])

    async def account(self, request: web.Request) -> web.Response:
        """``GET /api/v3/account``."""
        api_key, _ = await self._signed(request)
        self.engine.match_resting()
        return _json(account_response(self.engine.account(api_key), self.clock.now_ms()))


def _int(params: dict[str, str], name: str, required: bool = False) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise errors.missing_parameter(name)
        return None
    try:
        return int(raw)
    except ValueError:
        raise errors.illegal_parameter(name) from None


def _decimal(params: dict[str, str], name: str) -> Decimal | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise errors.illegal_parameter(name) from None
    if not value.is_finite() or value <= 0:
        raise errors.illegal_parameter(name)
    return value


def _symbol_info(spec: SymbolSpec) -> dict[str, object]:
    return {
        "symbol": spec.symbol,
        "status": "TRADING",
        "baseAsset": spec.base_asset,
        "baseAssetPrecision": 8,
        "quoteAsset": spec.quote_asset,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "opoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "amendAllowed": False,
        "pegInstructionsAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": spec.filters(),
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "NONE",
        "allowedSelfTradePreventionModes": ["NONE"],
    }
