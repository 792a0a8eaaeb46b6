"""The execution service: manual orders, auto-trading entries and exactly-once closes over one broker.

Every operation is idempotent, so the Executor actor may retry any of them after a crash:

* an entry's client order id is fixed by its source (the signal id, or the caller's
  ``client_order_id``) and its position id is fixed by the client order id (`position_id_for`);
  a retried entry gets the broker's stored result and the already stored position back;
* a close's client order id is fixed by the position id (`exit_client_order_id`); the broker
  returns the stored result of a known id, and `Storage.close_position` is conditional on the
  position being open, so a position is closed once and only one exit order is ever filled.

Positions: a filled BUY opens a LONG. A filled SELL opens a SHORT in paper mode; in live (spot)
mode a manual SELL only sells holdings and opens no position. Each entry opens its own position
(positions in one symbol are not netted). A live BUY's commission is charged in the base asset, so
the position's size is the quantity actually held (executed minus base commission); commissions
in a third asset (BNB) are not counted in ``fees``.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from aitrader.events import Channel
from aitrader.models import (
    Order,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    PositionSide,
    PositionStatus,
    Signal,
    SignalStatus,
    SignalType,
    Trader,
    TradingMode,
    check_protective_levels,
    new_id,
)
from aitrader.positions import ExitReason, pnl, pnl_pct
from aitrader.storage.base import Conflict, NotFound, Storage
from aitrader.trading.broker import ENTRY, EXIT, MANUAL, Broker, OrderResult, SubmitOrder, client_order_id_for
from aitrader.trading.errors import OrderRejected, TemporaryError, UnknownOrder
from aitrader.trading.order_request import InvalidOrderRequest, parse_manual_order
from aitrader.trading.rules import SymbolRules
from aitrader.trading.sizing import check_open_positions, size_fixed_quote
from aitrader.views import order_view, position_view

log = logging.getLogger(__name__)

Publish = Callable[[str, str, dict[str, Any]], Any]

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)
_POSITION_NAMESPACE = uuid.UUID("0b6f8e55-3c1d-4d4b-9a55-5a4f0d1f7e21")
_DEAD = (OrderStatus.REJECTED, OrderStatus.EXPIRED, OrderStatus.CANCELED)
_STOP_REASONS = frozenset({ExitReason.STOP_LOSS.value, ExitReason.TRAILING_STOP.value})
MAX_EXIT_ATTEMPTS = 10


def position_id_for(entry_client_order_id: str) -> str:
    """The one position id an entry order can open: retries cannot open a second position."""
    return uuid.uuid5(_POSITION_NAMESPACE, entry_client_order_id).hex


def exit_client_order_id(position_id: str, attempt: int = 1) -> str:
    """The client order id of a position's ``attempt``-th exit order (a new one only after a rejection)."""
    return client_order_id_for(position_id, EXIT if attempt == 1 else f"{EXIT}-{attempt}")


@dataclass(frozen=True, slots=True)
class ProtectiveLevels:
    """Stop-loss, take-profit and trailing stop requested for a position not yet opened."""

    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    trailing_stop_pct: Decimal | None = None


class PriceCache:
    """The latest price per symbol, pushed by the market stream, with a fallback fetch for unknown symbols."""

    def __init__(self, fallback: Callable[[str], Decimal] | None = None) -> None:
        self._prices: dict[str, Decimal] = {}
        self._fallback = fallback

    def update(self, prices: Mapping[str, Decimal]) -> None:
        self._prices.update(prices)

    def __call__(self, symbol: str) -> Decimal:
        price = self._prices.get(symbol)
        if price is None:
            if self._fallback is None:
                raise TemporaryError(f"no price for {symbol} yet; wait for the market stream to deliver one")
            price = self._fallback(symbol)
            self._prices[symbol] = price
        return price

    def __len__(self) -> int:
        return len(self._prices)


class ExecutionService:
    """Opens and closes positions through a broker, storing orders and positions and publishing events."""

    def __init__(
        self,
        broker: Broker,
        storage: Storage,
        user_id: str,
        *,
        mode: TradingMode,
        max_open_positions: int = 10,
        publish: Publish | None = None,
        clock: Callable[[], float] = time.time,
        rules: Mapping[str, SymbolRules] | None = None,
        prices: PriceCache | None = None,
        entry_quote_amount: Decimal = Decimal(100),
        quote_asset: str = "USDT",
    ) -> None:
        self.broker = broker
        self.storage = storage
        self.user_id = user_id
        self.mode = mode
        self.max_open_positions = max_open_positions
        self.clock = clock
        self.rules = dict(rules or getattr(broker, "rules", {}) or {})
        self.prices = prices
        self.entry_quote_amount = Decimal(entry_quote_amount)
        self.quote_asset = quote_asset
        self.last_order_at: float | None = None
        self._publish: Publish = publish if publish is not None else (lambda channel, type, data: None)
        self._open: dict[str, Position] = {}
        self._pending_levels: dict[str, ProtectiveLevels] = {}

    # -- entries --------------------------------------------------------------------------------

    def submit_manual(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and place a manual order; a fill opens a position. Returns the order view,
        ``position`` (the opened position's view or None) and the fills.

        Raises `InvalidOrderRequest` for a malformed body, `RiskLimitReached` when
        MAX_OPEN_POSITIONS is reached, and the broker's `OrderRejected` subclasses.
        """
        order = parse_manual_order(request)
        cid = order.client_order_id or client_order_id_for(new_id(), MANUAL)
        opens = self.mode is TradingMode.PAPER or order.side is OrderSide.BUY
        position_id = position_id_for(cid) if opens else None
        levels = ProtectiveLevels(order.stop_loss, order.take_profit, order.trailing_stop_pct)
        if not opens and (order.stop_loss or order.take_profit or order.trailing_stop_pct):
            raise InvalidOrderRequest(["a live SELL sells holdings and opens no position, so it takes no "
                                       "stop_loss, take_profit or trailing_stop_pct"])
        known = order.client_order_id is not None and self.storage.get_order_by_client_id(cid) is not None
        if opens and not known:
            check_open_positions(len(self._open), self.max_open_positions)
            side = PositionSide.LONG if order.side is OrderSide.BUY else PositionSide.SHORT
            reference = order.price or self.broker.price(order.symbol)
            try:
                check_protective_levels(side, reference, order.stop_loss, order.take_profit)
            except ValueError as error:
                raise InvalidOrderRequest([f"{error} (the current price)"]) from error
        submit = SubmitOrder(
            order.symbol, order.side, order.type, cid, quantity=order.quantity,
            quote_quantity=order.quote_quantity, price=order.price, purpose=MANUAL, position_id=position_id,
        )
        result = self.broker.submit(submit)
        stored = self._order_event(cid)
        position: Position | None = None
        if position_id is not None and result.status is OrderStatus.FILLED:
            position = self._open_position(position_id, result, levels, entry_order=stored)
        elif position_id is not None and not result.status.is_final:
            self._pending_levels[cid] = levels
        view: dict[str, Any] = (
            order_view(stored) if stored is not None else {"client_order_id": cid, "status": str(result.status)}
        )
        view["fills"] = [f.to_json() for f in result.fills]
        view["position"] = position_view(position) if position is not None else None
        return view

    def open_from_signal(self, signal: Signal, trader: Trader) -> dict[str, Any] | None:
        """Auto-trade an entry signal: a MARKET BUY of ``entry_quote_amount`` with the trader's levels.

        Returns the position view (the same one on every retry of the signal), or None if the
        signal is not an entry or the order did not fill.
        """
        if signal.signal_type is not SignalType.ENTRY:
            return None
        cid = client_order_id_for(signal.id, ENTRY)
        position_id = position_id_for(cid)
        existing = self._find_position(position_id)
        if existing is not None:
            return position_view(existing)
        if self.storage.get_order_by_client_id(cid) is None:
            check_open_positions(len(self._open), self.max_open_positions)
        price = signal.trigger_price or self.broker.price(signal.symbol)
        rules = self.rules.get(signal.symbol)
        quantity = size_fixed_quote(rules, self.entry_quote_amount, price) if rules is not None else None
        submit = SubmitOrder(
            signal.symbol, OrderSide.BUY, OrderType.MARKET, cid, quantity=quantity,
            quote_quantity=None if quantity is not None else self.entry_quote_amount,
            purpose=ENTRY, position_id=position_id, signal_id=signal.id,
        )
        result = self.broker.submit(submit)
        stored = self._order_event(cid)
        if result.status is not OrderStatus.FILLED:
            return None
        levels = ProtectiveLevels(
            signal.stop_loss or _offset(price, trader.stop_loss_pct, -1, rules),
            signal.target_price or _offset(price, trader.take_profit_pct, 1, rules),
            trader.trailing_stop_pct,
        )
        position = self._open_position(position_id, result, levels, entry_order=stored,
                                       trader_id=trader.id, signal_id=signal.id)
        with contextlib.suppress(NotFound):
            self.storage.update_signal(signal.id, status=SignalStatus.EXECUTED)
        return position_view(position)

    def on_prices(self, prices: Mapping[str, Decimal]) -> list[dict[str, Any]]:
        """Take pushed prices: refresh the price cache and, in paper mode, fill crossed resting LIMIT
        orders (opening their positions). Returns the views of positions opened."""
        if self.prices is not None:
            self.prices.update(prices)
        on_price = getattr(self.broker, "on_price", None)
        if on_price is None or not self._pending_levels:
            return []
        opened: list[dict[str, Any]] = []
        for symbol, price in prices.items():
            for result in on_price(symbol, price):
                opened.extend(self._settle_resting(result))
        return opened

    # -- exits ----------------------------------------------------------------------------------

    def close_position(self, position_id: str, reason: str, trigger_price: Decimal | None = None) -> dict[str, Any]:
        """Close a position with a MARKET order, exactly once; an already closed position comes back unchanged.

        In paper mode ``trigger_price`` (the price that triggered a stop) becomes the fill's reference price.
        """
        position = self._open.get(position_id) or self.storage.get_position(position_id)
        if position.status is not PositionStatus.OPEN:
            self._open.pop(position_id, None)
            return position_view(position)
        if trigger_price is not None and self.prices is not None and self.mode is TradingMode.PAPER:
            self.prices.update({position.symbol: trigger_price})
        operation = getattr(self.broker, "operation", None)  # the paper fill and the close: one storage message
        with operation() if callable(operation) else contextlib.nullcontext():
            result, cid = self._exit(position)
            exit_price = result.average_price
            assert exit_price is not None
            _, exit_fees = self._held(position.symbol, result)
            fees = position.fees + exit_fees
            stored_order = self.storage.get_order_by_client_id(cid)
            closed, closed_now = self.storage.close_position(
                position_id,
                exit_price=exit_price,
                pnl=pnl(position.side, position.entry_price, exit_price, result.executed_qty, fees),
                pnl_pct=pnl_pct(position.side, position.entry_price, exit_price, result.executed_qty, fees),
                reason=reason,
                status=PositionStatus.STOPPED if reason in _STOP_REASONS else PositionStatus.CLOSED,
                exit_order_id=stored_order.id if stored_order is not None else None,
                fees=fees,
            )
        self._open.pop(position_id, None)
        view = position_view(closed)
        if closed_now:
            self._publish(Channel.POSITIONS, "position_update", {**view, "event": "closed"})
            if stored_order is not None:
                self._publish(Channel.ORDERS, "order_update", order_view(stored_order))
        return view

    def _exit(self, position: Position) -> tuple[OrderResult, str]:
        """Place (or find) the exit order; a new client order id only after a rejected earlier attempt."""
        rules = self.rules.get(position.symbol)
        quantity = rules.round_quantity(position.size, market=True) if rules is not None else position.size
        for attempt in range(1, MAX_EXIT_ATTEMPTS + 1):
            cid = exit_client_order_id(position.id, attempt)
            submit = SubmitOrder(position.symbol, position.side.exit_order_side, OrderType.MARKET, cid,
                                 quantity=quantity, purpose=EXIT, position_id=position.id)
            result = self.broker.submit(submit)
            self.last_order_at = self.clock()
            if result.status in _DEAD and result.executed_qty == 0:
                continue  # an earlier attempt was refused: the next id is a fresh order
            if result.status is not OrderStatus.FILLED:
                raise TemporaryError(f"the exit order {cid} of position {position.id} is {result.status}, not filled "
                                     f"yet; the close will be retried")
            return result, cid
        raise OrderRejected(f"position {position.id} could not be closed after {MAX_EXIT_ATTEMPTS} refused exit "
                            f"orders; check the account's balances and close it by hand")

    # -- restart --------------------------------------------------------------------------------

    def restore(self) -> list[dict[str, Any]]:
        """Reload open positions and settle orders left in flight by a crash; return the open positions.

        PENDING_SUBMIT orders: live ones are looked up by client order id (adopted, or expired if the
        exchange never got them); paper ones never reached the simulated fill and are expired. Filled
        entries without their position get it (without protective levels, which were not stored), and
        filled exits of still-open positions finish their close.
        """
        self._open = {p.id: p for p in self.storage.list_positions(self.user_id, status=PositionStatus.OPEN,
                                                                    limit=10_000)}
        recent = self.storage.list_orders(self.user_id, status=[OrderStatus.PENDING_SUBMIT, OrderStatus.FILLED],
                                          limit=1_000)
        known = {p.id for p in self.storage.list_positions(self.user_id, limit=10_000)}
        for order in recent:
            if order.mode is not self.mode:
                continue
            if order.status is OrderStatus.PENDING_SUBMIT:
                self._settle_pending(order)
            elif order.position_id is None:
                continue
            elif order.purpose == EXIT and order.position_id in self._open:
                self.close_position(order.position_id, "recovered")
            elif order.purpose in (ENTRY, MANUAL) and order.position_id not in known:
                log.warning("opening position %s for filled order %s found on restart (no protective levels)",
                            order.position_id, order.client_order_id)
                self._open_position(order.position_id, OrderResult.from_order(order), ProtectiveLevels(),
                                    entry_order=order, signal_id=order.signal_id)
        return [position_view(p) for p in self._open.values()]

    def _settle_pending(self, order: Order) -> None:
        if self.mode is TradingMode.PAPER:
            self.storage.update_order(order.id, status=OrderStatus.EXPIRED,
                                      error="the engine stopped before the paper order was filled")
            return
        try:
            result = self.broker.order_status(order.symbol, order.client_order_id)
        except UnknownOrder:
            self.storage.update_order(order.id, status=OrderStatus.EXPIRED, error="never reached the exchange")
            return
        self.storage.update_order(order.id, status=result.status, exchange_order_id=result.exchange_order_id or None,
                                  executed_qty=result.executed_qty, cumulative_quote_qty=result.cumulative_quote_qty,
                                  fills=[f.to_json() for f in result.fills])

    @property
    def open_positions(self) -> int:
        return len(self._open)

    # -- internals ------------------------------------------------------------------------------

    def _settle_resting(self, result: OrderResult) -> list[dict[str, Any]]:
        stored = self._order_event(result.client_order_id)
        levels = self._pending_levels.pop(result.client_order_id, None)
        if stored is None or stored.position_id is None or result.status is not OrderStatus.FILLED:
            return []
        position = self._open_position(stored.position_id, result, levels or ProtectiveLevels(), entry_order=stored,
                                       signal_id=stored.signal_id)
        return [position_view(position)]

    def _open_position(
        self,
        position_id: str,
        result: OrderResult,
        levels: ProtectiveLevels,
        *,
        entry_order: Order | None,
        trader_id: str | None = None,
        signal_id: str | None = None,
    ) -> Position:
        """Store the position a filled entry opened (or return the one already stored)."""
        existing = self._find_position(position_id)
        if existing is not None:
            return existing
        entry = result.average_price
        assert entry is not None, "a filled order has an average price"
        size, fees = self._held(result.symbol, result)
        side = PositionSide.LONG if result.side is OrderSide.BUY else PositionSide.SHORT
        stop_loss, take_profit = levels.stop_loss, levels.take_profit
        try:
            check_protective_levels(side, entry, stop_loss, take_profit)
        except ValueError as error:
            # The fill slipped past a level set against the quote; the position must still be recorded.
            log.warning("position %s opened without a level that the fill at %s invalidated: %s",
                        position_id, entry, error)
            if stop_loss is not None and (stop_loss >= entry if side is PositionSide.LONG else stop_loss <= entry):
                stop_loss = None
            if take_profit is not None and (take_profit <= entry if side is PositionSide.LONG else take_profit >= entry):
                take_profit = None
        position = Position.model_validate({
            "id": position_id, "user_id": self.user_id, "trader_id": trader_id, "signal_id": signal_id,
            "symbol": result.symbol, "side": side, "mode": self.mode, "entry_price": entry, "current_price": entry,
            "size": size, "stop_loss": stop_loss, "take_profit": take_profit,
            "trailing_stop_pct": levels.trailing_stop_pct, "best_price": entry, "pnl": -fees,
            "pnl_pct": -fees / (entry * size) * _HUNDRED, "fees": fees,
            "entry_order_id": entry_order.id if entry_order is not None else None,
        })
        try:
            position = self.storage.create_position(position)
        except Conflict:
            found = self._find_position(position_id)
            if found is None:
                raise
            return found
        self._open[position.id] = position
        self._publish(Channel.POSITIONS, "position_update", {**position_view(position), "event": "opened"})
        return position

    def _find_position(self, position_id: str) -> Position | None:
        if position_id in self._open:
            return self._open[position_id]
        try:
            return self.storage.get_position(position_id)
        except NotFound:
            return None

    def _held(self, symbol: str, result: OrderResult) -> tuple[Decimal, Decimal]:
        """(quantity held after the fill, fees in the quote asset) of a filled order."""
        rules = self.rules.get(symbol)
        quote = rules.quote_asset if rules is not None else self.quote_asset
        base = rules.base_asset if rules is not None else symbol.removesuffix(quote)
        base_fee, quote_fee = result.commission(base), result.commission(quote)
        price = result.average_price or _ZERO
        size = result.executed_qty - base_fee if result.side is OrderSide.BUY else result.executed_qty
        return size, quote_fee + base_fee * price

    def _order_event(self, client_order_id: str) -> Order | None:
        self.last_order_at = self.clock()
        stored = self.storage.get_order_by_client_id(client_order_id)
        if stored is not None:
            self._publish(Channel.ORDERS, "order_update", order_view(stored))
        return stored


def _offset(price: Decimal, pct: Decimal | None, direction: int, rules: SymbolRules | None) -> Decimal | None:
    """``price`` moved ``pct`` percent up (+1) or down (-1), on the tick grid; None without a pct."""
    if pct is None:
        return None
    level = price * (_HUNDRED + direction * pct) / _HUNDRED
    if rules is None:
        return level
    return rules.round_price(level, "down" if direction < 0 else "up")


__all__ = [
    "MAX_EXIT_ATTEMPTS",
    "ExecutionService",
    "InvalidOrderRequest",
    "PriceCache",
    "ProtectiveLevels",
    "exit_client_order_id",
    "position_id_for",
]
