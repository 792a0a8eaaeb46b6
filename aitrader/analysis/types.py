"""Messages of signal analysis: what is asked (`AnalysisRequest`) and what comes back (`Analysis`).

Decision thresholds, shared by every analyzer that scores a setup itself: a confidence of
70 or more means **enter**, 40-69 **wait**, below 40 **skip** (`decision_for`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from aitrader.models import PositionSide

FloatArray = NDArray[np.float64]

ENTER_AT = 70
WAIT_AT = 40


class Decision(StrEnum):
    ENTER = "enter"
    WAIT = "wait"
    SKIP = "skip"


def decision_for(confidence: int) -> Decision:
    """enter at 70 or more, wait at 40-69, skip below 40."""
    if confidence >= ENTER_AT:
        return Decision.ENTER
    if confidence >= WAIT_AT:
        return Decision.WAIT
    return Decision.SKIP


def _empty() -> FloatArray:
    return np.empty(0, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class AnalysisRequest:
    """One signal to analyse, with its candles as 1-D float arrays, oldest to newest."""

    symbol: str
    timeframe: str
    side: PositionSide = PositionSide.LONG
    conditions: tuple[str, ...] = ()
    trader_name: str = ""
    open: FloatArray = field(default_factory=_empty)
    high: FloatArray = field(default_factory=_empty)
    low: FloatArray = field(default_factory=_empty)
    close: FloatArray = field(default_factory=_empty)
    volume: FloatArray = field(default_factory=_empty)
    signal_id: str = ""


@dataclass(frozen=True, slots=True)
class Analysis:
    """The verdict on one signal. ``fell_back`` is True when the asked-for analyzer could not answer
    and the built-in one did; ``dropped`` when the request never ran (queue full)."""

    decision: Decision
    confidence: int
    reasoning: str
    stop_loss: Decimal | None
    take_profit: Decimal | None
    analyzer: str
    fell_back: bool = False
    dropped: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.confidence <= 100:
            raise ValueError(f"confidence must be 0-100, got {self.confidence}")

    def as_event(self, signal_id: str, symbol: str) -> dict[str, object]:
        """The ``analysis`` event's payload (decimals as plain strings)."""
        return {
            "signal_id": signal_id,
            "symbol": symbol,
            "decision": str(self.decision),
            "confidence": self.confidence,
            "reasoning": self.reasoning,
            "stop_loss": _text(self.stop_loss),
            "take_profit": _text(self.take_profit),
            "analyzer": self.analyzer,
        }


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


class Analyzer(Protocol):
    """Anything that can judge a signal."""

    name: str

    async def analyze(self, request: AnalysisRequest) -> Analysis: ...
