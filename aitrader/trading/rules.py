"""A symbol's trading rules from exchangeInfo, applied exactly as Binance applies them.

PRICE_FILTER: ``minPrice <= price <= maxPrice`` and ``(price - minPrice) % tickSize == 0``
(a zero disables its part). LOT_SIZE (every order) and MARKET_LOT_SIZE (MARKET orders):
``minQty <= qty <= maxQty`` and ``(qty - minQty) % stepSize == 0``. NOTIONAL: ``price * qty``
between minNotional and maxNotional; MARKET orders use the average price and are checked only
where ``applyMinToMarket`` / ``applyMaxToMarket`` say so. The legacy MIN_NOTIONAL works the
same with ``applyToMarket``. All arithmetic is exact `Decimal` modulo.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any, Literal

from aitrader.models import OrderType, normalize
from aitrader.trading.errors import FilterFailure

_ZERO = Decimal(0)
Rounding = Literal["down", "up", "nearest"]
_ROUNDING = {"down": ROUND_FLOOR, "up": ROUND_CEILING, "nearest": ROUND_HALF_EVEN}


@dataclass(frozen=True, slots=True)
class LotRule:
    """Quantity bounds and step of a LOT_SIZE or MARKET_LOT_SIZE filter (zero disables a part)."""

    min_qty: Decimal
    max_qty: Decimal
    step_size: Decimal


@dataclass(frozen=True, slots=True)
class SymbolRules:
    """Tick size, step size, quantity and notional limits of one spot symbol."""

    symbol: str
    base_asset: str
    quote_asset: str
    min_price: Decimal = _ZERO
    max_price: Decimal = _ZERO
    tick_size: Decimal = _ZERO
    lot: LotRule = LotRule(_ZERO, _ZERO, _ZERO)
    market_lot: LotRule | None = None
    min_notional: Decimal = _ZERO
    max_notional: Decimal = _ZERO
    apply_min_to_market: bool = True
    apply_max_to_market: bool = False
    notional_filter: str = "NOTIONAL"

    @classmethod
    def from_exchange_info(cls, symbol_info: Mapping[str, Any]) -> SymbolRules:
        """Build the rules from one entry of exchangeInfo's ``symbols`` list."""
        fields: dict[str, Any] = {}
        for spec in symbol_info.get("filters", []):
            kind = spec.get("filterType")
            if kind == "PRICE_FILTER":
                fields.update(
                    min_price=Decimal(spec["minPrice"]),
                    max_price=Decimal(spec["maxPrice"]),
                    tick_size=Decimal(spec["tickSize"]),
                )
            elif kind in ("LOT_SIZE", "MARKET_LOT_SIZE"):
                rule = LotRule(Decimal(spec["minQty"]), Decimal(spec["maxQty"]), Decimal(spec["stepSize"]))
                fields["lot" if kind == "LOT_SIZE" else "market_lot"] = rule
            elif kind == "NOTIONAL":
                fields.update(
                    min_notional=Decimal(spec.get("minNotional", "0")),
                    max_notional=Decimal(spec.get("maxNotional", "0")),
                    apply_min_to_market=bool(spec.get("applyMinToMarket", True)),
                    apply_max_to_market=bool(spec.get("applyMaxToMarket", False)),
                    notional_filter="NOTIONAL",
                )
            elif kind == "MIN_NOTIONAL" and fields.get("notional_filter") != "NOTIONAL":
                fields.update(
                    min_notional=Decimal(spec["minNotional"]),
                    apply_min_to_market=bool(spec.get("applyToMarket", True)),
                    notional_filter="MIN_NOTIONAL",
                )
        return cls(
            symbol=symbol_info["symbol"],
            base_asset=symbol_info["baseAsset"],
            quote_asset=symbol_info["quoteAsset"],
            **fields,
        )

    # -- rounding -----------------------------------------------------------------------------

    def round_quantity(self, quantity: Decimal, *, market: bool = False) -> Decimal:
        """Round ``quantity`` DOWN onto the step grid; zero if it is below the minimum quantity."""
        rounded = quantity
        for rule in self._lot_rules(market):
            if rule.min_qty > 0 and rounded < rule.min_qty:
                return _ZERO
            if rule.step_size > 0:
                steps = ((rounded - rule.min_qty) / rule.step_size).to_integral_value(ROUND_FLOOR)
                rounded = rule.min_qty + steps * rule.step_size
            if rule.max_qty > 0 and rounded > rule.max_qty:
                rounded = rule.max_qty
        return normalize(rounded) if rounded > 0 else _ZERO

    def round_price(self, price: Decimal, rounding: Rounding = "nearest") -> Decimal:
        """Round ``price`` onto the tick grid (``down``, ``up`` or to the ``nearest`` tick)."""
        if self.tick_size <= 0:
            return price
        ticks = ((price - self.min_price) / self.tick_size).to_integral_value(_ROUNDING[rounding])
        return normalize(self.min_price + ticks * self.tick_size)

    # -- validation ---------------------------------------------------------------------------

    def check_price(self, price: Decimal) -> None:
        """Raise `FilterFailure` (PRICE_FILTER) unless ``price`` is inside the bounds and on a tick."""
        if self.min_price > 0 and price < self.min_price:
            raise FilterFailure("PRICE_FILTER", f"Price {price} is below the minimum {self.min_price}; raise it.")
        if self.max_price > 0 and price > self.max_price:
            raise FilterFailure("PRICE_FILTER", f"Price {price} is above the maximum {self.max_price}; lower it.")
        if self.tick_size > 0 and (price - self.min_price) % self.tick_size != 0:
            raise FilterFailure(
                "PRICE_FILTER",
                f"Price {price} is not a multiple of the tick size {self.tick_size}; "
                f"round it with round_price() (e.g. {self.round_price(price)}).",
            )

    def check_quantity(self, quantity: Decimal, *, market: bool = False) -> None:
        """Raise `FilterFailure` (LOT_SIZE / MARKET_LOT_SIZE) unless ``quantity`` is allowed."""
        for name, rule in zip(("LOT_SIZE", "MARKET_LOT_SIZE"), self._lot_rules(market), strict=False):
            if rule.min_qty > 0 and quantity < rule.min_qty:
                raise FilterFailure(name, f"Quantity {quantity} is below the minimum {rule.min_qty}; order more.")
            if rule.max_qty > 0 and quantity > rule.max_qty:
                raise FilterFailure(name, f"Quantity {quantity} is above the maximum {rule.max_qty}; split the order.")
            if rule.step_size > 0 and (quantity - rule.min_qty) % rule.step_size != 0:
                raise FilterFailure(
                    name,
                    f"Quantity {quantity} is not a multiple of the step size {rule.step_size}; "
                    f"round it down with round_quantity() (e.g. {self.round_quantity(quantity, market=market)}).",
                )

    def check_notional(self, notional: Decimal, *, market: bool = False) -> None:
        """Raise `FilterFailure` (NOTIONAL or MIN_NOTIONAL) unless price x quantity is within limits."""
        check_min = not market or self.apply_min_to_market
        check_max = not market or self.apply_max_to_market
        if check_min and self.min_notional > 0 and notional < self.min_notional:
            raise FilterFailure(
                self.notional_filter,
                f"Order value {notional} {self.quote_asset} is below the minimum {self.min_notional}; order more.",
            )
        if check_max and self.max_notional > 0 and notional > self.max_notional:
            raise FilterFailure(
                self.notional_filter,
                f"Order value {notional} {self.quote_asset} is above the maximum {self.max_notional}; order less.",
            )

    def validate(
        self,
        order_type: OrderType,
        *,
        quantity: Decimal | None,
        price: Decimal | None = None,
        quote_quantity: Decimal | None = None,
        average_price: Decimal | None = None,
    ) -> None:
        """Apply every filter to an order; MARKET orders need ``average_price`` for the notional check."""
        market = order_type is OrderType.MARKET
        if not market:
            if price is None or quantity is None:
                raise ValueError("a LIMIT order needs both a price and a quantity")
            self.check_price(price)
            self.check_quantity(quantity)
            self.check_notional(price * quantity)
            return
        if quantity is not None:
            self.check_quantity(quantity, market=True)
            if average_price is not None:
                self.check_notional(average_price * quantity, market=True)
        elif quote_quantity is not None:
            self.check_notional(quote_quantity, market=True)
        else:
            raise ValueError("a MARKET order needs a quantity or a quote quantity")

    def _lot_rules(self, market: bool) -> list[LotRule]:
        return [self.lot, self.market_lot] if market and self.market_lot is not None else [self.lot]


def rules_from_exchange_info(exchange_info: Mapping[str, Any]) -> dict[str, SymbolRules]:
    """Rules for every symbol of a whole exchangeInfo response, keyed by symbol."""
    return {s["symbol"]: SymbolRules.from_exchange_info(s) for s in exchange_info.get("symbols", [])}
