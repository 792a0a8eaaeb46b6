"""The paper broker: simulated fills against live (or local-exchange) prices, with real exchange filters.

Model, in brief:

* MARKET orders fill at once at the current price moved by ``slippage_bps`` against you (a BUY
  pays more, a SELL gets less), rounded to the tick in the same direction.
* A LIMIT order that is marketable fills at once at the slipped price capped by its limit (the
  limit or better); otherwise it rests, its funds locked, until `on_price` crosses it, and then
  fills at its limit price.
* Commission (``commission_rate``, 0.1 % by default) is charged **in the quote asset** on every
  fill, rounded to 8 decimals, so a position's size is exactly the quantity bought. (Binance
  charges a BUY's commission in the base asset; the paper model keeps sizes round instead.)
* Short selling: a MARKET (or marketable LIMIT) SELL larger than the base held borrows the rest,
  making the base balance negative; the borrowed part's value must be covered by the free quote
  balance before the sale. No interest is charged. A BUY repays the borrow. Resting SELL limits
  must be covered by base actually held.
* Every filter of the symbol is applied exactly as Binance does (see `SymbolRules`); MARKET
  notional checks use the current price.
* Balances are written to `Storage` after every change (only the assets that changed, with
  `update_balances`) and reloaded on construction, together
  with the resting LIMIT orders; every order is journalled (PENDING_SUBMIT first) like a live one.
  With a batching storage (`OrderCache`) one operation's writes go as one synchronous message,
  and an operation whose writes fail leaves the account as it was.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from decimal import ROUND_HALF_EVEN, Decimal

from aitrader.models import Balance, Fill, OrderSide, OrderStatus, OrderType, TradingMode, new_id, utcnow
from aitrader.storage.base import Storage
from aitrader.trading.broker import AssetBalance, OrderResult, SubmitOrder
from aitrader.trading.errors import FilterFailure, InsufficientBalance, OrderRejected, UnknownOrder
from aitrader.trading.journal import OrderJournal
from aitrader.trading.rules import SymbolRules

_ZERO = Decimal(0)
_BPS = Decimal(10_000)
_COMMISSION_QUANTUM = Decimal("0.00000001")

PriceSource = Callable[[str], Decimal]


class PaperBroker:
    """A simulated spot account that fills orders against a price source (see the module docstring)."""

    def __init__(
        self,
        *,
        user_id: str,
        rules: Mapping[str, SymbolRules],
        price_source: PriceSource,
        storage: Storage | None = None,
        starting_balance: Decimal = Decimal(10_000),
        quote_asset: str = "USDT",
        slippage_bps: Decimal = Decimal(5),
        commission_rate: Decimal = Decimal("0.001"),
        allow_short: bool = True,
    ) -> None:
        self.user_id = user_id
        self.rules = dict(rules)
        self.price_source = price_source
        self.storage = storage
        self.slippage_bps = Decimal(slippage_bps)
        self.commission_rate = Decimal(commission_rate)
        self.allow_short = allow_short
        self.fees_paid: dict[str, Decimal] = {}
        self._journal = OrderJournal(storage, user_id, TradingMode.PAPER) if storage is not None else None
        self._free: dict[str, Decimal] = {}
        self._locked: dict[str, Decimal] = {}
        self._orders: dict[str, OrderResult] = {}
        #: (client order id, the result it replaced or None) per order recorded by the running operation.
        self._undo_orders: list[tuple[str, OrderResult | None]] | None = None
        self._resting: dict[str, OrderResult] = {}
        self._trade_ids = itertools.count(1)
        #: (free, locked) per asset as last written to storage: a save writes only assets that differ.
        self._stored: dict[str, tuple[Decimal, Decimal]] = {}
        if not self._restore():
            self._free[quote_asset] = Decimal(starting_balance)
            self._save_balances()

    # -- Broker protocol ------------------------------------------------------------------------

    def submit(self, request: SubmitOrder) -> OrderResult:
        """Fill or rest an order; the same client order id always returns the same order."""
        with self.operation():
            return self._submit(request)

    @contextmanager
    def operation(self) -> Iterator[None]:
        """One broker operation: one storage message when the storage can batch (see OrderCache), and
        the account's memory rolled back if the operation fails, so it never runs ahead of storage.

        Re-entrant: a caller may widen it (the close of a position takes its exit fill and the
        position's close write into one message); a nested operation is rolled back with the
        outermost one. The balances are copied at the start (a few assets); the orders, which only
        grow, are rolled back from an undo log of the ones the operation recorded."""
        if self._undo_orders is not None:
            yield
            return
        saved = (dict(self._free), dict(self._locked), dict(self._resting), dict(self.fees_paid), dict(self._stored))
        self._undo_orders = []
        batch = getattr(self.storage, "batch", None)
        try:
            with batch() if callable(batch) else nullcontext():
                yield
        except BaseException:
            self._free, self._locked, self._resting, self.fees_paid, self._stored = saved
            for client_order_id, previous in reversed(self._undo_orders):
                if previous is None:
                    self._orders.pop(client_order_id, None)
                else:
                    self._orders[client_order_id] = previous
            raise
        finally:
            self._undo_orders = None

    def _submit(self, request: SubmitOrder) -> OrderResult:
        known = self._known(request.client_order_id)
        if known is not None:
            return known
        rules = self._rules_for(request.symbol)
        if self._journal is not None:
            self._journal.begin(request)
        try:
            result = self._execute(request, rules)
        except OrderRejected as rejected:
            if self._journal is not None:
                self._journal.reject(request.client_order_id, str(rejected))
            raise
        self._remember(result)
        return result

    def cancel(self, symbol: str, client_order_id: str) -> OrderResult:
        """Cancel a resting LIMIT order and release its locked funds."""
        with self.operation():
            return self._cancel(symbol, client_order_id)

    def _cancel(self, symbol: str, client_order_id: str) -> OrderResult:
        resting = self._resting.pop(client_order_id, None)
        if resting is None or resting.symbol != symbol:
            raise UnknownOrder(
                f"Unknown order sent: there is no open paper order {client_order_id} on {symbol}; "
                f"it may have filled already (check order_status).",
                code=-2011,
            )
        released = self._unlock(resting)
        cancelled = replace(resting, status=OrderStatus.CANCELED)
        self._remember(cancelled)
        self._save_balances((released,))
        return cancelled

    def order_status(self, symbol: str, client_order_id: str) -> OrderResult:
        """The order with this client order id."""
        known = self._known(client_order_id)
        if known is None or known.symbol != symbol:
            raise UnknownOrder(f"Order does not exist: no paper order {client_order_id} on {symbol}.", code=-2013)
        return known

    def balances(self) -> dict[str, AssetBalance]:
        """Free and locked balances by asset (a negative free base amount is a short's borrow)."""
        assets = sorted(set(self._free) | set(self._locked))
        return {a: AssetBalance(a, self._free.get(a, _ZERO), self._locked.get(a, _ZERO)) for a in assets}

    def price(self, symbol: str) -> Decimal:
        """The latest price from the price source."""
        return self.price_source(symbol)

    # -- price pushes ---------------------------------------------------------------------------

    def on_price(self, symbol: str, price: Decimal) -> list[OrderResult]:
        """Fill resting LIMIT orders that ``price`` crosses."""
        with self.operation():
            return self._on_price(symbol, price)

    def _on_price(self, symbol: str, price: Decimal) -> list[OrderResult]:
        """Fill the resting LIMIT orders of ``symbol`` that ``price`` crosses, at their limit price."""
        filled: list[OrderResult] = []
        for cid, order in list(self._resting.items()):
            assert order.price is not None and order.orig_qty is not None
            crossed = price <= order.price if order.side is OrderSide.BUY else price >= order.price
            if order.symbol != symbol or not crossed:
                continue
            del self._resting[cid]
            self._unlock(order)
            fill = self._fill(order.symbol, order.side, order.orig_qty, order.price)
            result = self._filled(order, fill)
            self._remember(result)
            filled.append(result)
        return filled

    def equity(self, prices: Mapping[str, Decimal] | None = None) -> Decimal:
        """Account value in the quote asset: every base balance valued at its symbol's price."""
        total = _ZERO
        for asset, balance in self.balances().items():
            rules = next((r for r in self.rules.values() if r.base_asset == asset), None)
            if rules is None:
                total += balance.total
            else:
                price = prices[rules.symbol] if prices is not None else self.price_source(rules.symbol)
                total += balance.total * price
        return total

    # -- execution ------------------------------------------------------------------------------

    def _execute(self, request: SubmitOrder, rules: SymbolRules) -> OrderResult:
        market_price = self.price_source(request.symbol)
        slipped = self._slipped(request.side, market_price, rules)
        pending = OrderResult(
            symbol=request.symbol,
            client_order_id=request.client_order_id,
            exchange_order_id=f"paper-{new_id()[:24]}",
            status=OrderStatus.NEW,
            side=request.side,
            type=request.type,
            price=request.price,
            orig_qty=request.quantity,
        )
        if request.type is OrderType.MARKET:
            quantity = request.quantity
            if quantity is None:
                assert request.quote_quantity is not None
                quantity = rules.round_quantity(request.quote_quantity / slipped, market=True)
                if quantity <= 0:
                    raise FilterFailure("LOT_SIZE", f"{request.quote_quantity} {rules.quote_asset} buys less "
                                        f"than the minimum quantity of {request.symbol}; spend more.")
            rules.validate(OrderType.MARKET, quantity=quantity, average_price=market_price)
            fill = self._fill(request.symbol, request.side, quantity, slipped)
            return self._filled(replace(pending, orig_qty=quantity), fill)
        assert request.price is not None and request.quantity is not None
        rules.validate(OrderType.LIMIT, quantity=request.quantity, price=request.price)
        marketable = request.price >= market_price if request.side is OrderSide.BUY else request.price <= market_price
        if marketable:
            better = min if request.side is OrderSide.BUY else max
            fill = self._fill(request.symbol, request.side, request.quantity, better(request.price, slipped))
            return self._filled(pending, fill)
        self._lock(pending, rules)
        self._resting[pending.client_order_id] = pending
        return pending

    def _slipped(self, side: OrderSide, price: Decimal, rules: SymbolRules) -> Decimal:
        move = price * self.slippage_bps / _BPS
        if side is OrderSide.BUY:
            return rules.round_price(price + move, "up")
        return rules.round_price(price - move, "down")

    def _fill(self, symbol: str, side: OrderSide, quantity: Decimal, price: Decimal) -> Fill:
        """Move the balances for one fill, or raise `InsufficientBalance` leaving them untouched."""
        rules = self._rules_for(symbol)
        base, quote = rules.base_asset, rules.quote_asset
        notional = quantity * price
        commission = (notional * self.commission_rate).quantize(_COMMISSION_QUANTUM, ROUND_HALF_EVEN)
        free_quote, free_base = self._free.get(quote, _ZERO), self._free.get(base, _ZERO)
        if side is OrderSide.BUY:
            if free_quote < notional + commission:
                raise InsufficientBalance(
                    f"Account has insufficient balance for requested action: buying {quantity} {base} costs "
                    f"{notional + commission} {quote} with fees and {free_quote} {quote} is free. Order less.",
                    code=-2010,
                )
            self._free[quote] = free_quote - notional - commission
            self._free[base] = free_base + quantity
        else:
            borrowed = quantity - max(free_base, _ZERO)
            if borrowed > 0 and not self.allow_short:
                raise InsufficientBalance(
                    f"Account has insufficient balance for requested action: selling {quantity} {base} but only "
                    f"{max(free_base, _ZERO)} is free, and short selling is off. Sell less.",
                    code=-2010,
                )
            if borrowed > 0 and free_quote < borrowed * price:
                raise InsufficientBalance(
                    f"Account has insufficient balance for requested action: shorting {borrowed} {base} needs "
                    f"{borrowed * price} {quote} of free collateral and {free_quote} is free. Short less.",
                    code=-2010,
                )
            self._free[base] = free_base - quantity
            self._free[quote] = free_quote + notional - commission
        self.fees_paid[quote] = self.fees_paid.get(quote, _ZERO) + commission
        self._save_balances((base, quote))
        return Fill(price, quantity, commission, quote, str(next(self._trade_ids)))

    def _filled(self, order: OrderResult, fill: Fill) -> OrderResult:
        return replace(
            order,
            status=OrderStatus.FILLED,
            executed_qty=fill.qty,
            cumulative_quote_qty=fill.qty * fill.price,
            fills=(fill,),
        )

    def _lock(self, order: OrderResult, rules: SymbolRules) -> None:
        assert order.price is not None and order.orig_qty is not None
        if order.side is OrderSide.BUY:
            asset, amount = rules.quote_asset, order.orig_qty * order.price * (1 + self.commission_rate)
        else:
            asset, amount = rules.base_asset, order.orig_qty
        free = self._free.get(asset, _ZERO)
        if free < amount:
            raise InsufficientBalance(
                f"Account has insufficient balance for requested action: a resting {order.side} needs "
                f"{amount} {asset} free and {free} is. Order less (resting sells cannot open shorts).",
                code=-2010,
            )
        self._free[asset] = free - amount
        self._locked[asset] = self._locked.get(asset, _ZERO) + amount
        self._save_balances((asset,))

    def _unlock(self, order: OrderResult) -> str:
        """Release a resting order's locked funds; returns the asset released."""
        assert order.price is not None and order.orig_qty is not None
        rules = self._rules_for(order.symbol)
        if order.side is OrderSide.BUY:
            asset, amount = rules.quote_asset, order.orig_qty * order.price * (1 + self.commission_rate)
        else:
            asset, amount = rules.base_asset, order.orig_qty
        self._locked[asset] = self._locked.get(asset, _ZERO) - amount
        self._free[asset] = self._free.get(asset, _ZERO) + amount
        return asset

    # -- bookkeeping ----------------------------------------------------------------------------

    def _rules_for(self, symbol: str) -> SymbolRules:
        rules = self.rules.get(symbol)
        if rules is None:
            raise OrderRejected(f"Invalid symbol: {symbol} is not listed; pick one of {', '.join(self.rules)}.",
                                code=-1121)
        return rules

    def _known(self, client_order_id: str) -> OrderResult | None:
        if client_order_id in self._orders:
            return self._orders[client_order_id]
        stored = self._journal.find(client_order_id) if self._journal is not None else None
        return OrderResult.from_order(stored) if stored is not None else None

    def _remember(self, result: OrderResult) -> None:
        if self._undo_orders is not None:
            self._undo_orders.append((result.client_order_id, self._orders.get(result.client_order_id)))
        self._orders[result.client_order_id] = result
        if self._journal is not None:
            self._journal.record(result)

    def _save_balances(self, assets: Iterable[str] | None = None) -> None:
        """Write those of ``assets`` (default: every asset) whose balance differs from the stored row."""
        if self.storage is None:
            return
        changed = []
        now = utcnow()  # given, so that no default factory runs (pydantic inspects its signature per call)
        for asset in sorted(self._free.keys() | self._locked.keys() if assets is None else set(assets)):
            amounts = (self._free.get(asset, _ZERO), self._locked.get(asset, _ZERO))
            if self._stored.get(asset) != amounts:
                self._stored[asset] = amounts
                # Exact Decimals computed here; storage checks the amounts it writes.
                changed.append(Balance.model_construct(user_id=self.user_id, asset=asset, free=amounts[0],
                                                       locked=amounts[1], updated_at=now))
        if changed:
            self.storage.update_balances(self.user_id, changed)

    def _restore(self) -> bool:
        """Reload balances and resting LIMIT orders from storage; False if there is nothing stored."""
        if self.storage is None:
            return False
        stored = self.storage.get_balances(self.user_id)
        for row in stored:
            self._stored[row.asset] = (row.free, row.locked)
            self._free[row.asset] = row.free
            if row.locked:
                self._locked[row.asset] = row.locked
        open_orders = self.storage.list_orders(self.user_id, status=[OrderStatus.NEW], limit=10_000)
        for order in open_orders:
            if order.mode is TradingMode.PAPER and order.type is OrderType.LIMIT:
                self._resting[order.client_order_id] = OrderResult.from_order(order)
        return bool(stored)
