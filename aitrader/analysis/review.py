"""`SignalReview`: one signal from pending to executed or cancelled, over injected ports.

Outcome (documented policy):

* **executed** — the analysis says ``enter`` with confidence >= the threshold
  (AI_CONFIDENCE_THRESHOLD) and either auto-trading is off (the signal is actionable; nothing
  was traded) or auto-trading is on (ENABLE_AUTO_TRADING and the trader's ``auto_trade``) and
  the executor placed the entry.
* **cancelled** — ``skip``, ``wait``, ``enter`` below the threshold, a request dropped from a
  full queue, or an entry the executor did not place (the reason is appended to the reasoning).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from aitrader.analysis.pool import AnalysisPool
from aitrader.analysis.types import Analysis, AnalysisRequest, Decision
from aitrader.models import PositionSide, SignalStatus

log = logging.getLogger("aitrader.analysis")

#: (signal_id, column changes, meta keys to merge) -> None
UpdateSignal = Callable[[str, dict[str, Any], dict[str, Any]], Awaitable[None]]
Publish = Callable[[str, str, dict[str, Any]], Awaitable[None]]
#: (symbol, timeframe) -> {"open": ..., "high": ..., "low": ..., "close": ..., "volume": ...} or None
FetchCandles = Callable[[str, str], Awaitable[dict[str, Any] | None]]
#: (signal view with levels, trader view) -> position view or None
OpenPosition = Callable[[dict[str, Any], dict[str, Any]], Awaitable[dict[str, Any] | None]]


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


class SignalReview:
    """Analyses signals through an `AnalysisPool` and records the outcome."""

    def __init__(
        self,
        pool: AnalysisPool,
        *,
        update_signal: UpdateSignal,
        publish: Publish,
        fetch_candles: FetchCandles,
        open_position: OpenPosition | None = None,
        threshold: int = 70,
        auto_trading: bool = False,
    ) -> None:
        self.pool = pool
        self._update = update_signal
        self._publish = publish
        self._fetch = fetch_candles
        self._open = open_position
        self.threshold = threshold
        self.auto_trading = auto_trading
        self.outcomes = {"executed": 0, "cancelled": 0, "entries": 0, "errors": 0}

    async def review(self, signal: dict[str, Any], trader: dict[str, Any]) -> dict[str, Any]:
        """Analyse one signal (a `signal_view`) for its trader (a `trader_view`); return the final view."""
        signal = dict(signal)
        signal_id = signal["id"]
        await self._set(signal, {"status": SignalStatus.ANALYZING}, {})
        candles = await self._fetch(signal["symbol"], signal["timeframe"]) or {}
        request = AnalysisRequest(
            symbol=signal["symbol"], timeframe=signal["timeframe"],
            side=PositionSide(signal.get("side") or PositionSide.LONG),
            conditions=tuple(signal.get("conditions") or ()), trader_name=trader.get("name") or "",
            signal_id=signal_id, **{k: candles[k] for k in ("open", "high", "low", "close", "volume") if k in candles},
        )
        analysis = await self.pool.submit(request)
        status = await self._settle(signal, trader, analysis)
        self.outcomes[str(status)] += 1
        return signal

    async def _settle(self, signal: dict[str, Any], trader: dict[str, Any], analysis: Analysis) -> SignalStatus:
        reasoning = analysis.reasoning
        changes: dict[str, Any] = {"confidence": analysis.confidence, "reasoning": reasoning}
        if analysis.stop_loss is not None:
            changes["stop_loss"] = analysis.stop_loss
        if analysis.take_profit is not None:
            changes["target_price"] = analysis.take_profit
        meta = {"decision": str(analysis.decision), "analyzer": analysis.analyzer, "fell_back": analysis.fell_back}
        await self._set(signal, changes, meta)
        await self._publish("analysis", "analysis", analysis.as_event(signal["id"], signal["symbol"]))

        actionable = analysis.decision is Decision.ENTER and analysis.confidence >= self.threshold
        status = SignalStatus.EXECUTED if actionable else SignalStatus.CANCELLED
        if not actionable and analysis.decision is Decision.ENTER:
            reasoning += f" Not entered: confidence {analysis.confidence} is below the threshold {self.threshold}."
        if actionable and self.auto_trading and trader.get("auto_trade") and self._open is not None:
            levelled = {**signal, "stop_loss": _money(analysis.stop_loss), "target_price": _money(analysis.take_profit)}
            try:
                position = await self._open(levelled, trader)
            except Exception as error:
                self.outcomes["errors"] += 1
                log.exception("entry for signal %s failed", signal["id"])
                position, why = None, f"{type(error).__name__}: {error}"
            else:
                why = "the order did not fill"
            if position is None:
                status = SignalStatus.CANCELLED
                reasoning += f" Entry not placed: {why}."
            else:
                self.outcomes["entries"] += 1
        final: dict[str, Any] = {"status": status}
        if reasoning != analysis.reasoning:
            final["reasoning"] = reasoning
        await self._set(signal, final, {})
        return status

    async def _set(self, signal: dict[str, Any], changes: dict[str, Any], meta: dict[str, Any]) -> None:
        await self._update(signal["id"], changes, meta)
        for key, value in changes.items():
            signal[key] = _money(value) if isinstance(value, Decimal) else str(value) if key == "status" else value
        if "decision" in meta:
            signal["decision"] = meta["decision"]
        await self._publish("signals", "signal_updated", dict(signal))
