"""SignalReview: status transitions, stored fields, events and the auto-trading policy."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from aitrader.analysis import Analysis, AnalysisPool, AnalysisRequest, Decision, SignalReview


class Fixed:
    name = "fixed"

    def __init__(self, decision: Decision, confidence: int) -> None:
        self.decision, self.confidence = decision, confidence
        self.requests: list[AnalysisRequest] = []

    async def analyze(self, request: AnalysisRequest) -> Analysis:
        from decimal import Decimal

        self.requests.append(request)
        return Analysis(self.decision, self.confidence, "because", Decimal("95.5"), Decimal("110"), self.name)


class Ports:
    """In-memory store, event log, candles and executor."""

    def __init__(self, fill: bool = True) -> None:
        self.updates: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.entries: list[dict[str, Any]] = []
        self.fill = fill

    async def update(self, signal_id: str, changes: dict[str, Any], meta: dict[str, Any]) -> None:
        self.updates.append((signal_id, changes, meta))

    async def publish(self, channel: str, type: str, data: dict[str, Any]) -> None:
        self.events.append((channel, type, data))

    async def candles(self, symbol: str, timeframe: str) -> dict[str, Any]:
        return {k: np.arange(5, dtype=np.float64) for k in ("open", "high", "low", "close", "volume")}

    async def open(self, signal: dict[str, Any], trader: dict[str, Any]) -> dict[str, Any] | None:
        self.entries.append(signal)
        return {"id": "p1"} if self.fill else None


SIGNAL = {"id": "s1", "symbol": "BTCUSDT", "timeframe": "1m", "status": "pending", "conditions": ["a"],
          "stop_loss": None, "target_price": None, "trigger_price": "100"}


async def review(decision: Decision, confidence: int, *, auto: bool, trader_auto: bool = True,
                 fill: bool = True) -> tuple[dict[str, Any], Ports, Fixed]:
    ports, analyzer = Ports(fill), Fixed(decision, confidence)
    subject = SignalReview(AnalysisPool(analyzer), update_signal=ports.update, publish=ports.publish,
                           fetch_candles=ports.candles, open_position=ports.open, threshold=70, auto_trading=auto)
    final = await asyncio.wait_for(subject.review(SIGNAL, {"name": "t", "auto_trade": trader_auto}), 10)
    await subject.pool.close()
    return final, ports, analyzer


async def test_signal_moves_through_analyzing_and_records_the_analysis() -> None:
    final, ports, analyzer = await review(Decision.ENTER, 80, auto=False)
    assert ports.updates[0] == ("s1", {"status": "analyzing"}, {})
    _, changes, meta = ports.updates[1]
    assert changes["confidence"] == 80 and changes["reasoning"] == "because"
    assert str(changes["stop_loss"]) == "95.5" and str(changes["target_price"]) == "110"
    assert meta["decision"] == "enter" and meta["analyzer"] == "fixed"
    assert final["status"] == "executed" and final["decision"] == "enter" and final["stop_loss"] == "95.5"
    analysis_events = [e for e in ports.events if e[0] == "analysis"]
    assert len(analysis_events) == 1
    assert analysis_events[0][2] == {"signal_id": "s1", "symbol": "BTCUSDT", "decision": "enter", "confidence": 80,
                                     "reasoning": "because", "stop_loss": "95.5", "take_profit": "110",
                                     "analyzer": "fixed"}
    statuses = [e[2]["status"] for e in ports.events if e[1] == "signal_updated"]
    assert statuses[0] == "analyzing" and statuses[-1] == "executed"
    assert ports.entries == []  # auto-trading off: nothing traded
    assert analyzer.requests[0].conditions == ("a",) and len(analyzer.requests[0].close) == 5
    assert SIGNAL["status"] == "pending"  # the caller's dict is not mutated


async def test_auto_trading_enters_with_the_analysis_levels() -> None:
    final, ports, _ = await review(Decision.ENTER, 75, auto=True)
    assert final["status"] == "executed"
    (entry,) = ports.entries
    assert entry["stop_loss"] == "95.5" and entry["target_price"] == "110"


@pytest.mark.parametrize(
    ("decision", "confidence", "auto", "trader_auto", "fill", "status", "entered"),
    [
        (Decision.ENTER, 69, True, True, True, "cancelled", False),
        (Decision.WAIT, 60, True, True, True, "cancelled", False),
        (Decision.SKIP, 10, False, True, True, "cancelled", False),
        (Decision.ENTER, 90, True, False, True, "executed", False),
        (Decision.ENTER, 90, True, True, False, "cancelled", True),
    ],
    ids=["below-threshold", "wait", "skip", "trader-not-auto", "no-fill"],
)
async def test_outcome_policy(decision: Decision, confidence: int, auto: bool, trader_auto: bool, fill: bool,
                              status: str, entered: bool) -> None:
    final, ports, _ = await review(decision, confidence, auto=auto, trader_auto=trader_auto, fill=fill)
    assert final["status"] == status
    assert bool(ports.entries) is entered
    if confidence == 69:
        assert "below the threshold 70" in final["reasoning"]
    if not fill:
        assert "Entry not placed: the order did not fill" in final["reasoning"]
