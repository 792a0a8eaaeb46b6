"""Position maths: P&L for LONG and SHORT, and the stop-loss, take-profit and trailing-stop rules.

Pure functions over `Decimal`; the Monitor calls them on every price push. Percentages are
given in percent (``2`` means 2 %), as on `Trader.trailing_stop_pct`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from aitrader.models import PositionSide

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)


class ExitReason(StrEnum):
    """Why a protective rule closed a position (stored as `Position.close_reason`)."""

    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    TRAILING_STOP = "trailing_stop"


@dataclass(frozen=True, slots=True)
class ExitTrigger:
    """A protective level was reached: which rule, the level it sits at, and the price that crossed it.

    ``price`` is the market price that triggered the exit, which is worse than ``level`` when the
    market gaps through a stop; expect to exit near ``price``, not at ``level``.
    """

    reason: ExitReason
    level: Decimal
    price: Decimal


def pnl(side: PositionSide, entry: Decimal, price: Decimal, size: Decimal, fees: Decimal = _ZERO) -> Decimal:
    """Profit (or loss, negative) in quote currency of ``size`` units entered at ``entry``, valued at ``price``."""
    move = price - entry if side is PositionSide.LONG else entry - price
    return move * size - fees


def pnl_pct(side: PositionSide, entry: Decimal, price: Decimal, size: Decimal, fees: Decimal = _ZERO) -> Decimal:
    """P&L as a percentage of the entry notional (``entry * size``)."""
    notional = entry * size
    if notional <= 0:
        raise ValueError(f"entry price and size must be positive to compute a percentage (got {entry} x {size})")
    return pnl(side, entry, price, size, fees) / notional * _HUNDRED


def update_best_price(side: PositionSide, best: Decimal | None, price: Decimal) -> Decimal:
    """The most favourable price seen so far: the highest for a LONG, the lowest for a SHORT."""
    if best is None:
        return price
    return max(best, price) if side is PositionSide.LONG else min(best, price)


def trailing_stop_level(side: PositionSide, best: Decimal, trail_pct: Decimal) -> Decimal:
    """The trailing stop ``trail_pct`` percent behind the best price (below for a LONG, above for a SHORT)."""
    if not _ZERO < trail_pct < _HUNDRED:
        raise ValueError(f"trail_pct {trail_pct} must be a percentage between 0 and 100 (exclusive), e.g. 2")
    offset = best * trail_pct / _HUNDRED
    return best - offset if side is PositionSide.LONG else best + offset


def _stop_reached(side: PositionSide, price: Decimal, level: Decimal) -> bool:
    return price <= level if side is PositionSide.LONG else price >= level


def check_exit(
    side: PositionSide,
    price: Decimal,
    stop_loss: Decimal | None = None,
    take_profit: Decimal | None = None,
    best_price: Decimal | None = None,
    trailing_stop_pct: Decimal | None = None,
) -> ExitTrigger | None:
    """The exit ``price`` triggers, if any.

    The best price is first updated with ``price`` (persist `update_best_price` yourself). When the
    price has crossed both the stop-loss and the trailing stop, the level the market crossed first
    wins: the higher one for a LONG, the lower one for a SHORT (a tie goes to the stop-loss).
    Protective stops win over take-profit, which cannot be reached on the same price anyway.
    """
    stops: list[ExitTrigger] = []
    if stop_loss is not None and _stop_reached(side, price, stop_loss):
        stops.append(ExitTrigger(ExitReason.STOP_LOSS, stop_loss, price))
    if trailing_stop_pct is not None:
        level = trailing_stop_level(side, update_best_price(side, best_price, price), trailing_stop_pct)
        if _stop_reached(side, price, level):
            stops.append(ExitTrigger(ExitReason.TRAILING_STOP, level, price))
    if stops:
        first_crossed = max if side is PositionSide.LONG else min
        best_level = first_crossed(t.level for t in stops)
        return next(t for t in stops if t.level == best_level)
    if take_profit is not None:
        reached = price >= take_profit if side is PositionSide.LONG else price <= take_profit
        if reached:
            return ExitTrigger(ExitReason.TAKE_PROFIT, take_profit, price)
    return None
