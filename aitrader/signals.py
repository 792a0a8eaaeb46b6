"""Signals from check results: exactly one per (trader, symbol, timeframe, candle).

The id is derived from those four (`signal_id_for`) and `Storage.create_signal` is idempotent,
so a retried check, a duplicate candle notice or a restarted scheduler cannot duplicate one.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aitrader.checks import CheckResult
    from aitrader.models import Signal


def signals_from_result(result: CheckResult, user_id: str) -> list[Signal]:
    """One entry signal per matched symbol, for the newest closed candle that was evaluated."""
    from aitrader.models import Signal  # the table (SQLAlchemy) loads with the first check that ran

    signals: list[Signal] = []
    if result.error is not None:
        return signals
    for outcome in result.outcomes:
        for symbol in outcome.matched:
            candle_time = outcome.candle_times.get(symbol, -1)
            if candle_time < 0:
                continue
            signals.append(
                Signal.model_validate(
                    {
                        "trader_id": result.trader_id,
                        "user_id": user_id,
                        "symbol": symbol,
                        "timeframe": outcome.timeframe,
                        "candle_time": candle_time,
                        "trigger_price": Decimal(repr(outcome.last_close[symbol])),
                        "meta": {
                            "conditions": list(outcome.conditions.get(symbol, [])),
                            "check_ms": result.elapsed_ms,
                        },
                    }
                )
            )
    return signals
