"""Accounts and order matching against the synthetic price, with Decimal accounting."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

from aitrader.exchange import errors
from aitrader.exchange.clock import MarketClock
from aitrader.exchange.market import MarketData
from aitrader.exchange.symbols import SymbolSpec

COMMISSION_RATE = Decimal("0.001")
_EIGHT = Decimal("0.00000001")
SIDES = ("BUY", "SELL")
ORDER_TYPES = ("MARKET", "LIMIT")
TIME_IN_FORCE = ("GTC", "IOC", "FOK")


@dataclass(frozen=True)
class OrderRequest:
    """A validated-for-shape new order; amounts are Decimal."""

    symbol: str
    side: str
    type: str
    quantity: Decimal | None = None
    quote_order_qty: Decimal | None = None
    price: Decimal | None = None
    time_in_force: str | None = None
    client_order_id: str | None = None


@dataclass(frozen=True)
class Fill:
    """One execution of an order."""

    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    trade_id: int


@dataclass
class Order:
    """An order's state as the exchange keeps it (mutable while open)."""

    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    price: Decimal
    orig_qty: Decimal
    orig_quote_qty: Decimal
    time: int
    status: str = "NEW"
    executed_qty: Decimal = Decimal(0)
    cum_quote: Decimal = Decimal(0)
    update_time: int = 0
    fills: list[Fill] = field(default_factory=list)

    @property
    def is_open(self) -> bool:
        """True while the order rests on the book."""
        return self.status in ("NEW", "PARTIALLY_FILLED")


@dataclass
class Account:
    """Free and locked balances of one API key, plus its orders."""

    free: dict[str, Decimal]
    locked: dict[str, Decimal] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)

    def available(self, asset: str) -> Decimal:
        """Free balance of ``asset``."""
        return self.free.get(asset, Decimal(0))

    def move(self, asset: str, free_delta: Decimal, locked_delta: Decimal = Decimal(0)) -> None:
        """Change free/locked balances of ``asset``."""
        self.free[asset] = self.available(asset) + free_delta
        self.locked[asset] = self.locked.get(asset, Decimal(0)) + locked_delta


def _floor_to(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


class MatchingEngine:
    """Fills MARKET orders at the current price; LIMIT orders at once if marketable, else when crossed."""

    def __init__(
        self,
        market: MarketData,
        clock: MarketClock,
        starting_balances: dict[str, Decimal] | None = None,
    ) -> None:
        self.market = market
        self.clock = clock
        self.starting_balances = starting_balances or {"USDT": Decimal("10000")}
        self._accounts: dict[str, Account] = {}
        self._next_order_id = 1
        self._next_trade_id = 1
        self._checked_ms = clock.now_ms()
        self._lock = threading.RLock()

    def account(self, api_key: str) -> Account:
        """The account of ``api_key``; a new key starts funded with the starting balances."""
        with self._lock:
            account = self._accounts.get(api_key)
            if account is None:
                account = Account(free=dict(self.starting_balances))
                self._accounts[api_key] = account
            return account

    def spec(self, symbol: str) -> SymbolSpec:
        """Trading rules of a listed symbol; -1121 otherwise."""
        spec = self.market.specs.get(symbol)
        if spec is None:
            raise errors.invalid_symbol()
        return spec

    # -- validation ------------------------------------------------------------------------------
    def _check_filters(self, spec: SymbolSpec, qty: Decimal, price: Decimal | None, notional_price: Decimal) -> None:
        if price is not None and (
            price < spec.min_price or price > spec.max_price or (price - spec.min_price) % spec.tick_size != 0
        ):
            raise errors.filter_failure("PRICE_FILTER")
        if qty < spec.min_qty or qty > spec.max_qty or (qty - spec.min_qty) % spec.step_size != 0:
            raise errors.filter_failure("LOT_SIZE")
        if qty * notional_price < spec.min_notional:
            raise errors.filter_failure("NOTIONAL")

    def validate(self, api_key: str, request: OrderRequest) -> tuple[SymbolSpec, Decimal, Decimal]:
        """Check an order without placing it: returns (spec, quantity, current price)."""
        spec = self.spec(request.symbol)
        price_now = self.market.last_price(spec.symbol, self.clock.now_ms())
        if request.type == "MARKET":
            if request.quantity is not None:
                qty = request.quantity
            elif request.quote_order_qty is not None:
                qty = _floor_to(request.quote_order_qty / price_now, spec.step_size)
            else:
                raise errors.missing_parameter("quantity")
            self._check_filters(spec, qty, None, price_now)
        else:
            if request.time_in_force is None:
                raise errors.missing_parameter("timeInForce")
            if request.quantity is None:
                raise errors.missing_parameter("quantity")
            if request.price is None:
                raise errors.missing_parameter("price")
            qty = request.quantity
            self._check_filters(spec, qty, request.price, request.price)
        if request.client_order_id and any(
            o.client_order_id == request.client_order_id and o.is_open for o in self.account(api_key).orders.values()
        ):
            raise errors.duplicate_order()
        return spec, qty, price_now

    # -- orders ----------------------------------------------------------------------------------
    def place(self, api_key: str, request: OrderRequest) -> Order:
        """Place an order; it fills, rests or expires. Raises ``ExchangeError`` on rejection."""
        with self._lock:
            self.match_resting()
            spec, qty, price_now = self.validate(api_key, request)
            account = self.account(api_key)
            now = self.clock.now_ms()
            limit = request.price if request.type == "LIMIT" else None
            cost_price = limit if limit is not None else price_now
            if request.side == "BUY" and account.available(spec.quote_asset) < qty * cost_price:
                raise errors.insufficient_balance()
            if request.side == "SELL" and account.available(spec.base_asset) < qty:
                raise errors.insufficient_balance()
            order = Order(
                symbol=spec.symbol,
                order_id=self._next_order_id,
                client_order_id=request.client_order_id or uuid.uuid4().hex[:22],
                side=request.side,
                type=request.type,
                time_in_force=request.time_in_force or "GTC",
                price=limit if limit is not None else Decimal(0),
                orig_qty=qty,
                orig_quote_qty=request.quote_order_qty or Decimal(0),
                time=now,
                update_time=now,
            )
            self._next_order_id += 1
            account.orders[order.order_id] = order
            marketable = limit is None or (limit >= price_now if order.side == "BUY" else limit <= price_now)
            if marketable:
                self._fill(account, spec, order, price_now, now)
            elif order.time_in_force in ("IOC", "FOK"):
                order.status = "EXPIRED"
            else:
                self._lock_for(account, spec, order, Decimal(1))
            return order

    def _lock_for(self, account: Account, spec: SymbolSpec, order: Order, sign: Decimal) -> None:
        if order.side == "BUY":
            amount = order.orig_qty * order.price
            account.move(spec.quote_asset, -sign * amount, sign * amount)
        else:
            account.move(spec.base_asset, -sign * order.orig_qty, sign * order.orig_qty)

    def _fill(self, account: Account, spec: SymbolSpec, order: Order, price: Decimal, now: int) -> None:
        qty = order.orig_qty
        quote = qty * price
        if order.side == "BUY":
            commission = (qty * COMMISSION_RATE).quantize(_EIGHT)
            account.move(spec.quote_asset, -quote)
            account.move(spec.base_asset, qty - commission)
            asset = spec.base_asset
        else:
            commission = (quote * COMMISSION_RATE).quantize(_EIGHT)
            account.move(spec.base_asset, -qty)
            account.move(spec.quote_asset, quote - commission)
            asset = spec.quote_asset
        order.fills.append(Fill(price, qty, commission, asset, self._next_trade_id))
        self._next_trade_id += 1
        order.executed_qty = qty
        order.cum_quote = quote
        order.status = "FILLED"
        order.update_time = now

    def match_resting(self) -> None:
        """Fill resting LIMIT orders whose price the market crossed since they were last checked."""
        with self._lock:
            now = self.clock.now_ms()
            since, self._checked_ms = self._checked_ms, now
            for account in self._accounts.values():
                for order in account.orders.values():
                    if order.is_open and self._crossed(order, max(since, order.time), now):
                        spec = self.spec(order.symbol)
                        self._lock_for(account, spec, order, Decimal(-1))
                        self._fill(account, spec, order, order.price, now)

    def _crossed(self, order: Order, start_ms: int, now_ms: int) -> bool:
        current = self.market.price_ticks(order.symbol, now_ms)
        agg = self.market.aggregate(order.symbol, start_ms, now_ms)
        low = min(current, agg.low) if agg else current
        high = max(current, agg.high) if agg else current
        to_price = self.market.to_price
        if order.side == "BUY":
            return to_price(order.symbol, low) <= order.price
        return to_price(order.symbol, high) >= order.price

    def find(self, api_key: str, symbol: str, order_id: int | None, client_order_id: str | None) -> Order | None:
        """The account's order by id or client order id (the latest with that client id)."""
        self.spec(symbol)
        orders = self.account(api_key).orders
        if order_id is not None:
            order = orders.get(order_id)
            return order if order is not None and order.symbol == symbol else None
        matches = [o for o in orders.values() if o.symbol == symbol and o.client_order_id == client_order_id]
        return matches[-1] if matches else None

    def cancel(self, api_key: str, symbol: str, order_id: int | None, client_order_id: str | None) -> Order:
        """Cancel an open order and release its locked balance; -2011 if unknown or not open."""
        with self._lock:
            self.match_resting()
            order = self.find(api_key, symbol, order_id, client_order_id)
            if order is None or not order.is_open:
                raise errors.unknown_order()
            self._lock_for(self.account(api_key), self.spec(symbol), order, Decimal(-1))
            order.status = "CANCELED"
            order.update_time = self.clock.now_ms()
            return order

    def open_orders(self, api_key: str, symbol: str | None = None) -> list[Order]:
        """Open orders of the account, optionally for one symbol."""
        with self._lock:
            self.match_resting()
            if symbol is not None:
                self.spec(symbol)
            return [
                o for o in self.account(api_key).orders.values() if o.is_open and symbol in (None, o.symbol)
            ]
