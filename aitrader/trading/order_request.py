"""Validation of a manual order request (the JSON body of ``POST /api/orders``) into a typed command."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from aitrader.models import OrderSide, OrderType, check_symbol
from aitrader.trading.errors import TradingError

_CLIENT_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


class InvalidOrderRequest(TradingError, ValueError):
    """The order request is malformed; ``problems`` holds one sentence per bad field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid order request: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class ManualOrder:
    """A validated manual order: exactly one of ``quantity``/``quote_quantity``; LIMIT orders have a price."""

    symbol: str
    side: OrderSide
    type: OrderType
    quantity: Decimal | None = None
    quote_quantity: Decimal | None = None
    price: Decimal | None = None
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    trailing_stop_pct: Decimal | None = None
    #: Optional caller-chosen idempotency key: the same key never places a second order.
    client_order_id: str | None = None


def _amount(body: Mapping[str, Any], name: str, problems: list[str]) -> Decimal | None:
    raw = body.get(name)
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal):
        problems.append(f"{name} must be a number or a decimal string such as \"0.01\", got {raw!r}")
        return None
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        problems.append(f"{name} must be a decimal number such as \"0.01\", got {raw!r}")
        return None
    if not value.is_finite() or value <= 0:
        problems.append(f"{name} must be a positive number, got {raw!r}")
        return None
    return value


def _choice(body: Mapping[str, Any], name: str, allowed: tuple[str, ...], default: str | None,
            problems: list[str]) -> str | None:
    raw = body.get(name, default)
    if not isinstance(raw, str) or raw.strip().upper() not in allowed:
        problems.append(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
        return None
    return raw.strip().upper()


def parse_manual_order(body: Mapping[str, Any]) -> ManualOrder:
    """Validate a request body; raise `InvalidOrderRequest` listing every problem at once."""
    if not isinstance(body, Mapping):
        raise InvalidOrderRequest([f"the order request must be a JSON object, got {type(body).__name__}"])
    problems: list[str] = []
    symbol: str | None = None
    try:
        symbol = check_symbol(str(body.get("symbol") or ""))
    except ValueError as error:
        problems.append(f"symbol: {error}")
    side = _choice(body, "side", ("BUY", "SELL"), None, problems)
    kind = _choice(body, "type", ("MARKET", "LIMIT"), "MARKET", problems)
    quantity = _amount(body, "quantity", problems)
    quote_quantity = _amount(body, "quote_quantity", problems)
    price = _amount(body, "price", problems)
    stop_loss = _amount(body, "stop_loss", problems)
    take_profit = _amount(body, "take_profit", problems)
    trailing = _amount(body, "trailing_stop_pct", problems)
    if trailing is not None and trailing >= 100:
        problems.append(f"trailing_stop_pct must be below 100 (percent), got {trailing}")
    if (quantity is None) == (quote_quantity is None) and "quantity" not in " ".join(problems):
        problems.append("give exactly one of quantity (base asset) or quote_quantity (quote asset)")
    if kind == "LIMIT":
        if price is None and "price" not in " ".join(problems):
            problems.append("a LIMIT order needs a price")
        if quote_quantity is not None:
            problems.append("a LIMIT order takes quantity, not quote_quantity")
    elif kind == "MARKET" and price is not None:
        problems.append("a MARKET order takes no price; use type LIMIT to set one")
    client_order_id = body.get("client_order_id")
    if client_order_id is not None and (
        not isinstance(client_order_id, str) or not 1 <= len(client_order_id) <= 36
        or not set(client_order_id) <= _CLIENT_ID_CHARS
    ):
        problems.append("client_order_id must be 1-36 characters of letters, digits, - and _")
        client_order_id = None
    if problems:
        raise InvalidOrderRequest(problems)
    assert symbol is not None and side is not None and kind is not None
    return ManualOrder(
        symbol=symbol,
        side=OrderSide(side),
        type=OrderType(kind),
        quantity=quantity,
        quote_quantity=quote_quantity,
        price=price,
        stop_loss=stop_loss,
        take_profit=take_profit,
        trailing_stop_pct=trailing,
        client_order_id=client_order_id,
    )
