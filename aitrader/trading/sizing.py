"""Position sizing: fixed quote amount, percent of balance, or risk-based; rounded down to the step.

Every rule returns a base quantity that passes the symbol's LOT_SIZE and NOTIONAL filters at the
given price, or raises `SizingError` saying what to change.
"""

from __future__ import annotations

from decimal import Decimal

from aitrader.trading.errors import FilterFailure, RiskLimitReached, SizingError
from aitrader.trading.rules import SymbolRules

_HUNDRED = Decimal(100)


def check_open_positions(open_positions: int, max_open_positions: int) -> None:
    """Raise `RiskLimitReached` if another position would exceed MAX_OPEN_POSITIONS."""
    if open_positions >= max_open_positions:
        raise RiskLimitReached(
            f"{open_positions} positions are open and MAX_OPEN_POSITIONS is {max_open_positions}; close one "
            f"or raise MAX_OPEN_POSITIONS to open another."
        )


def _finish(rules: SymbolRules, wanted: Decimal, price: Decimal, *, market: bool) -> Decimal:
    if price <= 0:
        raise SizingError(f"cannot size an order at price {price}; wait for a valid {rules.symbol} price")
    quantity = rules.round_quantity(wanted, market=market)
    if quantity <= 0:
        raise SizingError(
            f"{wanted} {rules.base_asset} rounds down to nothing on {rules.symbol} (minimum quantity "
            f"{rules.lot.min_qty}, step {rules.lot.step_size}); use a larger amount."
        )
    try:
        rules.check_quantity(quantity, market=market)
        rules.check_notional(quantity * price, market=market)
    except FilterFailure as failure:
        raise SizingError(f"the sized order of {quantity} {rules.base_asset} breaks a filter: {failure}") from failure
    return quantity


def size_fixed_quote(rules: SymbolRules, quote_amount: Decimal, price: Decimal, *, market: bool = True) -> Decimal:
    """The quantity ``quote_amount`` (in the quote asset) buys at ``price``."""
    return _finish(rules, quote_amount / price if price > 0 else Decimal(0), price, market=market)


def size_percent_of_balance(
    rules: SymbolRules, balance: Decimal, percent: Decimal, price: Decimal, *, market: bool = True
) -> Decimal:
    """The quantity worth ``percent`` % of ``balance`` (quote asset) at ``price``."""
    if not Decimal(0) < percent <= _HUNDRED:
        raise SizingError(f"percent {percent} must be between 0 (exclusive) and 100, e.g. 10")
    return size_fixed_quote(rules, balance * percent / _HUNDRED, price, market=market)


def size_by_risk(
    rules: SymbolRules,
    equity: Decimal,
    risk_pct: Decimal,
    entry: Decimal,
    stop_loss: Decimal,
    *,
    market: bool = True,
) -> Decimal:
    """Risk ``risk_pct`` % of equity between entry and stop: ``equity * risk% / |entry - stop|``."""
    distance = abs(entry - stop_loss)
    if distance == 0:
        raise SizingError("the stop-loss equals the entry price; put the stop away from the entry to size by risk")
    if not Decimal(0) < risk_pct <= _HUNDRED:
        raise SizingError(f"risk_pct {risk_pct} must be between 0 (exclusive) and 100, e.g. 1")
    return _finish(rules, equity * risk_pct / _HUNDRED / distance, entry, market=market)
