"""JSON views of the domain model, as events and the API carry them (decimals as strings)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the views read the rows they are given; importing the tables costs SQLAlchemy
    from aitrader.models import Order, Position, Signal, Trader


def money(value: Decimal | None) -> str | None:
    """A decimal as plain text (``0.00000001``, never ``1E-8``); None stays None.

    Trailing zeros go as in `aitrader.models.normalize`, which is not imported here: it lives
    beside the SQLAlchemy column types, and the monitor formats prices without any table.
    """
    if value is None:
        return None
    if value == value.to_integral_value():
        return format(value.quantize(Decimal(1)), "f")
    return format(value.normalize(), "f")


def when(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def position_view(position: Position) -> dict[str, Any]:
    return {
        "id": position.id,
        "trader_id": position.trader_id,
        "signal_id": position.signal_id,
        "symbol": position.symbol,
        "side": str(position.side),
        "mode": str(position.mode),
        "size": money(position.size),
        "entry_price": money(position.entry_price),
        "current_price": money(position.current_price),
        "stop_loss": money(position.stop_loss),
        "take_profit": money(position.take_profit),
        "trailing_stop_pct": money(position.trailing_stop_pct),
        "pnl": money(position.pnl),
        "pnl_pct": money(position.pnl_pct),
        "fees": money(position.fees),
        "status": str(position.status),
        "exit_price": money(position.exit_price),
        "close_reason": position.close_reason,
        "created_at": when(position.created_at),
        "updated_at": when(position.updated_at),
        "closed_at": when(position.closed_at),
    }


def order_view(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "client_order_id": order.client_order_id,
        "exchange_order_id": order.exchange_order_id,
        "symbol": order.symbol,
        "side": str(order.side),
        "type": str(order.type),
        "mode": str(order.mode),
        "quantity": money(order.quantity),
        "quote_quantity": money(order.quote_quantity),
        "price": money(order.price),
        "status": str(order.status),
        "executed_qty": money(order.executed_qty),
        "cumulative_quote_qty": money(order.cumulative_quote_qty),
        "fills": [
            {
                "price": f["price"],
                "qty": f["qty"],
                "commission": f["commission"],
                "commission_asset": f["commission_asset"],
            }
            for f in order.fills
        ],
        "position_id": order.position_id,
        "signal_id": order.signal_id,
        "purpose": order.purpose,
        "error": order.error,
        "created_at": when(order.created_at),
        "updated_at": when(order.updated_at),
    }


def signal_view(signal: Signal, trader_name: str | None = None) -> dict[str, Any]:
    meta = signal.meta or {}
    return {
        "id": signal.id,
        "trader_id": signal.trader_id,
        "trader_name": trader_name,
        "symbol": signal.symbol,
        "timeframe": signal.timeframe,
        "candle_time": signal.candle_time,
        "signal_type": str(signal.signal_type),
        "status": str(signal.status),
        "trigger_price": money(signal.trigger_price),
        "target_price": money(signal.target_price),
        "stop_loss": money(signal.stop_loss),
        "confidence": signal.confidence,
        "reasoning": signal.reasoning,
        "decision": meta.get("decision"),
        "conditions": list(meta.get("conditions", [])),
        "created_at": when(signal.created_at),
        "updated_at": when(signal.updated_at),
    }


def trader_view(trader: Trader, signal_count: int = 0) -> dict[str, Any]:
    return {
        "id": trader.id,
        "name": trader.name,
        "description": trader.description,
        "symbols": list(trader.symbols),
        "timeframes": list(trader.timeframes),
        "check_interval": trader.check_interval,
        "signal_code": trader.signal_code,
        "status": str(trader.status),
        "auto_trade": trader.auto_trade,
        "stop_loss_pct": money(trader.stop_loss_pct),
        "take_profit_pct": money(trader.take_profit_pct),
        "trailing_stop_pct": money(trader.trailing_stop_pct),
        "signal_count": signal_count,
        "created_at": when(trader.created_at),
        "updated_at": when(trader.updated_at),
    }
